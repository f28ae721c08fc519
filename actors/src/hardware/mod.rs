//! Hardware managers: IPA's manager framework, the generic and the CoreOS manager.

//! libFuzzer entry for [`ironic_agent_fuzz::installer_progress`].
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| ironic_agent_fuzz::installer_progress(data));

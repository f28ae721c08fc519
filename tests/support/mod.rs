//! Shared helpers for the integration tests. Each test binary that needs them
//! declares `mod support;` and uses the submodules it wants.

pub mod ironic;

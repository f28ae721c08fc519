//! Shared helpers for the integration tests. Each test binary that needs them
//! declares `mod support;` and uses the submodules it wants.
#![allow(dead_code)]

pub mod agent;
pub mod conductor;
pub mod fixture;
pub mod ironic;
pub mod loopdisk;
pub mod records;
pub mod systemd;

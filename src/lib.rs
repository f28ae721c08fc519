//! The `ironic-agent` binary's library: CLI, configuration, logging and wiring.
#![deny(missing_docs)]

pub mod chroot_applet;
pub mod cli;
pub mod config;
pub mod ignition;
pub mod logging;
pub mod wiring;

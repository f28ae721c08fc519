//! Installer runner: coreos-installer, image writes and other long subprocesses.

mod actor;

pub use actor::{InstallerRunner, RunStep};

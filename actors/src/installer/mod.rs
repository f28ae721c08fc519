//! Installer runner: coreos-installer, image writes and other long subprocesses.

pub use steps::RunStep;
mod steps;

mod actor;

pub use actor::InstallerRunner;

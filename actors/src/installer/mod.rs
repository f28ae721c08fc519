//! Installer runner: coreos-installer, image writes and other long subprocesses.

pub use steps::{GetProgress, RunStep, StepEnv};
pub mod disks;
pub mod erase;
pub mod failures;
pub mod image;
pub mod misc;
pub mod progress;
pub mod raid;
mod steps;

mod actor;

pub use actor::InstallerRunner;

//! Installer runner: coreos-installer, image writes and other long subprocesses.
//!
//! How the rest of the agent uses the CoreOS part:
//! - The CoreOS hardware manager's `install_coreos` step picks the install device and
//!   sends [`InstallCoreos`] with a [`CoreosInstallRequest`] (device, cached node,
//!   hostname). Before sending it may call [`CoreosInstallRequest::watch_progress`] and
//!   copy the receiver's [`crate::command::CommandProgress`] into the running command's
//!   `command_progress` (bytes read / total and the last installer line).
//! - On SIGTERM the coordinator sends [`WaitForInstaller`] with its drain bound; if the
//!   answer is [`InstallerIdle::StillRunning`] it sends [`CancelInstaller`]: the installer
//!   is killed and reaped and the step fails with a "cancelled" error, so the command never
//!   stays RUNNING. Dropping the actor (system stop) kills the child too (`kill_on_drop`).
//! - Start-up calls [`fix_hostname`]; an `Err` must stop start-up.
//! - `collect_system_logs` calls [`coreos_journal`]; `None` means "use the generic
//!   collector".

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
pub mod coreos;
pub mod hostname;
pub mod process;

pub use actor::{CancelInstaller, InstallCoreos, InstallerIdle, InstallerRunner, WaitForInstaller};
pub use coreos::{
    coreos_journal, CoreosInstallOutcome, CoreosInstallRequest, CoreosInstaller, UefiBootEntry,
};
pub use hostname::fix_hostname;

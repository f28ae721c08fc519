//! Installer runner: coreos-installer, image writes and other long subprocesses.

mod actor;
pub mod coreos;
pub mod hostname;
pub mod process;

pub use actor::{CancelInstaller, InstallCoreos, InstallerIdle, InstallerRunner, WaitForInstaller};
pub use coreos::{
    coreos_journal, CoreosInstallOutcome, CoreosInstallRequest, CoreosInstaller, UefiBootEntry,
};
pub use hostname::fix_hostname;

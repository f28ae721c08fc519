//! systemd supervisor: starts and follows host units over the system D-Bus.

pub use steps::StartUnitAndWait;
mod steps;

mod actor;

pub use actor::SystemdSupervisor;

//! systemd supervisor: starts and follows host units over the system D-Bus.

mod actor;

pub use actor::{StartUnitAndWait, SystemdSupervisor};

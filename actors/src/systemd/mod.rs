//! systemd supervisor: starts and follows host units over the system D-Bus.
//!
//! - [`unit`]: unit states and how a finished unit is judged (plain logic);
//! - [`proxy`]: zbus proxies for `org.freedesktop.systemd1`;
//! - `client`: start a unit and follow it to its end, event-driven;
//! - `actor`: the actor owning the one system-bus connection, and its messages.

pub use steps::StartUnitAndWait;
mod steps;

mod actor;
mod client;
mod error;
pub mod proxy;
pub mod unit;

pub use actor::{PowerOff, Reboot, RunUnitToCompletion, SystemdSupervisor, METHOD_TIMEOUT};
pub use client::{run_to_completion, FollowOptions, DEFAULT_SERVICE_GRACE};
pub use error::SystemdError;
pub use unit::{ActiveState, MainExit, UnitOutcome, UnitSnapshot, Verdict};

//! What can go wrong when talking to systemd.

use std::time::Duration;

/// A failure of the supervisor itself (as opposed to a unit that ran and
/// failed, which is a [`super::UnitOutcome`] with a failed verdict).
///
/// Every variant's message names the unit (when there is one) and the cause,
/// ready to be shown to Ironic as a step failure.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SystemdError {
    /// No connection to the system bus could be made.
    #[error("cannot connect to the system D-Bus at {address}: {detail}")]
    Connect {
        /// The address tried (or "the default system bus").
        address: String,
        /// zbus' error.
        detail: String,
    },
    /// systemd does not know the unit (no unit file).
    #[error("unit {unit} not found: {detail}")]
    NoSuchUnit {
        /// The unit name.
        unit: String,
        /// systemd's explanation.
        detail: String,
    },
    /// The unit exists but cannot be started (bad unit file, masked, ...).
    #[error("unit {unit} cannot be loaded: LoadState={load_state}")]
    NotLoaded {
        /// The unit name.
        unit: String,
        /// `bad-setting`, `error`, `masked`, ...
        load_state: String,
    },
    /// Only service units can be run to completion.
    #[error("unit {unit} is not a service; only .service units can be run to completion")]
    NotAService {
        /// The unit name.
        unit: String,
    },
    /// A D-Bus call failed (including `StartUnit` error replies).
    #[error("D-Bus call {method} for {unit} failed: {detail}")]
    Call {
        /// The unit name (or `-` for manager-wide calls).
        unit: String,
        /// The D-Bus method, e.g. `StartUnit`.
        method: &'static str,
        /// The D-Bus error name and message, or zbus' error.
        detail: String,
    },
    /// The start job ended without starting the main process
    /// (`JobRemoved` result other than `done`).
    #[error("start job of {unit} finished with result '{job_result}' (unit Result={unit_result}); the unit did not run")]
    JobFailed {
        /// The unit name.
        unit: String,
        /// `failed`, `dependency`, `canceled`, `timeout`, `skipped`.
        job_result: String,
        /// The unit's `Result` property at that time.
        unit_result: String,
    },
    /// The bus connection closed while following the unit.
    #[error("the system D-Bus connection was lost while waiting for {unit}")]
    BusLost {
        /// The unit name.
        unit: String,
    },
    /// systemd left the bus while following the unit.
    #[error("org.freedesktop.systemd1 left the bus while waiting for {unit}")]
    ServiceLost {
        /// The unit name.
        unit: String,
    },
    /// The caller's time limit passed before the unit finished (the unit is
    /// left running).
    #[error("{unit} did not finish within {after:?}")]
    Timeout {
        /// The unit name.
        unit: String,
        /// The limit.
        after: Duration,
    },
}

impl SystemdError {
    /// A failed D-Bus call, keeping the D-Bus error name when there is one.
    pub(crate) fn call(unit: &str, method: &'static str, error: zbus::Error) -> Self {
        Self::Call {
            unit: unit.to_string(),
            method,
            detail: describe(&error),
        }
    }
}

/// `org.x.Error: message` for D-Bus error replies, zbus' text otherwise.
pub(crate) fn describe(error: &zbus::Error) -> String {
    match error {
        zbus::Error::MethodError(name, Some(message), _) => format!("{name}: {message}"),
        zbus::Error::MethodError(name, None, _) => name.to_string(),
        other => other.to_string(),
    }
}

/// The D-Bus error name of an error reply.
pub(crate) fn error_name(error: &zbus::Error) -> Option<String> {
    use zbus::DBusError as _;
    match error {
        zbus::Error::MethodError(name, _, _) => Some(name.to_string()),
        zbus::Error::FDO(fdo) => Some(fdo.name().to_string()),
        _ => None,
    }
}

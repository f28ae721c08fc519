//! Unit states and how a finished unit is judged: plain logic, no D-Bus.
//!
//! systemd describes a service's end with `ActiveState`/`SubState`, the
//! service `Result` (`success`, `exit-code`, `signal`, `core-dump`,
//! `timeout`, ...) and the main process' `ExecMainCode` (a `CLD_*` code) and
//! `ExecMainStatus` (exit status or signal number). [`interpret`] turns those
//! into a [`Verdict`]; [`is_finished`] decides, from what the supervisor has
//! seen since `StartUnit`, whether the unit has run to its end.

use std::fmt;
use std::time::Duration;

use serde::{Serialize, Serializer};

/// A unit's `ActiveState`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ActiveState {
    /// `active`: started, running (or exited with `RemainAfterExit=yes`).
    Active,
    /// `reloading`.
    Reloading,
    /// `inactive`: not running; a service that ended cleanly.
    Inactive,
    /// `failed`: not running, and it ended badly.
    Failed,
    /// `activating`: being started (e.g. a `Type=oneshot` service running).
    Activating,
    /// `deactivating`: being stopped.
    Deactivating,
    /// `maintenance` (systemd ≥ 245).
    Maintenance,
    /// `refreshing` (systemd ≥ 255).
    Refreshing,
    /// Anything a newer systemd may add.
    Other(String),
}

impl ActiveState {
    /// Parses systemd's spelling; unknown words are kept in [`ActiveState::Other`].
    pub fn parse(state: &str) -> Self {
        match state {
            "active" => Self::Active,
            "reloading" => Self::Reloading,
            "inactive" => Self::Inactive,
            "failed" => Self::Failed,
            "activating" => Self::Activating,
            "deactivating" => Self::Deactivating,
            "maintenance" => Self::Maintenance,
            "refreshing" => Self::Refreshing,
            other => Self::Other(other.to_string()),
        }
    }

    /// systemd's spelling.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Active => "active",
            Self::Reloading => "reloading",
            Self::Inactive => "inactive",
            Self::Failed => "failed",
            Self::Activating => "activating",
            Self::Deactivating => "deactivating",
            Self::Maintenance => "maintenance",
            Self::Refreshing => "refreshing",
            Self::Other(other) => other,
        }
    }

    /// `active` or `activating`: the original agent's "still running" test,
    /// and the "already started" warning before `StartUnit`.
    pub fn is_active_or_activating(&self) -> bool {
        matches!(self, Self::Active | Self::Activating)
    }

    /// Up or coming up (`active`, `activating`, `reloading`, `refreshing`):
    /// seeing this after `StartUnit` proves our start has taken effect.
    /// `deactivating` does not count: it may be the end of an earlier run.
    pub fn is_up(&self) -> bool {
        matches!(
            self,
            Self::Active | Self::Activating | Self::Reloading | Self::Refreshing
        )
    }

    /// `inactive` or `failed`: nothing of the unit is running.
    pub fn is_down(&self) -> bool {
        matches!(self, Self::Inactive | Self::Failed)
    }
}

impl Serialize for ActiveState {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for ActiveState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `ExecMainCode` value: the main process exited normally (`CLD_EXITED`).
pub const CLD_EXITED: i32 = 1;
/// `ExecMainCode` value: the main process was killed by a signal (`CLD_KILLED`).
pub const CLD_KILLED: i32 = 2;
/// `ExecMainCode` value: killed by a signal, core dumped (`CLD_DUMPED`).
pub const CLD_DUMPED: i32 = 3;

/// How the unit's main process ended, from `ExecMainCode` and `ExecMainStatus`.
///
/// Serialized as `"not_run"`, `{"exited": 3}`, `{"killed": 9}`, `{"dumped": 11}`
/// or `{"other": {"code": 4, "status": 5}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MainExit {
    /// `ExecMainCode` 0: no main process has ended (it never ran, or the
    /// unit was reloaded since).
    NotRun,
    /// `CLD_EXITED`: exited with this status.
    Exited(i32),
    /// `CLD_KILLED`: killed by this signal.
    Killed(i32),
    /// `CLD_DUMPED`: killed by this signal, and dumped core.
    Dumped(i32),
    /// Any other `CLD_*` code (`CLD_TRAPPED`, `CLD_STOPPED`, ...), with the status.
    Other {
        /// The `ExecMainCode`.
        code: i32,
        /// The `ExecMainStatus`.
        status: i32,
    },
}

impl MainExit {
    /// Interprets `ExecMainCode` / `ExecMainStatus`.
    pub fn from_codes(code: i32, status: i32) -> Self {
        match code {
            0 => Self::NotRun,
            CLD_EXITED => Self::Exited(status),
            CLD_KILLED => Self::Killed(status),
            CLD_DUMPED => Self::Dumped(status),
            code => Self::Other { code, status },
        }
    }

    /// The exit status, when the process exited normally.
    pub fn exit_status(&self) -> Option<i32> {
        match self {
            Self::Exited(status) => Some(*status),
            _ => None,
        }
    }

    /// The signal number, when a signal ended the process.
    pub fn signal(&self) -> Option<i32> {
        match self {
            Self::Killed(signal) | Self::Dumped(signal) => Some(*signal),
            _ => None,
        }
    }
}

impl fmt::Display for MainExit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotRun => f.write_str("the main process did not run"),
            Self::Exited(status) => write!(f, "the main process exited with status {status}"),
            Self::Killed(signal) => {
                write!(f, "the main process was killed by {}", SignalName(*signal))
            }
            Self::Dumped(signal) => write!(
                f,
                "the main process was killed by {} and dumped core",
                SignalName(*signal)
            ),
            Self::Other { code, status } => write!(
                f,
                "the main process ended with code {code}, status {status}"
            ),
        }
    }
}

/// The conventional name of a Linux signal number (`9` → `SIGKILL`).
///
/// Covers the standard signals, numbered as on x86, arm and most other
/// Linux architectures; real-time signals are `SIGRTMIN+n`.
pub fn signal_name(signal: i32) -> Option<String> {
    const NAMES: [&str; 31] = [
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    match signal {
        1..=31 => Some(NAMES[(signal - 1) as usize].to_string()),
        34..=64 => Some(format!("SIGRTMIN+{}", signal - 34)),
        _ => None,
    }
}

/// Displays `SIGKILL (9)`, or `signal 99` for unknown numbers.
struct SignalName(i32);

impl fmt::Display for SignalName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match signal_name(self.0) {
            Some(name) => write!(f, "{name} ({})", self.0),
            None => write!(f, "signal {}", self.0),
        }
    }
}

/// What the supervisor reads from a unit once it has ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitSnapshot {
    /// `ActiveState`.
    pub active_state: ActiveState,
    /// `SubState` (`dead`, `failed`, `exited`, ...).
    pub sub_state: String,
    /// The service `Result` (`success`, `exit-code`, `signal`, ...).
    pub result: String,
    /// `ExecMainCode` / `ExecMainStatus`, interpreted.
    pub main_exit: MainExit,
}

/// Whether the unit ended cleanly (serialized as `"succeeded"` or `{"failed": "<message>"}`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// It ended cleanly: `Result=success` and nothing left running.
    Succeeded,
    /// Anything else, with a message naming the unit, its `Result` and how
    /// the main process ended.
    Failed(String),
}

/// Judges a unit that has run to its end.
///
/// Success iff `Result` is `success` and the unit is `inactive` (or
/// `active`/`exited`, a `RemainAfterExit=yes` service after a clean run).
/// Exit statuses listed in `SuccessExitStatus=` already give `Result=success`.
pub fn interpret(unit: &str, snapshot: &UnitSnapshot) -> Verdict {
    let ended_cleanly = match snapshot.active_state {
        ActiveState::Inactive => true,
        ActiveState::Active => snapshot.sub_state == "exited",
        _ => false,
    };
    if ended_cleanly && snapshot.result == "success" {
        return Verdict::Succeeded;
    }
    Verdict::Failed(format!(
        "{unit} failed: Result={}, {} (ActiveState={}, SubState={})",
        if snapshot.result.is_empty() {
            "unknown"
        } else {
            &snapshot.result
        },
        snapshot.main_exit,
        snapshot.active_state,
        snapshot.sub_state,
    ))
}

/// What the supervisor has seen since `StartUnit` returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    /// The `result` of our start job's `JobRemoved`, once it arrived
    /// (`done`, `failed`, `dependency`, `canceled`, `timeout`, `skipped`).
    /// For `Type=simple` it arrives when the process *starts*.
    pub job_result: Option<String>,
    /// The unit was seen up ([`ActiveState::is_up`]) after our start, or was
    /// already active before it.
    pub seen_up: bool,
}

/// Whether a unit in `state` (with `sub_state` when it was read) has run to
/// its end, given what was seen since `StartUnit`.
///
/// `inactive`/`failed` alone is not enough: right after `StartUnit` the
/// unit may still show the end of an *earlier* run (the state of the queued
/// job is not visible yet, and property caches can be stale). It counts only
/// once our job was removed or the unit was seen up. `active` with SubState
/// `exited` (`RemainAfterExit=yes`) counts once our job was removed.
pub fn is_finished(state: &ActiveState, sub_state: Option<&str>, progress: &Progress) -> bool {
    let job_removed = progress.job_result.is_some();
    match state {
        ActiveState::Inactive | ActiveState::Failed => job_removed || progress.seen_up,
        ActiveState::Active => job_removed && sub_state == Some("exited"),
        _ => false,
    }
}

/// The end of a unit the supervisor started and followed (serializable, for
/// a command result).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnitOutcome {
    /// The unit name, as started.
    pub unit: String,
    /// Whether it ended cleanly, or the failure message.
    pub verdict: Verdict,
    /// The properties read at the end.
    pub snapshot: UnitSnapshot,
    /// The unit was already `active`/`activating` before `StartUnit` (logged
    /// as an error, then followed to its end like the original agent does).
    pub already_active: bool,
    /// The result of our start job (`done` normally).
    pub job_result: Option<String>,
    /// D-Bus method calls made while waiting, i.e. after `StartUnit`
    /// returned: property reads after relevant signals plus the final read.
    /// Small and independent of how long the unit runs (no polling).
    pub dbus_calls_while_waiting: u32,
    /// Signals received on the unit's and the job's match rules while waiting.
    pub signals_while_waiting: u32,
    /// Time from `StartUnit` returning to the outcome (serialized as seconds).
    #[serde(serialize_with = "seconds")]
    pub waited: Duration,
}

impl UnitOutcome {
    /// True when the unit ended cleanly.
    pub fn succeeded(&self) -> bool {
        self.verdict == Verdict::Succeeded
    }

    /// The failure message, when it did not.
    pub fn failure(&self) -> Option<&str> {
        match &self.verdict {
            Verdict::Succeeded => None,
            Verdict::Failed(message) => Some(message),
        }
    }
}

fn seconds<S: Serializer>(duration: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_f64(duration.as_secs_f64())
}

/// Adds `.service` to a name without a unit-type suffix, as `systemctl` does.
pub fn normalize_unit_name(name: &str) -> String {
    const SUFFIXES: [&str; 11] = [
        ".service",
        ".socket",
        ".target",
        ".device",
        ".mount",
        ".automount",
        ".swap",
        ".timer",
        ".path",
        ".slice",
        ".scope",
    ];
    if SUFFIXES.iter().any(|suffix| name.ends_with(suffix)) {
        name.to_string()
    } else {
        format!("{name}.service")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(state: &str, sub: &str, result: &str, code: i32, status: i32) -> UnitSnapshot {
        UnitSnapshot {
            active_state: ActiveState::parse(state),
            sub_state: sub.to_string(),
            result: result.to_string(),
            main_exit: MainExit::from_codes(code, status),
        }
    }

    #[test]
    fn clean_exit_succeeds() {
        let snap = snapshot("inactive", "dead", "success", CLD_EXITED, 0);
        assert_eq!(interpret("agent.service", &snap), Verdict::Succeeded);
    }

    #[test]
    fn remain_after_exit_success_succeeds() {
        let snap = snapshot("active", "exited", "success", CLD_EXITED, 0);
        assert_eq!(interpret("a.service", &snap), Verdict::Succeeded);
    }

    #[test]
    fn still_running_is_not_success() {
        let snap = snapshot("active", "running", "success", 0, 0);
        assert!(matches!(interpret("a.service", &snap), Verdict::Failed(_)));
    }

    #[test]
    fn exit_code_failure_names_unit_result_and_status() {
        let snap = snapshot("failed", "failed", "exit-code", CLD_EXITED, 3);
        let Verdict::Failed(message) = interpret("agent.service", &snap) else {
            panic!("exit 3 must fail");
        };
        assert!(message.contains("agent.service"), "{message}");
        assert!(message.contains("Result=exit-code"), "{message}");
        assert!(message.contains("exited with status 3"), "{message}");
    }

    #[test]
    fn signal_failure_names_the_signal() {
        let snap = snapshot("failed", "failed", "signal", CLD_KILLED, 9);
        let Verdict::Failed(message) = interpret("agent.service", &snap) else {
            panic!("SIGKILL must fail");
        };
        assert!(message.contains("Result=signal"), "{message}");
        assert!(message.contains("killed by SIGKILL (9)"), "{message}");
        assert_eq!(snap.main_exit.signal(), Some(9));
        assert_eq!(snap.main_exit.exit_status(), None);
    }

    #[test]
    fn core_dump_is_reported() {
        let snap = snapshot("failed", "failed", "core-dump", CLD_DUMPED, 11);
        let message = match interpret("x.service", &snap) {
            Verdict::Failed(message) => message,
            Verdict::Succeeded => panic!("core dump must fail"),
        };
        assert!(
            message.contains("SIGSEGV (11) and dumped core"),
            "{message}"
        );
        assert!(message.contains("Result=core-dump"), "{message}");
    }

    #[test]
    fn inactive_with_bad_result_fails() {
        let snap = snapshot("inactive", "dead", "timeout", 0, 0);
        let message = interpret("x.service", &snap);
        assert!(
            matches!(&message, Verdict::Failed(m) if m.contains("Result=timeout") && m.contains("did not run")),
            "{message:?}"
        );
    }

    #[test]
    fn exec_main_codes() {
        assert_eq!(MainExit::from_codes(0, 0), MainExit::NotRun);
        assert_eq!(MainExit::from_codes(1, 3), MainExit::Exited(3));
        assert_eq!(MainExit::from_codes(2, 15), MainExit::Killed(15));
        assert_eq!(MainExit::from_codes(3, 6), MainExit::Dumped(6));
        assert_eq!(
            MainExit::from_codes(4, 5),
            MainExit::Other { code: 4, status: 5 }
        );
    }

    #[test]
    fn signal_names() {
        assert_eq!(signal_name(9).as_deref(), Some("SIGKILL"));
        assert_eq!(signal_name(15).as_deref(), Some("SIGTERM"));
        assert_eq!(signal_name(31).as_deref(), Some("SIGSYS"));
        assert_eq!(signal_name(36).as_deref(), Some("SIGRTMIN+2"));
        assert_eq!(signal_name(0), None);
        assert_eq!(
            MainExit::Killed(99).to_string(),
            "the main process was killed by signal 99"
        );
    }

    #[test]
    fn active_states_round_trip() {
        for word in [
            "active",
            "reloading",
            "inactive",
            "failed",
            "activating",
            "deactivating",
            "maintenance",
            "refreshing",
            "somethingnew",
        ] {
            assert_eq!(ActiveState::parse(word).as_str(), word);
        }
        assert!(ActiveState::Activating.is_active_or_activating());
        assert!(!ActiveState::Deactivating.is_up());
        assert!(ActiveState::Failed.is_down());
    }

    #[test]
    fn stale_down_state_right_after_start_is_not_the_end() {
        // A unit that failed earlier still reads `failed` until our job runs.
        let fresh = Progress::default();
        assert!(!is_finished(&ActiveState::Failed, None, &fresh));
        assert!(!is_finished(&ActiveState::Inactive, None, &fresh));
    }

    #[test]
    fn down_after_job_removed_or_seen_up_is_the_end() {
        let job_done = Progress {
            job_result: Some("done".into()),
            seen_up: false,
        };
        assert!(is_finished(&ActiveState::Inactive, None, &job_done));
        let seen_up = Progress {
            job_result: None,
            seen_up: true,
        };
        assert!(is_finished(&ActiveState::Failed, None, &seen_up));
        assert!(!is_finished(
            &ActiveState::Active,
            Some("running"),
            &job_done
        ));
        assert!(!is_finished(&ActiveState::Deactivating, None, &job_done));
    }

    #[test]
    fn remain_after_exit_ends_once_our_job_is_gone() {
        let job_done = Progress {
            job_result: Some("done".into()),
            seen_up: true,
        };
        assert!(is_finished(&ActiveState::Active, Some("exited"), &job_done));
        let job_pending = Progress {
            job_result: None,
            seen_up: true,
        };
        assert!(!is_finished(
            &ActiveState::Active,
            Some("exited"),
            &job_pending
        ));
    }

    #[test]
    fn outcome_serializes_for_a_command_result() {
        let outcome = UnitOutcome {
            unit: "agent.service".into(),
            verdict: Verdict::Failed("agent.service failed: Result=exit-code".into()),
            snapshot: snapshot("failed", "failed", "exit-code", CLD_EXITED, 3),
            already_active: false,
            job_result: Some("done".into()),
            dbus_calls_while_waiting: 7,
            signals_while_waiting: 9,
            waited: Duration::from_millis(1500),
        };
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["snapshot"]["active_state"], "failed");
        assert_eq!(json["snapshot"]["result"], "exit-code");
        assert_eq!(json["snapshot"]["main_exit"]["exited"], 3);
        assert_eq!(
            json["verdict"]["failed"],
            "agent.service failed: Result=exit-code"
        );
        assert_eq!(json["waited"], 1.5);
        assert_eq!(serde_json::to_value(MainExit::NotRun).unwrap(), "not_run");
        assert_eq!(
            serde_json::to_value(Verdict::Succeeded).unwrap(),
            "succeeded"
        );
    }

    #[test]
    fn unit_names_get_a_service_suffix() {
        assert_eq!(normalize_unit_name("agent"), "agent.service");
        assert_eq!(normalize_unit_name("agent.service"), "agent.service");
        assert_eq!(normalize_unit_name("x.target"), "x.target");
    }
}

//! A REAL private systemd for tests (`tests/harness/systemd`, see its README): PID 1 of
//! new namespaces with only the harness's units, reachable on its own system bus.
//!
//! ```ignore
//! if !support::systemd::prerequisites() { return; }
//! let sd = PrivateSystemd::start("tag", true);           // stopped on drop
//! std::env::set_var("DBUS_SYSTEM_BUS_ADDRESS", &sd.address); // or pass it to a child
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{Actor, Addr};
use ironic_agent_actors::systemd::SystemdSupervisor;

/// The private systemd harness scripts (`start.sh`, `stop.sh`, units).
pub const HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/systemd");

/// The unit directory holding the `agent.service` stand-in that
/// `start_assisted_install` starts (behaviour from [`PrivateSystemd::configure_agent`]).
pub const ASSISTED_UNITS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/harness/systemd/assisted-units"
);

/// True when a private systemd can run here (root, systemd, dbus-daemon, unshare,
/// busctl); panics under `CI=true` when not, so CI never skips these tests.
pub fn prerequisites() -> bool {
    let missing: Vec<&str> = [
        "/usr/lib/systemd/systemd",
        "/usr/bin/dbus-daemon",
        "/usr/bin/unshare",
        "/usr/bin/busctl",
    ]
    .into_iter()
    .filter(|path| !Path::new(path).exists())
    .collect();
    let root = super::fixture::is_root();
    if missing.is_empty() && root {
        return true;
    }
    let why = format!("root: {root}, missing: {missing:?} (run .ci/install-deps.sh as root)");
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("private systemd tests cannot run under CI: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

/// One private systemd; torn down on drop (dedicated instances) or, for the shared
/// one, by the harness's supervisor when this test process exits.
pub struct PrivateSystemd {
    /// The harness directory (`run/` is the namespace's `/run`).
    pub dir: PathBuf,
    /// Its bus address, for `DBUS_SYSTEM_BUS_ADDRESS`.
    pub address: String,
    stop_on_drop: bool,
}

impl PrivateSystemd {
    /// Boots one with the harness's units (`units/`, `test-units/`).
    pub fn start(tag: &str, stop_on_drop: bool) -> Self {
        Self::start_with_units(tag, stop_on_drop, &[])
    }

    /// Boots one with the harness's units plus every file of `extra_units` directories.
    pub fn start_with_units(tag: &str, stop_on_drop: bool, extra_units: &[&str]) -> Self {
        let dir = std::env::temp_dir().join(format!("ia-sd-{}-{tag}", std::process::id()));
        let mut command = Command::new("bash");
        command.arg(format!("{HARNESS}/start.sh")).arg(&dir).args([
            "--owner",
            &std::process::id().to_string(),
            "--cleanup",
        ]);
        for units in extra_units {
            command.args(["--units", units]);
        }
        let out = command
            .stderr(Stdio::inherit())
            .output()
            .expect("run start.sh");
        assert!(
            out.status.success(),
            "start.sh failed for {}",
            dir.display()
        );
        let address = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(address.starts_with("unix:path="), "address: {address}");
        Self {
            dir,
            address,
            stop_on_drop,
        }
    }

    /// The instance shared by every test of a binary that only starts its own units.
    pub fn shared() -> &'static PrivateSystemd {
        static SHARED: OnceLock<PrivateSystemd> = OnceLock::new();
        SHARED.get_or_init(|| Self::start("shared", false))
    }

    /// A supervisor actor on this bus (call inside an actix system).
    pub fn supervisor(&self) -> Addr<SystemdSupervisor> {
        SystemdSupervisor::new(Some(self.address.clone())).start()
    }

    /// Sets how the `agent.service` stand-in ([`ASSISTED_UNITS`]) behaves at its next
    /// start: run `seconds`, then exit with `exit_code`.
    pub fn configure_agent(&self, seconds: f64, exit_code: i32) {
        std::fs::write(
            self.dir.join("run/sdtest/agent.env"),
            format!("SDTEST_AGENT_SECONDS={seconds}\nSDTEST_AGENT_EXIT={exit_code}\n"),
        )
        .expect("write agent.env");
    }

    /// `DIR/run/sdtest/<unit>.ts`: the wall clock a test unit stamped just before
    /// its main process exited.
    pub fn exit_stamp(&self, unit: &str) -> Option<SystemTime> {
        let text =
            std::fs::read_to_string(self.dir.join("run/sdtest").join(format!("{unit}.ts"))).ok()?;
        let nanos: u64 = text.trim().parse().ok()?;
        Some(UNIX_EPOCH + Duration::from_nanos(nanos))
    }

    /// Whether the instance has been torn down (systemd exited or was stopped).
    pub fn stopped(&self) -> bool {
        !self.dir.exists() || self.dir.join("stopped").exists()
    }

    /// Tears it down and waits (`stop.sh`); idempotent.
    pub fn stop(&self) {
        let _ = Command::new("bash")
            .arg(format!("{HARNESS}/stop.sh"))
            .arg(&self.dir)
            .status();
    }
}

impl Drop for PrivateSystemd {
    fn drop(&mut self) {
        if self.stop_on_drop {
            self.stop();
        }
    }
}

//! The CoreOS hostname fix at start-up of the BUILT binary: it runs before the actors
//! start when the host root exists (here a prepared host root with a stand-in
//! `hostnamectl`, entered through the test-only `chroot` shim), a failure stops start-up
//! with a clear message and a non-zero exit, and a missing host root gives one warning.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::agent::{AgentOptions, AgentProcess};

use support::fixture::CHROOT_PATH;
use support::fixture::COREOS_HARNESS as HARNESS;

fn root_or_skip(test: &str) -> bool {
    if support::fixture::is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").map_or(true, |v| v != "true"),
        "{test}: CI must run as root"
    );
    eprintln!("SKIP {test}: needs root (chroot)");
    false
}

/// A prepared host root whose `hostnamectl` prints `current` and exits `set_rc` on
/// `set-hostname`, plus a directory holding the `chroot` shim. Returns (root, shims).
fn prepare(dir: &Path, current: &str, set_rc: i32) -> (PathBuf, PathBuf) {
    let root = dir.join("host-root");
    let status = Command::new("bash")
        .arg(format!("{HARNESS}/host-root.sh"))
        .arg(&root)
        .status()
        .expect("host-root.sh");
    assert!(status.success(), "host-root.sh failed");
    let hostnamectl = root.join("usr/bin/hostnamectl");
    std::fs::write(
        &hostnamectl,
        format!(
            "#!/bin/sh\n# test stand-in\necho \"$*\" >> /tmp/hostnamectl.calls\n\
             case \"$1\" in hostname) echo '{current}';; set-hostname) exit {set_rc};; esac\n"
        ),
    )
    .expect("stand-in");
    std::fs::set_permissions(&hostnamectl, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims).expect("shims");
    std::os::unix::fs::symlink(format!("{HARNESS}/chroot-shim.sh"), shims.join("chroot"))
        .expect("chroot shim");
    (root, shims)
}

fn path_with(shims: &Path) -> String {
    format!(
        "{}:{}",
        shims.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn calls(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("tmp/hostnamectl.calls"))
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn start_up_reads_the_host_hostname_before_serving() {
    if !root_or_skip("start_up_reads_the_host_hostname") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // A real name: read, kept, nothing set (so nothing is written to this machine's /etc).
    let (root, shims) = prepare(dir.path(), "worker-3", 0);
    let agent = AgentProcess::start_with(
        AgentOptions::default()
            .args(["--host-root", &root.display().to_string()])
            .env("PATH", &path_with(&shims))
            .env("SHIM_CHROOT_PATH", CHROOT_PATH)
            .env("IPA_DEFAULT_HOSTNAME", "node-7"),
    );
    assert_eq!(calls(&root), ["hostname"], "{}", agent.logs());
    assert!(
        agent.logs().contains("Host hostname is worker-3"),
        "{}",
        agent.logs()
    );
}

#[test]
fn a_failed_hostname_fix_stops_start_up() {
    if !root_or_skip("a_failed_hostname_fix_stops_start_up") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (root, shims) = prepare(dir.path(), "localhost", 1);
    let out = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
        .args(["--standalone", "--agent-token", "678123"])
        .args(["--listen-host", "127.0.0.1", "--listen-port", "1"])
        .args(["--cmdline-file", "/dev/null"])
        .args([
            "--state-dir",
            &dir.path().join("state").display().to_string(),
        ])
        .args(["--host-root", &root.display().to_string()])
        .env("PATH", path_with(&shims))
        .env("SHIM_CHROOT_PATH", CHROOT_PATH)
        .env("IPA_DEFAULT_HOSTNAME", "node-7")
        .env("RUST_LOG", "info")
        .output()
        .expect("run the agent");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("start-up stopped: CoreOS hostname fix failed"),
        "{stderr}"
    );
    assert!(stderr.contains("set-hostname"), "{stderr}");
    assert!(!stderr.contains("API serving"), "{stderr}");
    assert_eq!(
        calls(&root),
        ["hostname", "set-hostname --static --transient node-7"]
    );
}

#[test]
fn no_host_root_gives_one_warning() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("no-such-root");
    let agent = AgentProcess::start_with(
        AgentOptions::default().args(["--host-root", &missing.display().to_string()]),
    );
    std::thread::sleep(Duration::from_millis(100));
    let logs = agent.logs();
    assert_eq!(
        logs.matches("CoreOS hostname fix skipped: there is no host root")
            .count(),
        1,
        "{logs}"
    );
}

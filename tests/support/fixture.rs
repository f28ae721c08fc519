//! Shared test fixtures: a fixture host for the built agent, a host root with
//! a stand-in `coreos-installer`, and small polling helpers.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The coreos harness scripts (`host-root.sh`, `chroot-shim.sh`, …).
pub const COREOS_HARNESS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/harness/coreos");

/// The PATH the chroot shim gives commands inside a prepared host root.
pub const CHROOT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Whether the tests run as root.
pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().expect("id");
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

/// Polls `probe` every 100 ms until it answers, failing after `timeout`.
pub fn wait_for<T>(what: &str, timeout: Duration, probe: impl FnMut() -> Option<T>) -> T {
    poll_until(timeout, Duration::from_millis(100), probe)
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Polls `probe` every `every` until it answers; `None` once `timeout` has passed.
pub fn poll_until<T>(
    timeout: Duration,
    every: Duration,
    mut probe: impl FnMut() -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// `raw` without ANSI colour sequences (the agent's log on a terminal-less stderr).
pub fn strip_ansi(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A fixture host (sysfs, procfs, /dev, kernel command line) with one physical NIC
/// of MAC `mac` and no block device at all, so the agent reports a MAC the test knows.
pub fn fixture_host(dir: &Path, mac: &str, hostname: &str) {
    let write = |rel: &str, content: &str| {
        let path = dir.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, content).expect("write");
    };
    write(
        "proc/cpuinfo",
        "processor\t: 0\nmodel name\t: Fixture CPU\ncpu MHz\t: 2000.0\nflags\t: fpu sse\n\n",
    );
    write("proc/meminfo", "MemTotal:  4096000 kB\n");
    write("proc/sys/kernel/hostname", &format!("{hostname}\n"));
    write("proc/sys/kernel/arch", "x86_64\n");
    write(
        "proc/sys/kernel/random/boot_id",
        "5b1f2a4e-0000-4000-8000-000000000001\n",
    );
    write("sys/class/net/eth0/address", &format!("{mac}\n"));
    write("sys/class/net/eth0/carrier", "1\n");
    write("sys/devices/virtio0/vendor", "0x1af4\n");
    std::os::unix::fs::symlink(
        "../../../devices/virtio0",
        dir.join("sys/class/net/eth0/device"),
    )
    .expect("symlink");
    write("sys/class/dmi/id/sys_vendor", "Fixture Inc.\n");
    write("sys/class/dmi/id/product_name", "Model 1\n");
    std::fs::create_dir_all(dir.join("dev")).expect("mkdir dev");
    write("cmdline", "");
}

/// The built agent's arguments for a [`fixture_host`] at `root`, talking to Ironic
/// at `api_url` and listening/advertising 127.0.0.1:`port`; no disk is allowed.
pub fn agent_args(root: &Path, api_url: &str, port: u16) -> Vec<String> {
    let r = |rel: &str| root.join(rel).display().to_string();
    vec![
        "--debug".into(),
        "--config-file".into(),
        r("agent.conf"),
        "--api-url".into(),
        api_url.to_string(),
        "--listen-host".into(),
        "127.0.0.1".into(),
        "--listen-port".into(),
        port.to_string(),
        "--advertise-host".into(),
        "127.0.0.1".into(),
        "--advertise-port".into(),
        port.to_string(),
        "--cmdline-file".into(),
        r("cmdline"),
        "--sys-root".into(),
        r("sys"),
        "--proc-root".into(),
        r("proc"),
        "--dev-root".into(),
        r("dev"),
        "--state-dir".into(),
        r("run/ironic-agent"),
        "--host-root".into(),
        r("host"),
        "--block-device-allowlist".into(),
        "/dev/does-not-exist".into(),
    ]
}

/// `defaults` followed by `extra`, where a `--flag` in `extra` replaces the same flag
/// (and its value) in `defaults`: the agent refuses a repeated single-value flag.
pub fn with_overrides(defaults: Vec<String>, extra: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(defaults.len() + extra.len());
    let mut tokens = defaults.into_iter().peekable();
    while let Some(token) = tokens.next() {
        let overridden = token.starts_with("--") && extra.contains(&token);
        let has_value = tokens.peek().is_some_and(|next| !next.starts_with("--"));
        let value = if has_value { tokens.next() } else { None };
        if !overridden {
            out.push(token);
            out.extend(value);
        }
    }
    out.extend(extra);
    out
}

/// A prepared host root at `dir/host-root` whose `coreos-installer` is the shell
/// `script` (with `sleep` available), plus `dir/shims` holding the chroot shim.
/// Returns the host root.
pub fn standin_installer_root(dir: &Path, script: &str) -> PathBuf {
    let root = dir.join("host-root");
    let status = Command::new("bash")
        .arg(format!("{COREOS_HARNESS}/host-root.sh"))
        .arg(&root)
        .status()
        .expect("host-root.sh");
    assert!(status.success());
    // The stand-in sleeps: the host root has sh but no sleep (it links only libc).
    let sleep = Command::new("sh")
        .args(["-c", "command -v sleep"])
        .output()
        .expect("sleep");
    let sleep = String::from_utf8_lossy(&sleep.stdout).trim().to_string();
    std::fs::copy(&sleep, root.join("usr/bin/sleep")).expect("copy sleep");
    let installer = root.join("usr/bin/coreos-installer");
    std::fs::write(&installer, script).expect("stand-in");
    std::fs::set_permissions(&installer, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let shims = dir.join("shims");
    std::fs::create_dir_all(&shims).expect("shims");
    std::os::unix::fs::symlink(
        format!("{COREOS_HARNESS}/chroot-shim.sh"),
        shims.join("chroot"),
    )
    .expect("chroot shim");
    root
}

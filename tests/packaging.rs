//! Packaging: the offline image build and the systemd unit, checked with the
//! real tools (podman, systemd-analyze). In CI these must run, never skip.

use std::path::Path;
use std::process::Command;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

fn tool_available(name: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .map(|out| out.status.success())
        .unwrap_or(false);
    if !found {
        assert!(
            std::env::var("CI").is_err(),
            "{name} is required in CI (installed by .ci/install-deps.sh)"
        );
        eprintln!("skipping: {name} not installed");
    }
    found
}

#[test]
fn image_builds_offline_and_its_binary_runs_from_the_rootfs() {
    if !tool_available("podman") {
        return;
    }
    let image = format!("localhost/ironic-agent:test-{}", std::process::id());
    let build = Command::new("bash")
        .arg(Path::new(REPO).join("container/build-image.sh"))
        .env("BINARY", env!("CARGO_BIN_EXE_ironic-agent"))
        .env("IMAGE", &image)
        .output()
        .expect("run build-image.sh");
    assert!(
        build.status.success(),
        "image build failed: {}",
        String::from_utf8_lossy(&build.stderr)
    );
    let mount = Command::new("podman")
        .args(["image", "mount", &image])
        .output()
        .expect("podman image mount");
    assert!(
        mount.status.success(),
        "{}",
        String::from_utf8_lossy(&mount.stderr)
    );
    let root = String::from_utf8_lossy(&mount.stdout).trim().to_string();
    let version = Command::new("chroot")
        .args([&root, "/usr/bin/ironic-agent", "--version"])
        .output()
        .expect("chroot into the image");
    let chroot_tool = Command::new("chroot")
        .args([&root, "/usr/sbin/chroot", "--version"])
        .output()
        .expect("chroot tool in the image");
    let defaults =
        std::fs::read_to_string(Path::new(&root).join("etc/ironic-python-agent/00-defaults.conf"));
    let _ = Command::new("podman")
        .args(["image", "unmount", &image])
        .output();
    let _ = Command::new("podman").args(["rmi", "-f", &image]).output();
    assert!(
        version.status.success(),
        "{}",
        String::from_utf8_lossy(&version.stderr)
    );
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("ironic-agent "));
    assert!(chroot_tool.status.success(), "the image must carry chroot");
    assert!(defaults
        .expect("defaults conf in the image")
        .contains("collect_lldp = True"));
}

#[test]
fn unit_file_passes_systemd_analyze_verify() {
    if !tool_available("systemd-analyze") || !tool_available("podman") {
        return;
    }
    let output = Command::new("systemd-analyze")
        .args(["verify", &format!("{REPO}/systemd/ironic-agent.service")])
        .output()
        .expect("systemd-analyze verify");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "systemd-analyze verify failed: {stderr}"
    );
    assert!(
        !stderr.contains("ironic-agent.service:"),
        "warnings: {stderr}"
    );
}

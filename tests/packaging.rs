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
    // The image's chroot is the agent itself: chroot into the image, then let that
    // chroot run the agent (and fail on a missing tool as coreutils' chroot does).
    let chroot_tool = Command::new("chroot")
        .args([
            &root,
            "/usr/sbin/chroot",
            "/",
            "/usr/bin/ironic-agent",
            "--version",
        ])
        .output()
        .expect("chroot tool in the image");
    let missing_tool = Command::new("chroot")
        .args([
            &root,
            "/usr/sbin/chroot",
            "/",
            "coreos-installer",
            "install",
        ])
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
    assert!(
        chroot_tool.status.success()
            && String::from_utf8_lossy(&chroot_tool.stdout).starts_with("ironic-agent "),
        "the image's chroot must run a command: {chroot_tool:?}"
    );
    assert_eq!(missing_tool.status.code(), Some(127), "{missing_tool:?}");
    assert!(
        String::from_utf8_lossy(&missing_tool.stderr)
            .contains("failed to run command 'coreos-installer': No such file or directory"),
        "{missing_tool:?}"
    );
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

/// Whether this process may call chroot(2); in CI it must.
fn is_root() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        assert!(std::env::var("CI").is_err(), "CI runs as root");
        eprintln!("skipping: chroot(2) needs root");
    }
    root
}

#[test]
fn agent_called_as_chroot_behaves_as_coreutils_chroot_for_the_installer() {
    if !is_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let chroot = dir.path().join("chroot");
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_ironic-agent"), &chroot).expect("symlink");
    let run = |args: &[&str]| {
        Command::new(&chroot)
            .args(args)
            .env("IN_CHROOT_TEST", "kept")
            .output()
            .expect("run the chroot applet")
    };

    // The root really changes: /root-marker exists only in the temporary root, where
    // it is found but is not executable (126); from "/" it does not exist (127).
    std::fs::write(dir.path().join("root-marker"), "data").expect("marker");
    let temp_root = dir.path().to_str().expect("utf-8 temp path");
    let inside = run(&[temp_root, "/root-marker"]);
    assert_eq!(inside.status.code(), Some(126), "{inside:?}");
    let outside = run(&["/", "/root-marker"]);
    assert_eq!(outside.status.code(), Some(127), "{outside:?}");

    // The command runs from the new "/", with the environment kept.
    let env = run(&[
        "/",
        "/bin/sh",
        "-c",
        "cd /tmp; echo $IN_CHROOT_TEST; exec pwd",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&env.stdout).trim(),
        "kept\n/tmp",
        "{env:?}"
    );
    let cwd = Command::new(&chroot)
        .args(["/", "/bin/pwd"])
        .current_dir(dir.path())
        .output()
        .expect("run the chroot applet");
    assert_eq!(String::from_utf8_lossy(&cwd.stdout).trim(), "/", "{cwd:?}");

    // A missing command: 127 and the message the installer recognises.
    let missing = run(&["/", "coreos-installer", "install"]);
    assert_eq!(missing.status.code(), Some(127), "{missing:?}");
    assert!(String::from_utf8_lossy(&missing.stderr)
        .contains("chroot: failed to run command 'coreos-installer': No such file or directory"));

    // The chroot itself failing: 125, and nothing runs.
    let bad_root = run(&["/nonexistent-root", "/bin/true"]);
    assert_eq!(bad_root.status.code(), Some(125), "{bad_root:?}");
    assert!(String::from_utf8_lossy(&bad_root.stderr).contains("cannot change root directory"));
}

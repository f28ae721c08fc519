//! `install_coreos` whose installer (a stand-in `coreos-installer` in a prepared host
//! root, run through the real chroot) is killed by a signal from outside, as the OOM
//! killer would: every attempt is killed, the step FAILS with the signal named, no
//! installer is left running. Recorded in `target/reliability/fault-installer-killed.json`.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ironic_agent::wiring::start_actors;
use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::installer::{CoreosInstallRequest, InstallCoreos};
use serde_json::json;

use support::fixture::CHROOT_PATH;

/// Reads the pids the stand-in wrote, one per attempt.
fn pids(root: &Path) -> Vec<String> {
    std::fs::read_to_string(root.join("tmp/installer.pids"))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[actix_rt::test]
async fn installer_killed_by_sigkill_fails_the_step_naming_the_signal() {
    if !support::fixture::is_root() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must run as root"
        );
        eprintln!("SKIP installer_faults: needs root (chroot)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    // The stand-in records its pid, reports progress and blocks until killed.
    let root = support::fixture::standin_installer_root(
        dir.path(),
        "#!/bin/sh\n# test stand-in: blocks until killed\n\
         echo $$ >> /tmp/installer.pids\n\
         echo 'Read disk 1.0 MiB/4.0 MiB (25%)'\n\
         while :; do sleep 0.1; done\n",
    );
    std::env::set_var(
        "PATH",
        format!(
            "{}:{}",
            dir.path().join("shims").display(),
            std::env::var("PATH").unwrap_or_default()
        ),
    );
    std::env::set_var("SHIM_CHROOT_PATH", CHROOT_PATH);
    let device = dir.path().join("not-a-disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.standalone = true;
    config.paths = ironic_agent_actors::config::HostPaths::rooted_at(&dir.path().join("agent"));
    config.paths.host_root = root.clone();
    config.block_device_allowlist = vec![device.display().to_string()];
    let agent = start_actors(&config);

    let node = json!({"uuid": "4e1b2c3d", "instance_info": {
        "image_source": "http://127.0.0.1:9/fcos.raw.xz"}});
    let install = actix::spawn({
        let installer = agent.peers.installer.clone();
        let request = CoreosInstallRequest::new(&device, node, None);
        async move { installer.send(InstallCoreos(request)).await }
    });

    // Kill every attempt (the agent makes three) with SIGKILL once it runs.
    let mut killed = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while !install.is_finished() {
        assert!(Instant::now() < deadline, "install_coreos never ended");
        let seen = pids(&root);
        if seen.len() > killed {
            let pid = seen[killed].trim().to_string();
            tokio::time::sleep(Duration::from_millis(200)).await;
            let status = std::process::Command::new("kill")
                .args(["-KILL", &pid])
                .status()
                .expect("kill");
            assert!(status.success(), "kill {pid}");
            killed += 1;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let err = install
        .await
        .expect("join")
        .expect("mailbox")
        .expect_err("a killed installer cannot succeed");
    // The step error the coordinator stores as the FAILED command's `command_error`.
    let details = err.details.clone();
    assert_eq!(err.error_type, "DeploymentError", "{err:?}");
    assert!(
        details.contains("killed by signal SIGKILL") && details.contains("code -9"),
        "{details}"
    );
    assert_eq!(killed, 3, "one kill per attempt: {:?}", pids(&root));
    for pid in pids(&root) {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
        assert!(
            stat.is_empty() || stat.contains(") Z "),
            "installer left running: {stat}"
        );
    }
    support::records::record(
        "fault-installer-killed",
        &json!({"case": "coreos-installer SIGKILLed during install_coreos (every attempt)",
                "attempts_killed": killed, "error_type": err.error_type,
                "outcome": "step FAILED naming the signal after the 3 attempts, no installer left running",
                "error": details}),
    );
}

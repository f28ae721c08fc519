//! Shutdown while `install_coreos` runs (the wiring's `Agent::shutdown`, which the
//! SIGTERM handler calls): a slow stand-in `coreos-installer` in a prepared host root is
//! waited for when it finishes within the drain timeout, and cancelled (its install then
//! fails, so its command cannot stay RUNNING) when it does not.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use ironic_agent::wiring::start_actors;
use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::installer::{CoreosInstallRequest, InstallCoreos};
use serde_json::json;

use support::fixture::CHROOT_PATH;

/// A host root whose `coreos-installer` sleeps `seconds` then writes /tmp/finished.
fn prepare(dir: &Path, seconds: u32) -> AgentConfig {
    let root = support::fixture::standin_installer_root(
        dir,
        &format!(
            "#!/bin/sh\n# test stand-in: a slow install\n\
             i=0; while [ $i -lt {} ]; do sleep 0.1; i=$((i+1)); done\n\
             echo done > /tmp/finished\n",
            seconds * 10
        ),
    );
    let device = dir.join("not-a-disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.standalone = true;
    config.paths = ironic_agent_actors::config::HostPaths::rooted_at(&dir.join("agent"));
    config.paths.host_root = root;
    config.block_device_allowlist = vec![device.display().to_string()];
    config
}

/// The chroot shim first on the agent's PATH (the one test binary sets it once).
fn shim_path(dir: &Path) {
    let path = format!(
        "{}:{}",
        dir.join("shims").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    std::env::set_var("PATH", path);
    std::env::set_var("SHIM_CHROOT_PATH", CHROOT_PATH);
}

#[actix_rt::test]
async fn shutdown_waits_for_a_running_install_then_cancels_a_stuck_one() {
    if !support::fixture::is_root() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must run as root"
        );
        eprintln!("SKIP shutdown_install: needs root (chroot)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    shim_path(dir.path());

    // 1. A 2 s install and a 60 s drain timeout: shutdown waits for it to finish.
    let config = prepare(&dir.path().join("slow"), 2);
    let agent = start_actors(&config);
    let device = config.block_device_allowlist[0].clone();
    let node = json!({"uuid": "0c4b5c0e", "instance_info": {
        "image_source": "http://127.0.0.1:9/fcos.raw.xz"}});
    let install = actix::spawn({
        let installer = agent.peers.installer.clone();
        let request = CoreosInstallRequest::new(&device, node.clone(), None);
        async move { installer.send(InstallCoreos(request)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    agent.shutdown(Duration::from_secs(60)).await;
    assert!(
        config.paths.host_root.join("tmp/finished").exists(),
        "shutdown returned before the install finished"
    );
    assert!(started.elapsed() >= Duration::from_millis(1000));
    let _ = install.await.expect("join").expect("mailbox");

    // 2. A 60 s install and a 1 s drain timeout: cancelled, its install fails.
    let config = prepare(&dir.path().join("stuck"), 60);
    let agent = start_actors(&config);
    let device = config.block_device_allowlist[0].clone();
    let install = actix::spawn({
        let installer = agent.peers.installer.clone();
        let request = CoreosInstallRequest::new(&device, node, None);
        async move { installer.send(InstallCoreos(request)).await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let drained = agent.shutdown(Duration::from_secs(1)).await;
    assert!(!drained);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "{:?}",
        started.elapsed()
    );
    let outcome = install.await.expect("join").expect("mailbox");
    let err = outcome.expect_err("cancelled");
    assert!(err.details.contains("cancelled"), "{err}");
    assert!(!config.paths.host_root.join("tmp/finished").exists());
}

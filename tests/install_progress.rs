//! `install_coreos` progress reaches the installer's progress slot, which the coordinator
//! reads into the RUNNING command's `command_progress` ([`GetProgress`]): a stand-in
//! `coreos-installer` in a prepared host root prints a progress line and waits.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::Actor;
use ironic_agent_actors::config::AgentConfig;
use ironic_agent_actors::host::ProcessRunner;
use ironic_agent_actors::installer::{
    CoreosInstallRequest, GetProgress, InstallCoreos, InstallerRunner,
};
use serde_json::json;

use support::fixture::CHROOT_PATH;

#[actix_rt::test]
async fn install_coreos_progress_is_readable_while_it_runs() {
    if !support::fixture::is_root() {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI must run as root"
        );
        eprintln!("SKIP install_coreos_progress: needs root (chroot)");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let root = support::fixture::standin_installer_root(
        dir.path(),
        "#!/bin/sh\n# test stand-in: one progress line, then wait for the release file\n\
         echo 'Read disk 26.0 KiB/52.0 KiB (50%)' >&2\n\
         echo 'Read disk 26.0 KiB/52.0 KiB (50%)'\n\
         i=0; while [ ! -e /tmp/release ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done\n\
         exit 0\n",
    );
    let shims = dir.path().join("shims");
    // Never written: the stand-in does not touch it.
    let device = dir.path().join("not-a-disk");
    std::fs::write(&device, b"").expect("device");
    let mut config = AgentConfig::default();
    config.paths = ironic_agent_actors::config::HostPaths::rooted_at(&dir.path().join("agent"));
    config.paths.host_root = root.clone();
    config.block_device_allowlist = vec![device.display().to_string()];
    let process = ProcessRunner {
        extra_path: vec![shims.clone()],
    };
    let runner = InstallerRunner::new(config, Arc::new(process.clone()))
        .with_process_runner(process)
        .with_installer_env(BTreeMap::from([(
            "SHIM_CHROOT_PATH".to_string(),
            CHROOT_PATH.to_string(),
        )]))
        .with_uefi_retry_delay(Duration::from_millis(10))
        .start();
    assert!(runner.send(GetProgress).await.expect("mailbox").is_none());
    let node = json!({"uuid": "0c4b5c0e", "instance_info": {
        "image_source": "http://127.0.0.1:9/fcos.raw.xz"}});
    let request = CoreosInstallRequest::new(&device, node, None);
    let install = actix::spawn({
        let runner = runner.clone();
        async move { runner.send(InstallCoreos(request)).await }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let seen = loop {
        let progress = runner.send(GetProgress).await.expect("mailbox");
        if let Some(p) = progress.filter(|p| p.done > 0) {
            break p;
        }
        assert!(Instant::now() < deadline, "no progress while installing");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(seen.done, 26 * 1024);
    assert_eq!(seen.total, Some(52 * 1024));
    assert!(
        seen.message.as_deref().unwrap_or("").contains("Read disk"),
        "{seen:?}"
    );
    std::fs::write(root.join("tmp/release"), b"").expect("release");
    let _ = install.await.expect("join").expect("mailbox");
    assert!(
        runner.send(GetProgress).await.expect("mailbox").is_none(),
        "progress cleared when the install ends"
    );
}

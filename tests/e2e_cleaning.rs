//! Cleaning end to end with the REAL Ironic 39.0.0 conductor and the BUILT agent, on
//! loop disks from `losetup -f` (each given a GPT and an ext4 file system first):
//! - issue 9, scenario 2: automated cleaning on `provide` erases the metadata of the
//!   allowed disk (`erase_devices_metadata` at priority 10, as Metal3 configures it);
//!   a second loop disk that is not on the allow-list keeps everything;
//! - scenario 3: manual cleaning with `erase_devices_metadata` then the software RAID-1
//!   `create_configuration` (raid interface `agent`): the RAID step fails clearly (no
//!   mdadm here) → `clean failed` with our error in `last_error`, the erase done;
//! - scenario 8: fast track, ONE agent process: inspect → clean → deploy → undeploy
//!   with cleaning. Powering the node off after the deploy wipes the agent token in
//!   Ironic; the agent must look up a new one for the undeploy's cleaning to work.
//!
//! One conductor (fast track, automated clean, metadata erase) serves all three, one
//! node each. On failure the output holds the node's `last_error` and the agent and
//! Ironic log tails. Needs root (loop devices); outside CI it skips without it.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use support::conductor::{
    expect_state, last_error_of, shared_ironic, AgentSetup, ConductorAgent, STATE_TIMEOUT,
};
use support::fixture::{is_root, wait_for};
use support::ironic::{IronicOptions, IronicSandbox};
use support::loopdisk::LoopDisk;

/// Metal3's cleaning set-up: fast track, automated cleaning, metadata erase.
const METAL3_LIKE: IronicOptions = IronicOptions {
    require_tls: false,
    fast_track: true,
    automated_clean: true,
    short_callback_timeout: false,
    metadata_erase: true,
};

/// A cleaning has the heartbeat interval (3-6 s here) a few times over.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(120);

const DISK_SIZE: u64 = 64 << 20;

/// Whether the scenario can run: as root; never skipped in CI.
fn can_run() -> bool {
    if is_root() {
        return true;
    }
    assert!(
        std::env::var("CI").is_err(),
        "e2e cleaning needs root in CI"
    );
    eprintln!("SKIP e2e cleaning: needs root (loop devices)");
    false
}

/// Seconds since a scenario started, printed next to each state reached.
struct Clock(Instant, &'static str);

impl Clock {
    fn lap(&self, what: &str) {
        eprintln!(
            "[{}] {:6.1} s  {what}",
            self.1,
            self.0.elapsed().as_secs_f64()
        );
    }
}

/// The plain-HTTP agent of `mac` on a fixture host, allowed to touch `disks` only.
fn agent_for(
    ironic: &IronicSandbox,
    mac: &str,
    disks: &[&LoopDisk],
    extra: &[&str],
) -> ConductorAgent {
    let allow: Vec<String> = disks.iter().map(|d| d.name()).collect();
    ConductorAgent::start(
        &ironic.url(),
        mac,
        AgentSetup::plain_http()
            .args(["--block-device-allowlist".to_string(), allow.join(",")])
            .args(extra.iter().copied()),
    )
}

/// Waits (without an agent to blame yet) until `node` is in `state`, e.g. `clean wait`:
/// the conductor has "booted the ramdisk", which is what the test starts next.
fn wait_for_state(ironic: &IronicSandbox, node: &str, state: &str) {
    ironic
        .wait_for_provision_state(node, &[state], STATE_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}"));
}

/// Whether the agent's log says it erased the metadata of `disk`.
fn erased_in_log(agent: &ConductorAgent, disk: &LoopDisk) -> bool {
    let logs = agent.logs();
    logs.lines()
        .any(|l| l.contains("erasing metadata") && l.contains(&disk.name()))
}

#[test]
fn automated_cleaning_on_provide_erases_only_the_allowed_disk() {
    if !can_run() {
        return;
    }
    let ironic: Arc<IronicSandbox> = shared_ironic(METAL3_LIKE);
    let allowed = LoopDisk::new(DISK_SIZE);
    let other = LoopDisk::new(DISK_SIZE);
    allowed.prepare();
    other.prepare();
    let mac = "02:fc:00:00:20:01";
    let node = ironic.manageable_node("clean-auto-0", mac, json!({}), STATE_TIMEOUT);

    let clock = Clock(Instant::now(), "scenario 2");
    ironic
        .set_provision_state(&node, "provide", json!({}))
        .expect("provide");
    wait_for_state(&ironic, &node, "clean wait");
    clock.lap("clean wait (the conductor booted the ramdisk)");
    let mut agent = agent_for(&ironic, mac, &[&allowed], &[]);
    let done = expect_state(&ironic, &node, &["available"], CLEAN_TIMEOUT, &agent);
    clock.lap("available");
    agent.assert_running();
    assert!(done["last_error"].is_null(), "{}", done["last_error"]);

    let erased = allowed.marks();
    assert!(
        erased.is_blank(),
        "the allowed disk {} still carries {erased:?}\n--- agent log ---\n{}",
        allowed.name(),
        agent.logs()
    );
    assert!(erased_in_log(&agent, &allowed), "{}", agent.logs());
    let kept = other.marks();
    assert!(
        kept.is_prepared(),
        "the disk {} off the allow-list was touched: {kept:?}",
        other.name()
    );
    assert!(!erased_in_log(&agent, &other), "{}", agent.logs());
    assert!(
        ironic.log_tail(20_000).contains("erase_devices_metadata"),
        "the conductor never ran erase_devices_metadata"
    );
}

#[test]
fn manual_cleaning_erases_metadata_then_software_raid_fails_clearly() {
    if !can_run() {
        return;
    }
    let mdadm = std::process::Command::new("mdadm")
        .arg("--version")
        .output();
    assert!(
        mdadm.is_err(),
        "this scenario expects a host without mdadm (the RAID step's clear failure)"
    );
    let ironic = shared_ironic(METAL3_LIKE);
    let disks = [LoopDisk::new(DISK_SIZE), LoopDisk::new(DISK_SIZE)];
    for disk in &disks {
        disk.prepare();
    }
    let mac = "02:fc:00:00:21:01";
    let node = ironic.manageable_node(
        "clean-raid-0",
        mac,
        json!({"raid_interface": "agent"}),
        STATE_TIMEOUT,
    );
    ironic
        .request(
            "PUT",
            &format!("/v1/nodes/{node}/states/raid"),
            Some(&json!({"logical_disks": [
                {"size_gb": "MAX", "raid_level": "1", "controller": "software"}
            ]})),
        )
        .expect("set target_raid_config");

    let clock = Clock(Instant::now(), "scenario 3");
    ironic
        .set_provision_state(
            &node,
            "clean",
            json!({"clean_steps": [
                {"interface": "deploy", "step": "erase_devices_metadata"},
                {"interface": "raid", "step": "create_configuration"}
            ]}),
        )
        .expect("clean");
    wait_for_state(&ironic, &node, "clean wait");
    clock.lap("clean wait");
    let mut agent = agent_for(&ironic, mac, &[&disks[0], &disks[1]], &[]);
    let failed = expect_state(&ironic, &node, &["clean failed"], CLEAN_TIMEOUT, &agent);
    clock.lap("clean failed");
    agent.assert_running();
    let last_error = last_error_of(&ironic, &node, failed);
    eprintln!("[scenario 3] last_error: {last_error}");
    assert!(
        last_error.contains("mdadm is not installed")
            && last_error.contains("create_configuration"),
        "last_error {last_error:?} lacks our RAID error\n--- agent log ---\n{}",
        agent.logs()
    );
    // The erase ran first; the RAID step failed before partitioning anything.
    for disk in &disks {
        let marks = disk.marks();
        assert!(
            marks.is_blank(),
            "{} carries {marks:?} after the erase",
            disk.name()
        );
        assert!(erased_in_log(&agent, disk), "{}", agent.logs());
    }
}

#[test]
fn fast_track_one_agent_inspects_cleans_deploys_and_cleans_again_after_a_token_wipe() {
    if !can_run() {
        return;
    }
    let ironic = shared_ironic(METAL3_LIKE);
    let disk = LoopDisk::new(DISK_SIZE);
    disk.prepare();
    let mac = "02:fc:00:00:22:01";
    let node = ironic.manageable_node("fast-track-0", mac, json!({}), STATE_TIMEOUT);

    let clock = Clock(Instant::now(), "scenario 8");
    ironic
        .set_provision_state(&node, "inspect", json!({}))
        .expect("inspect");
    wait_for_state(&ironic, &node, "inspect wait");
    clock.lap("inspect wait");
    let callback = format!("{}/v1/continue_inspection", ironic.url());
    let mut agent = agent_for(
        &ironic,
        mac,
        &[&disk],
        &["--inspection-callback-url", &callback],
    );
    expect_state(&ironic, &node, &["manageable"], STATE_TIMEOUT, &agent);
    clock.lap("manageable (inspected)");
    let url = format!("http://127.0.0.1:{}", agent.port);
    wait_for("the agent's heartbeat in manageable", STATE_TIMEOUT, || {
        let info = ironic.node(&node).ok()?["driver_internal_info"].clone();
        (info["agent_url"] == url.as_str()).then_some(())
    });
    clock.lap("heartbeating in manageable");

    // Fast track: cleaning uses the running agent, no reboot.
    ironic
        .set_provision_state(&node, "provide", json!({}))
        .expect("provide");
    expect_state(&ironic, &node, &["available"], CLEAN_TIMEOUT, &agent);
    clock.lap("available (cleaned)");
    let marks = disk.marks();
    assert!(marks.is_blank(), "first cleaning left {marks:?}");

    ironic
        .set_provision_state(
            &node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                     "priority": 80, "args": {"seconds": 1}}]}),
        )
        .expect("deploy");
    let active = expect_state(&ironic, &node, &["active"], CLEAN_TIMEOUT, &agent);
    clock.lap("active");
    // The conductor powered the node off and on (deploy_forces_oob_reboot): the token
    // it handed out is gone, while this agent process lives on.
    assert!(
        active["driver_internal_info"].get("agent_url").is_none(),
        "{}",
        active["driver_internal_info"]
    );
    agent.assert_running();

    disk.prepare();
    ironic
        .set_provision_state(&node, "deleted", json!({}))
        .expect("undeploy");
    expect_state(&ironic, &node, &["available"], CLEAN_TIMEOUT, &agent);
    clock.lap("available (undeployed and cleaned again)");
    agent.assert_running();
    let marks = disk.marks();
    assert!(marks.is_blank(), "the undeploy's cleaning left {marks:?}");
    let logs = agent.logs();
    assert!(
        logs.contains("Ironic had dropped the agent token; a new one was looked up"),
        "{logs}"
    );
    assert_eq!(logs.matches("agent running outcome").count(), 1, "{logs}");
}

//! The built agent against the REAL Ironic 39.0.0 conductor (`tests/support/ironic.rs`):
//! (a) inspection → node `manageable` with our inventory stored;
//! (b) lookup + heartbeat, a `custom-agent` deploy whose user step runs on us;
//! (c) the same with Ironic's default `require_tls = True` and our auto-TLS.
//! Never skipped: the harness installs Ironic itself when it is missing.

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::conductor::{
    collected_deploy_logs, conductor_called, deploy_with_step, expect_state, last_error_of,
    one_ironic, AgentSetup, ConductorAgent as Agent, STATE_TIMEOUT,
};
use support::fixture::wait_for;
use support::ironic::{IronicOptions, IronicSandbox};

/// A fixture-host agent with `conf` lines and `extra` arguments.
fn start_agent(api_url: &str, mac: &str, extra: &[&str], conf: &str) -> Agent {
    Agent::start(
        api_url,
        mac,
        AgentSetup::default().conf(conf).args(extra.iter().copied()),
    )
}

#[test]
fn inspection_reaches_manageable_and_ironic_stores_our_inventory() {
    let _one = one_ironic();
    // Fast track: after inspection the same agent looks up (by the UUID inspection
    // returned) and heartbeats while the node waits in `manageable`.
    let ironic = IronicSandbox::start(IronicOptions {
        fast_track: true,
        ..IronicOptions::default()
    })
    .expect("start Ironic");
    let mac = "02:fc:00:00:0a:01";
    let node = ironic.manageable_node("inspect-0", mac, json!({}), STATE_TIMEOUT);
    ironic
        .set_provision_state(&node, "inspect", json!({}))
        .expect("inspect");
    ironic
        .wait_for_provision_state(&node, &["inspect wait"], STATE_TIMEOUT)
        .expect("inspect wait");

    let callback = format!("{}/v1/continue_inspection", ironic.url());
    let mut agent = start_agent(
        &ironic.url(),
        mac,
        &["--inspection-callback-url", &callback],
        "enable_auto_tls = False",
    );
    expect_state(&ironic, &node, &["manageable"], STATE_TIMEOUT, &agent);
    agent.assert_running();

    let stored = ironic.inventory(&node).expect("stored inventory");
    let interfaces = stored["inventory"]["interfaces"]
        .as_array()
        .unwrap_or_else(|| panic!("no interfaces in {stored}"));
    assert!(
        interfaces
            .iter()
            .any(|iface| iface["name"] == "eth0" && iface["mac_address"] == mac),
        "our eth0 is not in Ironic's inventory: {stored}"
    );
    assert_eq!(stored["inventory"]["hostname"], "fixture-node");
    assert_eq!(stored["inventory"]["cpu"]["model_name"], "Fixture CPU");
    let logs = agent.logs();
    assert!(logs.contains("inspection data accepted"), "{logs}");

    // Issue 9, scenario 1: the stored inventory equals `ironic-agent inventory` for the
    // same roots (nothing in this fixture changes between calls).
    let root = agent.root();
    let r = |rel: &str| root.join(rel).display().to_string();
    let cli = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
        .args([
            "inventory",
            "--config-file",
            &r("agent.conf"),
            "--cmdline-file",
            &r("cmdline"),
            "--sys-root",
            &r("sys"),
            "--proc-root",
            &r("proc"),
            "--dev-root",
            &r("dev"),
            "--block-device-allowlist",
            "/dev/does-not-exist",
        ])
        .output()
        .expect("ironic-agent inventory");
    assert!(
        cli.status.success(),
        "{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    let printed: Value = serde_json::from_slice(&cli.stdout).expect("inventory JSON");
    assert_eq!(
        stored["inventory"], printed,
        "Ironic's stored inventory differs from `ironic-agent inventory`"
    );

    // The lookup carried the node UUID from inspection, survived the conductor's 409
    // (node locked by the inspection hooks) and the first heartbeat was accepted.
    let expected = format!("http://127.0.0.1:{}", agent.port);
    let info = wait_for("the agent's heartbeat", Duration::from_secs(60), || {
        let node = ironic.node(&node).ok()?;
        let info = node["driver_internal_info"].clone();
        (info["agent_url"] == expected.as_str()).then_some(info)
    });
    assert!(!info["agent_last_heartbeat"].is_null(), "{info}");
    agent.assert_running();
    let logs = agent.logs();
    assert!(
        logs.contains(&format!("node=Some(\"{node}\")")),
        "the lookup did not carry the UUID from inspection: {logs}"
    );
    assert!(logs.contains("heartbeat accepted"), "{logs}");
}

/// Deploys `node` (already `available`) with the test manager's `test_sleep` as a user
/// deploy step, starts the agent, and waits for `active`. Returns the agent and the
/// seconds from starting the agent to `active`.
fn deploy_with_agent(
    ironic: &IronicSandbox,
    node: &str,
    mac: &str,
    conf: &str,
) -> (Agent, Value, f64) {
    deploy_with_step(ironic, node, "test_sleep", json!({"seconds": 1}));
    let started = Instant::now();
    let mut agent = start_agent(&ironic.url(), mac, &[], conf);
    let done = expect_state(ironic, node, &["active"], STATE_TIMEOUT, &agent);
    let elapsed = started.elapsed().as_secs_f64();
    agent.assert_running();
    (agent, done, elapsed)
}

#[test]
fn lookup_heartbeat_and_custom_agent_deploy_over_http() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let mac = "02:fc:00:00:0b:01";
    let node = ironic.available_node("deploy-0", mac, STATE_TIMEOUT);
    let (agent, done, elapsed) = deploy_with_agent(&ironic, &node, mac, "enable_auto_tls = False");
    eprintln!("plain HTTP: agent start → active in {elapsed:.1} s");

    let info = &done["driver_internal_info"];
    assert!(
        conductor_called(&ironic, "deploy.get_deploy_steps"),
        "the conductor never asked for our deploy steps"
    );
    assert!(conductor_called(&ironic, "deploy.execute_deploy_step"));
    let logs = agent.logs();
    assert!(logs.contains("test_sleep"), "{logs}");
    assert!(logs.contains("lookup succeeded"), "{logs}");
    assert!(logs.contains("heartbeat accepted"), "{logs}");
    // The token was wiped and the agent URL is kept by Ironic after deploy.
    assert!(
        info.get("agent_url").is_none()
            || info["agent_url"] == format!("http://127.0.0.1:{}", agent.port),
        "{info}"
    );
    assert!(elapsed < 30.0, "deploy took {elapsed:.1} s");
}

#[test]
fn lookup_heartbeat_and_deploy_with_require_tls_and_auto_tls() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions {
        require_tls: true,
        ..IronicOptions::default()
    })
    .expect("start Ironic");
    let mac = "02:fc:00:00:0c:01";
    let node = ironic.available_node("deploy-tls-0", mac, STATE_TIMEOUT);
    let (agent, _done, elapsed) = deploy_with_agent(&ironic, &node, mac, "");
    eprintln!("auto-TLS: agent start → active in {elapsed:.1} s");

    // require_tls rejects an http:// callback: reaching `active` proves the conductor
    // took our https callback and verified us with the certificate we sent.
    assert!(conductor_called(&ironic, "deploy.get_deploy_steps"));
    assert!(conductor_called(&ironic, "deploy.execute_deploy_step"));
    let state = agent.state_dir();
    let pem = std::fs::read_to_string(state.join("agent.crt")).expect("agent.crt");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(state.join("agent.key").exists());
    let logs = agent.logs();
    assert!(logs.contains("auto-TLS certificate generated"), "{logs}");
    assert!(
        logs.contains(&format!("https://127.0.0.1:{}", agent.port)),
        "{logs}"
    );
}

#[test]
fn lookup_timeout_exits_non_zero_with_a_clear_error() {
    // Nothing listens on this port: every lookup fails to connect.
    let closed = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        format!("http://{}", listener.local_addr().expect("addr"))
    };
    let mut agent = start_agent(
        &closed,
        "02:fc:00:00:0d:01",
        &[],
        "lookup_timeout = 3\nenable_auto_tls = False",
    );
    // While it retries, the API does not listen (IPA serves only after lookup).
    std::thread::sleep(Duration::from_millis(1500));
    agent.assert_running();
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", agent.port)).is_err(),
        "nothing may listen before lookup succeeded"
    );
    let status = wait_for("the agent to exit", Duration::from_secs(30), || {
        agent.try_wait()
    });
    assert_eq!(status.code(), Some(75), "exit status {status}");
    let logs = agent.logs();
    assert!(logs.contains("Could not look up node info"), "{logs}");
}

/// Issue 9, scenario 9 (failure injection, the step part): a deploy step raising an
/// error (the test manager's `test_fail`) puts the node in `deploy failed` with our
/// error text in `last_error`; the conductor then collects our logs
/// (`log.collect_system_logs`, `deploy_logs_collect = on_failure`) and stores a valid
/// tar.gz in the run dir's deploy-logs.
#[test]
fn failing_deploy_step_reaches_deploy_failed_with_our_error_and_logs_collected() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let mac = "02:fc:00:00:0e:01";
    let node = ironic.available_node("deploy-fail-0", mac, STATE_TIMEOUT);
    let text = "e2e injected failure 4711";
    deploy_with_step(&ironic, &node, "test_fail", json!({"message": text}));
    let mut agent = start_agent(&ironic.url(), mac, &[], "enable_auto_tls = False");
    let done = expect_state(&ironic, &node, &["deploy failed"], STATE_TIMEOUT, &agent);
    agent.assert_running();
    let last_error = last_error_of(&ironic, &node, done);
    assert!(
        last_error.contains(text),
        "last_error {last_error:?} lacks our text\n--- agent log ---\n{}",
        agent.logs()
    );
    collected_deploy_logs(&ironic, &node);
}

/// Issue 9, scenario 9 (Ironic outage): the conductor is stopped while the agent runs a
/// deploy step and heartbeats, stays down for a while, then comes back in the same run
/// dir and port (`IronicSandbox::restart`); the agent keeps retrying its heartbeats,
/// gets through again and the deploy finishes (`active`).
#[test]
fn agent_recovers_when_ironic_is_down_mid_heartbeating() {
    let _one = one_ironic();
    let mut ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let mac = "02:fc:00:00:0f:01";
    let node = ironic.available_node("outage-0", mac, STATE_TIMEOUT);
    deploy_with_step(&ironic, &node, "test_sleep", json!({"seconds": 20}));
    let mut agent = start_agent(&ironic.url(), mac, &[], "enable_auto_tls = False");
    wait_for("the step to run on the agent", STATE_TIMEOUT, || {
        agent.logs().contains("test_sleep").then_some(())
    });
    let down = Instant::now();
    let opts = ironic.options();
    // stop.sh + a pause + start.sh: the API is gone for well over a heartbeat interval
    ironic
        .restart_after(opts, Duration::from_secs(12))
        .expect("restart Ironic");
    eprintln!("Ironic was down for {:.1} s", down.elapsed().as_secs_f64());
    expect_state(
        &ironic,
        &node,
        &["active"],
        Duration::from_secs(120),
        &agent,
    );
    agent.assert_running();
    let logs = agent.logs();
    let failed = logs.find("heartbeat failed").unwrap_or_else(|| {
        panic!("no failed heartbeat while Ironic was down:\n{logs}");
    });
    assert!(
        logs[failed..].contains("heartbeat accepted"),
        "no accepted heartbeat after the outage:\n{logs}"
    );
}

/// Issue 9, scenario 9 (agent killed mid-step): SIGKILL while a deploy step runs; with
/// the harness's short callback timeout (20 s) the conductor notices the silence and
/// fails the deploy with a timeout — nothing hangs.
#[test]
fn agent_killed_mid_step_ends_in_deploy_failed_by_timeout() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions {
        short_callback_timeout: true,
        ..IronicOptions::default()
    })
    .expect("start Ironic");
    let mac = "02:fc:00:00:10:01";
    let node = ironic.available_node("killed-0", mac, STATE_TIMEOUT);
    deploy_with_step(&ironic, &node, "test_sleep", json!({"seconds": 600}));
    let mut agent = start_agent(&ironic.url(), mac, &[], "enable_auto_tls = False");
    wait_for("the step to run on the agent", STATE_TIMEOUT, || {
        agent.logs().contains("test_sleep").then_some(())
    });
    agent.assert_running();
    agent.kill9();
    let killed = Instant::now();
    let done = expect_state(
        &ironic,
        &node,
        &["deploy failed"],
        Duration::from_secs(90),
        &agent,
    );
    eprintln!(
        "deploy failed {:.1} s after the agent was killed",
        killed.elapsed().as_secs_f64()
    );
    // The conductor saves the state before its error handler saves last_error.
    let last_error = last_error_of(&ironic, &node, done);
    assert!(
        last_error.contains("Timeout reached while waiting for callback"),
        "{last_error:?}"
    );
}

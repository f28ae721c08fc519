//! The built agent against the REAL Ironic 39.0.0 conductor (`tests/support/ironic.rs`):
//! (a) inspection → node `manageable` with our inventory stored;
//! (b) lookup + heartbeat, a `custom-agent` deploy whose user step runs on us;
//! (c) the same with Ironic's default `require_tls = True` and our auto-TLS.
//! Never skipped: the harness installs Ironic itself when it is missing.

mod support;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fixture::wait_for;
use support::ironic::{IronicOptions, IronicSandbox};

const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// One conductor at a time: three all-in-one Ironics starting together on two cores
/// can miss the harness's start-up timeout.
static ONE_IRONIC: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_ironic() -> std::sync::MutexGuard<'static, ()> {
    ONE_IRONIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The built agent, killed on drop; its stderr goes to a file shown on failure.
struct Agent {
    child: Child,
    log: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Agent {
    fn start(api_url: &str, mac: &str, extra: &[&str], conf: &str) -> Agent {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        support::fixture::fixture_host(root, mac, "fixture-node");
        let conf_path = root.join("agent.conf");
        std::fs::write(
            &conf_path,
            format!(
                "[DEFAULT]\nlookup_timeout = 120\nlookup_interval = 1\n\
                 inspection_collectors = default\n{conf}\n"
            ),
        )
        .expect("conf");
        let port = support::agent::free_port();
        let log = root.join("agent.log");
        let mut args = support::fixture::agent_args(root, api_url, port);
        args.extend(extra.iter().map(|s| s.to_string()));
        let child = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
            .args(&args)
            .env("IRONIC_AGENT_ENABLE_TEST_MANAGER", "1")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn the agent");
        Agent {
            child,
            log,
            port,
            _dir: dir,
        }
    }

    /// The agent's log without ANSI colour sequences.
    fn logs(&self) -> String {
        support::fixture::strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    fn state_dir(&self) -> PathBuf {
        self._dir.path().join("run/ironic-agent")
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the agent exited ({status}):\n{}", self.logs());
        }
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.logs());
        }
    }
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
    let node = ironic
        .create_node("inspect-0", json!({}))
        .expect("create node");
    ironic.create_port(&node, mac).expect("create port");
    ironic
        .set_provision_state(&node, "manage", json!({}))
        .expect("manage");
    ironic
        .wait_for_provision_state(&node, &["manageable"], STATE_TIMEOUT)
        .expect("manageable");
    ironic
        .set_provision_state(&node, "inspect", json!({}))
        .expect("inspect");
    ironic
        .wait_for_provision_state(&node, &["inspect wait"], STATE_TIMEOUT)
        .expect("inspect wait");

    let callback = format!("{}/v1/continue_inspection", ironic.url());
    let mut agent = Agent::start(
        &ironic.url(),
        mac,
        &["--inspection-callback-url", &callback],
        "enable_auto_tls = False",
    );
    let done = ironic.wait_for_provision_state(&node, &["manageable"], STATE_TIMEOUT);
    agent.assert_running();
    done.unwrap_or_else(|err| panic!("{err:#}\n--- agent log ---\n{}", agent.logs()));

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
    let root = agent._dir.path();
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
    ironic
        .set_provision_state(
            node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                     "priority": 80, "args": {"seconds": 1}}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(node, &["wait call-back"], STATE_TIMEOUT)
        .expect("wait call-back");
    let started = Instant::now();
    let mut agent = Agent::start(&ironic.url(), mac, &[], conf);
    let done = ironic.wait_for_provision_state(node, &["active"], STATE_TIMEOUT);
    let elapsed = started.elapsed().as_secs_f64();
    agent.assert_running();
    let done = done.unwrap_or_else(|err| panic!("{err:#}\n--- agent log ---\n{}", agent.logs()));
    (agent, done, elapsed)
}

/// What the conductor's log says it asked the agent (its `agent_client` lines).
fn conductor_called(ironic: &IronicSandbox, command: &str) -> bool {
    ironic.log_tail(5000).contains(command)
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
    let mut agent = Agent::start(
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
        agent.child.try_wait().expect("try_wait")
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
    ironic
        .set_provision_state(
            &node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_fail",
                                     "priority": 80, "args": {"message": text}}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(&node, &["wait call-back"], STATE_TIMEOUT)
        .expect("wait call-back");
    let mut agent = Agent::start(&ironic.url(), mac, &[], "enable_auto_tls = False");
    let done = ironic.wait_for_provision_state(&node, &["deploy failed"], STATE_TIMEOUT);
    agent.assert_running();
    let done = done.unwrap_or_else(|err| {
        panic!(
            "{err:#}\n--- agent log ---\n{}\n--- ironic log ---\n{}",
            agent.logs(),
            ironic.log_tail(60)
        )
    });
    let last_error = last_error_of(&ironic, &node, done);
    assert!(
        last_error.contains(text),
        "last_error {last_error:?} lacks our text\n--- agent log ---\n{}",
        agent.logs()
    );
    let logs_dir = ironic.run_dir().expect("run dir").join("deploy-logs");
    let stored = wait_for("the collected deploy logs", Duration::from_secs(30), || {
        std::fs::read_dir(&logs_dir)
            .ok()?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .find(|p| p.to_string_lossy().contains(&node))
    });
    let listing = Command::new("tar")
        .arg("-tzf")
        .arg(&stored)
        .output()
        .expect("tar");
    assert!(
        listing.status.success() && !listing.stdout.is_empty(),
        "{} is not a valid tar.gz: {}",
        stored.display(),
        String::from_utf8_lossy(&listing.stderr)
    );
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
    ironic
        .set_provision_state(
            &node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                     "priority": 80, "args": {"seconds": 20}}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(&node, &["wait call-back"], STATE_TIMEOUT)
        .expect("wait call-back");
    let mut agent = Agent::start(&ironic.url(), mac, &[], "enable_auto_tls = False");
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
    let done = ironic.wait_for_provision_state(&node, &["active"], Duration::from_secs(120));
    agent.assert_running();
    done.unwrap_or_else(|err| {
        panic!(
            "{err:#}\n--- agent log ---\n{}\n--- ironic log ---\n{}",
            agent.logs(),
            ironic.log_tail(60)
        )
    });
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
    ironic
        .set_provision_state(
            &node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                     "priority": 80, "args": {"seconds": 600}}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(&node, &["wait call-back"], STATE_TIMEOUT)
        .expect("wait call-back");
    let mut agent = Agent::start(&ironic.url(), mac, &[], "enable_auto_tls = False");
    wait_for("the step to run on the agent", STATE_TIMEOUT, || {
        agent.logs().contains("test_sleep").then_some(())
    });
    agent.assert_running();
    agent.child.kill().expect("SIGKILL the agent");
    let _ = agent.child.wait();
    let killed = Instant::now();
    let done = ironic
        .wait_for_provision_state(&node, &["deploy failed"], Duration::from_secs(90))
        .unwrap_or_else(|err| {
            panic!(
                "{err:#}\n--- agent log ---\n{}\n--- ironic log ---\n{}",
                agent.logs(),
                ironic.log_tail(60)
            )
        });
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

/// The node's `last_error`, waiting (bounded) for it: after a failure the conductor saves
/// the new provision state before its error handler saves `last_error`.
fn last_error_of(ironic: &IronicSandbox, node: &str, seen: Value) -> String {
    let mut current = seen;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(text) = current["last_error"].as_str().filter(|t| !t.is_empty()) {
            return text.to_string();
        }
        if Instant::now() > deadline {
            return String::new();
        }
        std::thread::sleep(Duration::from_millis(250));
        current = ironic.node(node).unwrap_or(current);
    }
}

//! Restart recovery against the REAL Ironic 39 conductor (`tests/support/ironic.rs`):
//! the agent is killed with SIGKILL mid-deploy and started again with the same state
//! directory; the node reaches a final state without operator action:
//! (a) killed while the `test_sleep` deploy step runs → `deploy failed` with
//!     "agent restarted during deploy step test_sleep";
//! (b) killed after the step finished → `active`.
//! Figures go to `target/reliability/restart.json` for `docs/reliability.md`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::fixture::wait_for;
use support::ironic::{IronicOptions, IronicSandbox};

const STATE_TIMEOUT: Duration = Duration::from_secs(90);

static ONE_IRONIC: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_ironic() -> std::sync::MutexGuard<'static, ()> {
    ONE_IRONIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The fixture host plus the agent's configuration file.
fn fixture_root(dir: &Path, mac: &str) {
    support::fixture::fixture_host(dir, mac, "fixture-node");
    std::fs::write(
        dir.join("agent.conf"),
        "[DEFAULT]\nlookup_timeout = 120\nlookup_interval = 1\n\
         inspection_collectors = default\n",
    )
    .expect("agent.conf");
}

/// One run of the built agent on the fixture `root`; SIGKILLed on drop.
struct Agent {
    child: Child,
    log: PathBuf,
}

impl Agent {
    fn start(root: &Path, api_url: &str, port: u16, run: u32) -> Agent {
        let log = root.join(format!("agent-{run}.log"));
        let args = support::fixture::agent_args(root, api_url, port);
        let child = Command::new(env!("CARGO_BIN_EXE_ironic-agent"))
            .args(&args)
            .env("IRONIC_AGENT_ENABLE_TEST_MANAGER", "1")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"))
            .spawn()
            .expect("spawn the agent");
        Agent { child, log }
    }

    fn logs(&self) -> String {
        support::fixture::strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// SIGKILL, as a container runtime or the OOM killer would.
    fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL");
        let _ = self.child.wait();
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} ---\n{}", self.log.display(), self.logs());
        }
    }
}

/// The status of the last `execute_deploy_step` in the persisted history.
fn persisted_step_status(state_dir: &Path) -> Option<String> {
    let text = std::fs::read(state_dir.join("commands.json")).ok()?;
    let history: Value = serde_json::from_slice(&text).ok()?;
    history["commands"]
        .as_array()?
        .iter()
        .rev()
        .find(|c| c["command_name"] == "execute_deploy_step")
        .and_then(|c| c["command_status"].as_str())
        .map(str::to_string)
}

fn assert_private(path: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "{} is mode {mode:o}", path.display());
}

/// A loopback TCP forwarder in front of Ironic for the first agent run: `cut()` closes
/// every connection and refuses new ones, so no heartbeat reaches the conductor while
/// the test kills the agent (otherwise the conductor may be talking to the agent at
/// the moment of the kill and fail the deploy with "Connection to agent failed").
struct Gate {
    url: String,
    cut: std::sync::Arc<std::sync::atomic::AtomicBool>,
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl Gate {
    fn new(target_port: u16) -> Gate {
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind gate");
        let url = format!("http://{}", listener.local_addr().expect("addr"));
        let cut = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (cut2, open2) = (cut.clone(), open.clone());
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut2.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", target_port)) else {
                    continue;
                };
                let mut list = open2.lock().expect("lock");
                list.push(client.try_clone().expect("clone"));
                list.push(server.try_clone().expect("clone"));
                drop(list);
                for (mut from, mut to) in [
                    (
                        client.try_clone().expect("clone"),
                        server.try_clone().expect("clone"),
                    ),
                    (server, client),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        Gate { url, cut, open }
    }

    fn reopen(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for stream in self.open.lock().expect("lock").drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// Records one scenario's figures for the generated `docs/reliability.md`.
fn record(name: &str, figures: Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/reliability");
    std::fs::create_dir_all(&dir).expect("mkdir");
    std::fs::write(
        dir.join(format!("restart-{name}.json")),
        serde_json::to_vec_pretty(&figures).expect("json"),
    )
    .expect("write figures");
}

/// Deploys with a `test_sleep` step of `seconds`, kills the agent with SIGKILL once the
/// persisted step status is `kill_at`, starts it again on the same state directory and
/// returns the final node, the second run's log and the seconds from restart to final.
fn kill_and_restart(
    ironic: &IronicSandbox,
    name: &str,
    mac: &str,
    seconds: u64,
    kill_at: &str,
    wanted: &str,
) -> (Value, String, f64, String) {
    let node = ironic.available_node(name, mac, STATE_TIMEOUT);
    ironic
        .set_provision_state(
            &node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                     "priority": 80, "args": {"seconds": seconds}}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(&node, &["wait call-back"], STATE_TIMEOUT)
        .expect("wait call-back");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fixture_root(root, mac);
    let state = root.join("run/ironic-agent");
    let port = support::agent::free_port();
    let gate = Gate::new(ironic.port());
    let mut first = Agent::start(root, &gate.url, port, 1);
    wait_for("the deploy step to start", STATE_TIMEOUT, || {
        persisted_step_status(&state).map(|_| ())
    });
    // From here on the conductor hears nothing from this run (see `Gate`); give a
    // heartbeat it is processing time to finish before killing.
    gate.cut();
    std::thread::sleep(Duration::from_secs(2));
    wait_for(
        &format!("the deploy step to be persisted as {kill_at}"),
        STATE_TIMEOUT,
        || (persisted_step_status(&state).as_deref() == Some(kill_at)).then_some(()),
    );
    first.kill9();
    let at_kill = ironic.node(&node).expect("node")["provision_state"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    for file in ["session.json", "commands.json"] {
        assert_private(&state.join(file));
    }
    let first_logs = first.logs();
    let session = std::fs::read_to_string(state.join("session.json")).expect("session");
    let token: Value = serde_json::from_str(&session).expect("session json");
    let token = token["agent_token"]
        .as_str()
        .expect("token saved")
        .to_string();
    assert!(token.len() >= 32);
    assert!(!first_logs.contains(&token), "the token was logged");

    let restarted = Instant::now();
    let second = Agent::start(root, &ironic.url(), port, 2);
    let done = ironic
        .wait_for_provision_state(&node, &[wanted], STATE_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}\n--- second run ---\n{}", second.logs()));
    let elapsed = restarted.elapsed().as_secs_f64();
    let logs = second.logs();
    assert!(!logs.contains(&token), "the token was logged");
    assert!(
        logs.contains("resuming the session saved before a restart"),
        "{logs}"
    );
    (done, logs, elapsed, at_kill)
}

#[test]
fn killed_mid_deploy_step_the_node_ends_deploy_failed_with_our_message() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let (done, logs, elapsed, at_kill) = kill_and_restart(
        &ironic,
        "restart-running",
        "02:fc:00:00:1a:01",
        300,
        "RUNNING",
        "deploy failed",
    );
    let last_error = done["last_error"].as_str().unwrap_or_default();
    assert!(
        last_error.contains("agent restarted during deploy step test_sleep"),
        "last_error={last_error}\n{logs}"
    );
    assert!(
        logs.contains("command interrupted by an agent restart"),
        "{logs}"
    );
    eprintln!("killed mid-step: restart → deploy failed in {elapsed:.1} s");
    record(
        "running",
        json!({"case": "SIGKILL while the test_sleep deploy step runs",
               "state_at_kill": at_kill,
               "final_state": done["provision_state"],
               "last_error": last_error,
               "seconds_restart_to_final": elapsed,
               "operator_actions": 0}),
    );
}

#[test]
fn killed_after_the_deploy_step_finished_the_node_becomes_active() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let (done, _logs, elapsed, at_kill) = kill_and_restart(
        &ironic,
        "restart-finished",
        "02:fc:00:00:1b:01",
        1,
        "SUCCEEDED",
        "active",
    );
    eprintln!("killed after the step ({at_kill}): restart → active in {elapsed:.1} s");
    record(
        "finished",
        json!({"case": "SIGKILL after the test_sleep deploy step succeeded",
               "state_at_kill": at_kill,
               "final_state": done["provision_state"],
               "seconds_restart_to_final": elapsed,
               "operator_actions": 0}),
    );
}

#[test]
fn ironic_unreachable_mid_step_heartbeats_back_off_and_resume() {
    let _one = one_ironic();
    let ironic = IronicSandbox::start(IronicOptions::default()).expect("start Ironic");
    let mac = "02:fc:00:00:1c:01";
    let node = ironic.available_node("ironic-down", mac, STATE_TIMEOUT);
    ironic
        .set_provision_state(
            &node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": "test_sleep",
                                     "priority": 80, "args": {"seconds": 12}}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(&node, &["wait call-back"], STATE_TIMEOUT)
        .expect("wait call-back");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    fixture_root(root, mac);
    let state = root.join("run/ironic-agent");
    let gate = Gate::new(ironic.port());
    let agent = Agent::start(root, &gate.url, support::agent::free_port(), 1);
    wait_for("the deploy step to start", STATE_TIMEOUT, || {
        persisted_step_status(&state).map(|_| ())
    });
    // Ironic's API is unreachable for the agent until the step has finished.
    gate.cut();
    let down = Instant::now();
    wait_for(
        "the step to finish while Ironic is down",
        STATE_TIMEOUT,
        || (persisted_step_status(&state).as_deref() == Some("SUCCEEDED")).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(3));
    let down_secs = down.elapsed().as_secs_f64();
    gate.reopen();
    let reopened = Instant::now();
    let done = ironic
        .wait_for_provision_state(&node, &["active"], STATE_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}\n{}", agent.logs()));
    let resume_secs = reopened.elapsed().as_secs_f64();
    let logs = agent.logs();
    let failed = logs.matches("heartbeat failed").count();
    assert!(
        failed >= 1,
        "no heartbeat failed while Ironic was down:\n{logs}"
    );
    assert!(logs.contains("command finished status=Succeeded"), "{logs}");
    eprintln!("Ironic down {down_secs:.1} s; active {resume_secs:.1} s after it came back");
    record(
        "ironic-down",
        json!({"case": "Ironic API unreachable for the agent while the deploy step runs",
               "seconds_unreachable": down_secs,
               "heartbeat_failures_logged": failed,
               "step_outcome": "SUCCEEDED",
               "final_state": done["provision_state"],
               "seconds_from_reachable_to_final": resume_secs,
               "operator_actions": 0}),
    );
}

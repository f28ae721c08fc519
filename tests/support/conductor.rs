//! The built agent driven by the real Ironic conductor (`support::ironic`): start an
//! agent on a fixture host, wait for node states, and — when a wait fails — panic with
//! everything needed to diagnose a red CI run from its output alone: the node's
//! `last_error`, the agent's log tail and the conductor's log tail.
//!
//! ```ignore
//! let _one = support::conductor::one_ironic();
//! let ironic = IronicSandbox::start(IronicOptions::default())?;
//! let node = ironic.available_node("n", mac, STATE_TIMEOUT);
//! let agent = ConductorAgent::start(&ironic.url(), mac, AgentSetup::default());
//! let done = expect_state(&ironic, &node, &["active"], STATE_TIMEOUT, &agent);
//! ```
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::ironic::{IronicOptions, IronicSandbox};

/// Default bound for a provision-state wait in conductor scenarios.
pub const STATE_TIMEOUT: Duration = Duration::from_secs(60);

/// Lines of each log shown when a scenario fails.
const LOG_TAIL_LINES: usize = 80;

static ONE_IRONIC: Mutex<()> = Mutex::new(());

/// One conductor at a time per test binary: several all-in-one Ironics starting
/// together on two cores can miss the harness's start-up timeout.
pub fn one_ironic() -> MutexGuard<'static, ()> {
    ONE_IRONIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

static SHARED_IRONIC: Mutex<Weak<IronicSandbox>> = Mutex::new(Weak::new());

/// One conductor for the tests of a binary that run at the same time (one node
/// each): the first caller starts it, the last one to drop its handle stops it.
/// Every caller in the binary must ask for the same `opts`.
pub fn shared_ironic(opts: IronicOptions) -> Arc<IronicSandbox> {
    let mut slot = SHARED_IRONIC
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(ironic) = slot.upgrade() {
        assert_eq!(ironic.options(), opts, "one shared Ironic, one option set");
        return ironic;
    }
    let ironic = Arc::new(IronicSandbox::start(opts).expect("start Ironic"));
    *slot = Arc::downgrade(&ironic);
    ironic
}

/// How to start a [`ConductorAgent`] beyond the fixture defaults.
#[derive(Debug, Clone, Default)]
pub struct AgentSetup {
    /// Extra lines for `[DEFAULT]` of the agent's configuration file.
    pub conf: String,
    /// Extra command-line arguments (later flags override earlier ones; a
    /// `--block-device-allowlist` here replaces the fixture's).
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: Vec<(String, String)>,
}

impl AgentSetup {
    /// Plain HTTP (no auto-TLS): what most scenarios use.
    pub fn plain_http() -> Self {
        Self::default().conf("enable_auto_tls = False")
    }

    /// Adds configuration lines.
    pub fn conf(mut self, lines: &str) -> Self {
        self.conf.push_str(lines);
        self.conf.push('\n');
        self
    }

    /// Adds command-line arguments.
    pub fn args<I: IntoIterator<Item = S>, S: Into<String>>(mut self, args: I) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }
}

/// The built agent on a fixture host (`support::fixture::fixture_host`), with the
/// test manager enabled and debug logs in a file; killed on drop, its log printed
/// when the test panics.
pub struct ConductorAgent {
    child: Child,
    log: PathBuf,
    /// The port the agent listens on and advertises (127.0.0.1).
    pub port: u16,
    dir: tempfile::TempDir,
}

impl ConductorAgent {
    /// Starts the agent against Ironic at `api_url`, its NIC having `mac`.
    pub fn start(api_url: &str, mac: &str, setup: AgentSetup) -> ConductorAgent {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        super::fixture::fixture_host(root, mac, "fixture-node");
        std::fs::write(
            root.join("agent.conf"),
            format!(
                "[DEFAULT]\nlookup_timeout = 120\nlookup_interval = 1\n\
                 inspection_collectors = default\n{}\n",
                setup.conf
            ),
        )
        .expect("agent.conf");
        let port = super::agent::free_port();
        let log = root.join("agent.log");
        let args = super::fixture::with_overrides(
            super::fixture::agent_args(root, api_url, port),
            setup.args,
        );
        let mut command = Command::new(env!("CARGO_BIN_EXE_ironic-agent"));
        command
            .args(&args)
            .env("IRONIC_AGENT_ENABLE_TEST_MANAGER", "1")
            .env("RUST_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (key, value) in setup.env {
            command.env(key, value);
        }
        let child = command.spawn().expect("spawn the agent");
        ConductorAgent {
            child,
            log,
            port,
            dir,
        }
    }

    /// The fixture host root (sys, proc, dev, cmdline, agent.conf, host).
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// The agent's state directory.
    pub fn state_dir(&self) -> PathBuf {
        self.root().join("run/ironic-agent")
    }

    /// The agent's log without ANSI colour sequences.
    pub fn logs(&self) -> String {
        super::fixture::strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// The last `lines` lines of the agent's log.
    pub fn log_tail(&self, lines: usize) -> String {
        let logs = self.logs();
        let all: Vec<&str> = logs.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Panics with the log when the agent has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("the agent exited ({status}):\n{}", self.logs());
        }
    }

    /// The exit status, if the agent has exited.
    pub fn try_wait(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().expect("try_wait")
    }

    /// SIGKILL, as a container runtime or the OOM killer would.
    pub fn kill9(&mut self) {
        self.child.kill().expect("SIGKILL the agent");
        let _ = self.child.wait();
    }
}

impl Drop for ConductorAgent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- agent log ---\n{}", self.logs());
        }
    }
}

/// What a failed scenario prints: the node's state and `last_error`, the agent's log
/// tail (when there is an agent) and the conductor's log tail.
pub fn diagnosis(ironic: &IronicSandbox, node: &str, agent: Option<&ConductorAgent>) -> String {
    let summary = match ironic.node(node) {
        Ok(n) => format!(
            "node {node}: provision_state={} target={} last_error={}",
            n["provision_state"], n["target_provision_state"], n["last_error"]
        ),
        Err(err) => format!("node {node}: not readable: {err:#}"),
    };
    let agent_tail = agent
        .map(|a| a.log_tail(LOG_TAIL_LINES))
        .unwrap_or_else(|| "(no agent)".into());
    format!(
        "{summary}\n--- agent log (tail) ---\n{agent_tail}\n--- ironic log (tail) ---\n{}",
        ironic.log_tail(LOG_TAIL_LINES)
    )
}

/// Waits for `node` to reach one of `states`; panics with [`diagnosis`] otherwise.
pub fn expect_state(
    ironic: &IronicSandbox,
    node: &str,
    states: &[&str],
    timeout: Duration,
    agent: &ConductorAgent,
) -> Value {
    ironic
        .wait_for_provision_state(node, states, timeout)
        .unwrap_or_else(|err| panic!("{err:#}\n{}", diagnosis(ironic, node, Some(agent))))
}

/// The node's `last_error`, waiting (bounded) for it: after a failure the conductor
/// saves the new provision state before its error handler saves `last_error`.
pub fn last_error_of(ironic: &IronicSandbox, node: &str, seen: Value) -> String {
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

/// Asks for a deploy of the `available` `node` with one user deploy step of the
/// deploy interface, and waits for `wait call-back`.
pub fn deploy_with_step(ironic: &IronicSandbox, node: &str, step: &str, args: Value) {
    ironic
        .set_provision_state(
            node,
            "active",
            json!({"deploy_steps": [{"interface": "deploy", "step": step,
                                     "priority": 80, "args": args}]}),
        )
        .expect("deploy");
    ironic
        .wait_for_provision_state(node, &["wait call-back"], STATE_TIMEOUT)
        .unwrap_or_else(|err| panic!("{err:#}\n{}", diagnosis(ironic, node, None)));
}

/// What the conductor's log says it asked an agent (its `agent_client` lines).
pub fn conductor_called(ironic: &IronicSandbox, command: &str) -> bool {
    ironic.log_tail(5000).contains(command)
}

/// The deploy logs the conductor collected for `node` (`log.collect_system_logs`,
/// harness `deploy_logs_collect = on_failure`, stored in the run dir's
/// `deploy-logs/`), waiting (bounded) for the file; panics unless it is a valid,
/// non-empty tar.gz. Returns its path and the archive's member names.
pub fn collected_deploy_logs(ironic: &IronicSandbox, node: &str) -> (PathBuf, Vec<String>) {
    let logs_dir = ironic.run_dir().expect("run dir").join("deploy-logs");
    let stored =
        super::fixture::wait_for("the collected deploy logs", Duration::from_secs(30), || {
            std::fs::read_dir(&logs_dir)
                .ok()?
                .filter_map(|e| e.ok())
                .map(|e| e.path())
                .find(|p| p.to_string_lossy().contains(node))
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
    let members = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    (stored, members)
}

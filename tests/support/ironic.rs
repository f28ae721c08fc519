//! A real OpenStack Ironic 39.0.0 conductor (all-in-one `ironic` process,
//! sqlite, noauth, fake hardware) on 127.0.0.1, for integration tests of the
//! agent against the genuine server side.
//!
//! The scripts in `tests/harness/ironic/` do the work; this module runs them
//! and wraps the bits of the Ironic REST API the tests need:
//!
//! ```ignore
//! mod support;
//! use support::ironic::{IronicOptions, IronicSandbox};
//!
//! let ironic = IronicSandbox::start(IronicOptions::default())?;
//! let node = ironic.create_node("node-0", serde_json::json!({}))?;
//! ironic.create_port(&node, "02:fc:00:00:00:01")?;
//! ironic.set_provision_state(&node, "manage", serde_json::json!({}))?;
//! ironic.wait_for_provision_state(&node, &["manageable"], Duration::from_secs(30))?;
//! ```
//!
//! Dropping the sandbox stops Ironic (also while a test panics). Keep one per
//! test binary where possible: a start costs about 3 s, a stop about 2.5 s.
//! If the test process dies without dropping it (SIGKILL, or a sandbox held in
//! a `static`, whose `Drop` never runs), a watchdog started by `start.sh`
//! stops Ironic about a second later.
//!
//! The run directory (config, sqlite, `ironic.log`) is a fresh temporary
//! directory, removed on drop unless the thread is panicking or
//! `IRONIC_HARNESS_KEEP=1` is set; then its path is printed.
#![allow(dead_code)]

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use serde_json::{json, Value};

/// Microversion header sent with every request made through the helpers.
pub const API_VERSION_HEADER: &str = "X-OpenStack-Ironic-API-Version";

/// How the conductor is configured (see `tests/harness/ironic/ironic.conf.in`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IronicOptions {
    /// `[agent] require_tls`: heartbeats must carry an `https://` callback URL.
    pub require_tls: bool,
    /// `[deploy] fast_track`: one agent process may serve inspect, clean and
    /// deploy; lookup is then also allowed in `manageable`/`available`.
    pub fast_track: bool,
    /// `[conductor] automated_clean`: `provide` and undeploy go through
    /// cleaning (the erase steps stay at priority 0 unless `metadata_erase`).
    pub automated_clean: bool,
    /// `[deploy] erase_devices_metadata_priority = 10` instead of 0: automated
    /// cleaning erases the disks' metadata, as Metal3 configures Ironic
    /// (start.sh --metadata-erase).
    pub metadata_erase: bool,
    /// `[conductor] deploy_callback_timeout` / `clean_callback_timeout` of 20 s instead
    /// of 180 s: a vanished agent is noticed quickly (start.sh --short-callback-timeout).
    pub short_callback_timeout: bool,
}

impl IronicOptions {
    fn flags(&self) -> Vec<&'static str> {
        let mut flags = Vec::new();
        if self.require_tls {
            flags.push("--require-tls");
        }
        if self.fast_track {
            flags.push("--fast-track");
        }
        if self.automated_clean {
            flags.push("--automated-clean");
        }
        if self.short_callback_timeout {
            flags.push("--short-callback-timeout");
        }
        if self.metadata_erase {
            flags.push("--metadata-erase");
        }
        flags
    }
}

/// A running Ironic; stopped when dropped.
pub struct IronicSandbox {
    /// `None` only while dropping.
    run_dir: Option<tempfile::TempDir>,
    port: u16,
    opts: IronicOptions,
    http: ureq::Agent,
    /// Keep the run directory on drop (set when starting failed).
    keep_run_dir: bool,
}

/// Provision states that end a wait with an error unless they were asked for.
fn is_failure_state(state: &str) -> bool {
    state.ends_with(" failed") || state == "error"
}

/// Stable states only count as reached once no transition is pending
/// (`target_provision_state` is null): e.g. right after `inspect` the node may
/// still read `manageable` with a target.
fn is_stable_state(state: &str) -> bool {
    matches!(state, "enroll" | "manageable" | "available" | "active")
}

/// Merge `patch` into `base`: objects key by key (recursively), anything
/// else replaces.
pub fn merge_json(base: &mut Value, patch: Value) {
    match (base, patch) {
        (Value::Object(base), Value::Object(patch)) => {
            for (key, value) in patch {
                match base.get_mut(&key) {
                    Some(existing) => merge_json(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, patch) => *base = patch,
    }
}

fn harness_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/harness/ironic")
}

fn free_loopback_port() -> Result<u16> {
    let listener =
        TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1:0 to find a free port")?;
    Ok(listener
        .local_addr()
        .context("reading the bound address")?
        .port())
}

/// Run a harness script; Ok(stdout) on exit 0, otherwise an error with both streams.
fn run_script(script: &str, args: &[&str]) -> Result<String> {
    let path = harness_dir().join(script);
    let out = Command::new("bash")
        .arg(&path)
        .args(args)
        .env("IRONIC_HARNESS_OWNER_PID", std::process::id().to_string())
        .output()
        .with_context(|| format!("running {}", path.display()))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "{script} {} failed ({}):\n{stdout}{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(stdout)
}

/// Last `lines` lines of a (possibly large) file; reads at most the last 1 MiB.
fn file_tail(path: &Path, lines: usize) -> std::io::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(1 << 20);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::new();
    file.read_to_end(&mut buf)?;
    let text = String::from_utf8_lossy(&buf);
    let all: Vec<&str> = text.lines().collect();
    Ok(all[all.len().saturating_sub(lines)..].join("\n"))
}

impl IronicSandbox {
    /// Install Ironic if needed (`setup.sh`: 70 s or more the first time,
    /// 0.2-0.6 s once the venv exists) and start it on a free loopback port
    /// in a fresh run directory (about 3 s on an idle machine).
    pub fn start(opts: IronicOptions) -> Result<IronicSandbox> {
        let setup = run_script("setup.sh", &[])?;
        eprint!("{setup}");
        let mut attempt = 0;
        loop {
            attempt += 1;
            let run_dir = tempfile::Builder::new()
                .prefix("ironic-sandbox-")
                .tempdir()
                .context("creating the Ironic run directory")?;
            let mut sandbox = IronicSandbox {
                run_dir: Some(run_dir),
                port: free_loopback_port()?,
                opts,
                http: ureq::AgentBuilder::new()
                    .timeout_connect(Duration::from_secs(5))
                    .timeout(Duration::from_secs(60))
                    .build(),
                keep_run_dir: false,
            };
            // On error `sandbox` is dropped here, which runs stop.sh as well.
            match sandbox.run_start() {
                Ok(()) => return Ok(sandbox),
                // The port was free when probed but taken before ironic bound it.
                Err(err)
                    if attempt < 3 && format!("{err:#}").contains("Address already in use") =>
                {
                    eprintln!("ironic-harness: port {} was taken, retrying", sandbox.port);
                }
                Err(err) => {
                    sandbox.keep_run_dir = true;
                    return Err(err);
                }
            }
        }
    }

    fn run_start(&self) -> Result<()> {
        let dir = self.run_dir_str()?;
        let port = self.port.to_string();
        let mut args = vec![dir.as_str(), port.as_str()];
        args.extend(self.opts.flags());
        let out = run_script("start.sh", &args)?;
        eprint!("{out}");
        Ok(())
    }

    /// Stop Ironic and start it again in the same run directory and on the
    /// same port (nodes survive: the sqlite database is kept), possibly with
    /// other options.
    pub fn restart(&mut self, opts: IronicOptions) -> Result<()> {
        self.stop()?;
        self.opts = opts;
        self.run_start()
    }

    /// Like `restart`, with Ironic kept down for `pause` in between (an outage).
    pub fn restart_after(&mut self, opts: IronicOptions, pause: Duration) -> Result<()> {
        self.stop()?;
        std::thread::sleep(pause);
        self.opts = opts;
        self.run_start()
    }

    fn stop(&self) -> Result<()> {
        let dir = self.run_dir_str()?;
        let out = run_script("stop.sh", &[dir.as_str()])?;
        eprint!("{out}");
        Ok(())
    }

    fn run_dir_str(&self) -> Result<String> {
        let dir = self
            .run_dir()
            .ok_or_else(|| anyhow!("the sandbox has no run directory"))?;
        dir.to_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("run directory {} is not UTF-8", dir.display()))
    }

    /// `http://127.0.0.1:PORT` (no trailing slash); the agent's `api_url`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn options(&self) -> IronicOptions {
        self.opts
    }

    /// Holds `ironic.conf`, `ironic.log`, `state/ironic.sqlite`, `deploy-logs/`.
    pub fn run_dir(&self) -> Option<&Path> {
        self.run_dir.as_ref().map(|d| d.path())
    }

    /// The last `lines` lines of `ironic.log` (debug level; every agent
    /// command and its result is in there).
    pub fn log_tail(&self, lines: usize) -> String {
        let Some(dir) = self.run_dir() else {
            return String::from("(no run directory)");
        };
        let path = dir.join("ironic.log");
        file_tail(&path, lines)
            .unwrap_or_else(|err| format!("(cannot read {}: {err})", path.display()))
    }

    // ---- REST -------------------------------------------------------------

    /// Any request, without judging the status: `(status, body text)`.
    /// `headers` are sent in addition to (and may override) the default
    /// `X-OpenStack-Ironic-API-Version: latest`.
    pub fn request_raw(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<(u16, String)> {
        let url = format!("{}{}", self.url(), path);
        let mut req = self.http.request(method, &url);
        if !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case(API_VERSION_HEADER))
        {
            req = req.set(API_VERSION_HEADER, "latest");
        }
        for (key, value) in headers {
            req = req.set(key, value);
        }
        let result = match body {
            Some(body) => req.send_json(body),
            None => req.call(),
        };
        let resp = match result {
            Ok(resp) => resp,
            Err(ureq::Error::Status(_, resp)) => resp,
            Err(err) => return Err(anyhow!("{method} {url}: {err}")),
        };
        let status = resp.status();
        let text = resp
            .into_string()
            .with_context(|| format!("{method} {url}: reading the body"))?;
        Ok((status, text))
    }

    /// A request that must answer 2xx; the body parsed as JSON (`Null` when empty).
    pub fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, text) = self.request_raw(method, path, &[], body)?;
        if !(200..300).contains(&status) {
            bail!("{method} {path} answered {status}: {text}");
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text)
            .with_context(|| format!("{method} {path}: body is not JSON: {text}"))
    }

    /// Enroll a node: fake-hardware, custom-agent deploy, agent inspect, noop
    /// network, `deploy_forces_oob_reboot` (tear-down sends `standby.sync`
    /// instead of `standby.power_off`), cpu_arch x86_64. `body_overrides` is
    /// merged into that body (objects key by key). Returns the node's uuid.
    pub fn create_node(&self, name: &str, body_overrides: Value) -> Result<String> {
        let mut body = json!({
            "name": name,
            "driver": "fake-hardware",
            "deploy_interface": "custom-agent",
            "inspect_interface": "agent",
            "network_interface": "noop",
            "properties": {"cpu_arch": "x86_64"},
            "driver_info": {"deploy_forces_oob_reboot": true},
        });
        merge_json(&mut body, body_overrides);
        let node = self.request("POST", "/v1/nodes", Some(&body))?;
        node["uuid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("POST /v1/nodes answered without a uuid: {node}"))
    }

    /// Add a port with `mac` to `node` (name or uuid); returns the port's uuid.
    /// The agent finds its node by looking up this MAC.
    pub fn create_port(&self, node: &str, mac: &str) -> Result<String> {
        let node_uuid = self.node_uuid(node)?;
        let port = self.request(
            "POST",
            "/v1/ports",
            Some(&json!({"node_uuid": node_uuid, "address": mac, "pxe_enabled": true})),
        )?;
        port["uuid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("POST /v1/ports answered without a uuid: {port}"))
    }

    fn node_uuid(&self, node: &str) -> Result<String> {
        let value = self.node(node)?;
        value["uuid"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("node {node} has no uuid: {value}"))
    }

    /// `PUT /v1/nodes/{node}/states/provision` with `{"target": target}` plus
    /// `extra` (e.g. `{"deploy_steps": [...]}` or `{"clean_steps": [...]}`).
    pub fn set_provision_state(&self, node: &str, target: &str, extra: Value) -> Result<()> {
        let mut body = json!({"target": target});
        if !extra.is_null() {
            merge_json(&mut body, extra);
        }
        self.request(
            "PUT",
            &format!("/v1/nodes/{node}/states/provision"),
            Some(&body),
        )
        .with_context(|| format!("provision {node} -> {target}"))?;
        Ok(())
    }

    /// `GET /v1/nodes/{node}`.
    pub fn node(&self, node: &str) -> Result<Value> {
        self.request("GET", &format!("/v1/nodes/{node}"), None)
    }

    /// `PATCH /v1/nodes/{node}` with a JSON patch, e.g.
    /// `json!([{"op": "replace", "path": "/automated_clean", "value": true}])`.
    pub fn patch_node(&self, node: &str, ops: Value) -> Result<Value> {
        self.request("PATCH", &format!("/v1/nodes/{node}"), Some(&ops))
    }

    /// `GET /v1/nodes/{node}/inventory`: `{"inventory": ..., "plugin_data": ...}`
    /// once inspection stored one.
    pub fn inventory(&self, node: &str) -> Result<Value> {
        self.request("GET", &format!("/v1/nodes/{node}/inventory"), None)
    }

    /// `GET /v1/ports?node={node}&detail=True` → the `ports` array.
    pub fn ports(&self, node: &str) -> Result<Vec<Value>> {
        let value = self.request("GET", &format!("/v1/ports?node={node}&detail=True"), None)?;
        match value.get("ports") {
            Some(Value::Array(ports)) => Ok(ports.clone()),
            _ => bail!("GET /v1/ports answered without a ports array: {value}"),
        }
    }

    /// Enrolls `name` with a port of `mac`, then manages and provides it: the node
    /// is `available` (each wait bounded by `timeout`). Returns its UUID.
    pub fn available_node(&self, name: &str, mac: &str, timeout: Duration) -> String {
        let node = self.manageable_node(name, mac, serde_json::json!({}), timeout);
        self.set_provision_state(&node, "provide", serde_json::json!({}))
            .expect("provide");
        self.wait_for_provision_state(&node, &["available"], timeout)
            .expect("available");
        node
    }

    /// Enroll `name` (with `body` merged into the node) and a port of `mac`, then
    /// manage it: `manageable`. Returns its UUID.
    pub fn manageable_node(&self, name: &str, mac: &str, body: Value, timeout: Duration) -> String {
        let node = self.create_node(name, body).expect("create node");
        self.create_port(&node, mac).expect("create port");
        self.set_provision_state(&node, "manage", serde_json::json!({}))
            .expect("manage");
        self.wait_for_provision_state(&node, &["manageable"], timeout)
            .expect("manageable");
        node
    }

    /// Poll the node every 200 ms until its `provision_state` is one of
    /// `wanted` and returns the node. Stable states (enroll, manageable,
    /// available, active) count only with no pending `target_provision_state`.
    /// Errors, with `provision_state`, `last_error` and the Ironic log tail,
    /// on timeout or when the node reaches a failure state (`deploy failed`,
    /// `clean failed`, `inspect failed`, `error`, ...) that is not wanted.
    pub fn wait_for_provision_state(
        &self,
        node: &str,
        wanted: &[&str],
        timeout: Duration,
    ) -> Result<Value> {
        let start = Instant::now();
        loop {
            let value = self.node(node)?;
            let state = value["provision_state"].as_str().unwrap_or("<none>");
            let target = &value["target_provision_state"];
            if wanted.contains(&state) && (target.is_null() || !is_stable_state(state)) {
                return Ok(value);
            }
            let failed = is_failure_state(state);
            if failed || start.elapsed() >= timeout {
                bail!(
                    "node {node}: {} waiting for provision state {wanted:?} after {:.1} s: \
                     provision_state={state:?} target_provision_state={target} power_state={} \
                     last_error={}\n--- last lines of {} ---\n{}",
                    if failed { "failed" } else { "timed out" },
                    start.elapsed().as_secs_f64(),
                    value["power_state"],
                    value["last_error"],
                    self.run_dir()
                        .map(|d| d.join("ironic.log").display().to_string())
                        .unwrap_or_default(),
                    self.log_tail(60),
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for IronicSandbox {
    fn drop(&mut self) {
        if let Err(err) = self.stop() {
            eprintln!("ironic-harness: stopping ironic failed: {err:#}");
        }
        let keep = self.keep_run_dir
            || std::thread::panicking()
            || std::env::var_os("IRONIC_HARNESS_KEEP").is_some_and(|v| v == "1");
        if let Some(dir) = self.run_dir.take() {
            if keep {
                let path = dir.keep();
                eprintln!("ironic-harness: kept the run directory {}", path.display());
            }
            // otherwise TempDir's own drop removes it
        }
    }
}

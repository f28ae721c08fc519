//! The extensions and commands of `ipa-protocol.md` §3: the command table,
//! the validators that run before a command is accepted, and the command
//! bodies. Plain async functions over an [`ExecEnv`]; the coordinator actor
//! only sequences them and stores results.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix::Recipient;
use serde_json::{json, Map, Value};

use crate::api::StopServing;
use crate::config::{AgentConfig, Secret};
use crate::coordinator::Peers;
use crate::errors::{AgentError, StepKind};
use crate::hardware::{ManagerSet, StepContext};
use crate::host::{BoxFuture, CommandRunner, CommandSpec, DeviceAllowlist};
use crate::inspector::CollectInventory;
use crate::installer::RunStep;
use crate::power::{PowerAction, PowerControl};

/// Whether a command answers at once or runs in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Runs inline; the response holds the final result.
    Sync,
    /// Answers RUNNING at once and finishes later.
    Async,
}

/// One `<extension>.<command>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommandDef {
    /// The extension (`clean`, `standby`…).
    pub extension: &'static str,
    /// The command (`get_clean_steps`…).
    pub name: &'static str,
    /// Sync or async.
    pub mode: Mode,
}

const fn def(extension: &'static str, name: &'static str, mode: Mode) -> CommandDef {
    CommandDef {
        extension,
        name,
        mode,
    }
}

/// Every command this agent serves.
pub const COMMANDS: &[CommandDef] = &[
    def("clean", "get_clean_steps", Mode::Sync),
    def("clean", "execute_clean_step", Mode::Async),
    def("deploy", "get_deploy_steps", Mode::Sync),
    def("deploy", "execute_deploy_step", Mode::Async),
    def("service", "get_service_steps", Mode::Sync),
    def("service", "execute_service_step", Mode::Async),
    def("standby", "prepare_image", Mode::Async),
    def("standby", "run_image", Mode::Async),
    def("standby", "power_off", Mode::Async),
    def("standby", "sync", Mode::Sync),
    def("standby", "get_partition_uuids", Mode::Sync),
    def("standby", "execute_bootc_install", Mode::Async),
    def("image", "install_bootloader", Mode::Async),
    def("log", "collect_system_logs", Mode::Sync),
    def("rescue", "finalize_rescue", Mode::Sync),
    def("system", "lockdown", Mode::Sync),
    def("poll", "get_hardware_info", Mode::Sync),
    def("poll", "set_node_info", Mode::Sync),
    def("flow", "start_flow", Mode::Async),
];

/// Finds a command: no dot → 400, unknown extension → 404, unknown command → 400.
pub fn lookup(full_name: &str) -> Result<&'static CommandDef, AgentError> {
    let Some((extension, command)) = full_name.split_once('.') else {
        return Err(AgentError::invalid_command(
            "Command name must be of the form <extension>.<name>",
        ));
    };
    if !COMMANDS.iter().any(|c| c.extension == extension) {
        return Err(AgentError::not_found(format!(
            "Extension with id {extension} not found."
        )));
    }
    COMMANDS
        .iter()
        .find(|c| c.extension == extension && c.name == command)
        .ok_or_else(|| AgentError::invalid_command(format!("Unknown command: {command}")))
}

impl CommandDef {
    /// `<extension>.<name>`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.extension, self.name)
    }

    /// The step family of a step command (`get_*_steps`, `execute_*_step`).
    pub fn step_kind(&self) -> Option<StepKind> {
        match self.extension {
            "clean" => Some(StepKind::Clean),
            "deploy" => Some(StepKind::Deploy),
            "service" => Some(StepKind::Service),
            _ => None,
        }
    }
}

/// Everything a command body may use. Cheap to clone.
#[derive(Clone)]
pub struct ExecEnv {
    /// The agent configuration.
    pub config: Arc<AgentConfig>,
    /// The worker actors.
    pub peers: Peers,
    /// The loaded hardware managers.
    pub managers: Arc<ManagerSet>,
    /// Runs host programs.
    pub runner: Arc<dyn CommandRunner>,
    /// Reboots / powers off the host.
    pub power: Arc<dyn PowerControl>,
    /// Stops the API (rescue, lockdown); `None` until wiring attached it.
    pub api: Option<Recipient<StopServing>>,
    /// The block devices destructive work may touch.
    pub allowlist: DeviceAllowlist,
    /// The node cached from lookup or an earlier step command.
    pub cached_node: Option<Value>,
    /// How long after a rescue/lockdown response the API is stopped.
    pub api_stop_delay: Duration,
    /// Secrets learnt at run time (the lookup's agent token), redacted from collected logs.
    pub log_secrets: Vec<Secret>,
}

impl std::fmt::Debug for ExecEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecEnv")
            .field("managers", &self.managers.summary())
            .field("api_attached", &self.api.is_some())
            .finish_non_exhaustive()
    }
}

impl ExecEnv {
    /// A step context with the given node and ports.
    pub fn step_context(&self, kind: Option<StepKind>, node: Value, ports: Value) -> StepContext {
        StepContext {
            kind,
            node,
            ports,
            config: self.config.clone(),
            allowlist: self.allowlist.clone(),
            peers: self.peers.clone(),
            runner: self.runner.clone(),
            managers: self.managers.clone(),
        }
    }
}

/// Keyword-parameter checks with Python-like messages (IPA passes params as kwargs).
struct Kwargs<'a> {
    method: &'a str,
    params: &'a Map<String, Value>,
}

impl<'a> Kwargs<'a> {
    fn new(method: &'a str, params: &'a Map<String, Value>) -> Self {
        Self { method, params }
    }

    /// Unknown keyword → error (no `**kwargs` in the signature).
    fn only(&self, allowed: &[&str]) -> Result<(), AgentError> {
        match self.params.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(key) => Err(AgentError::execution(format!(
                "{}() got an unexpected keyword argument '{key}'",
                self.method
            ))),
            None => Ok(()),
        }
    }

    /// A keyword that must be present (null allowed).
    fn present(&self, name: &str) -> Result<&'a Value, AgentError> {
        self.params.get(name).ok_or_else(|| {
            AgentError::execution(format!(
                "{}() missing 1 required positional argument: '{name}'",
                self.method
            ))
        })
    }

    fn optional_bool(&self, name: &str, default: bool) -> Result<bool, AgentError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(value)) => Ok(*value),
            Some(_) => Err(AgentError::execution(format!(
                "{}() argument '{name}' must be a boolean",
                self.method
            ))),
        }
    }

    fn optional_str(&self, name: &str) -> Result<Option<&'a str>, AgentError> {
        match self.params.get(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(value)) => Ok(Some(value)),
            Some(_) => Err(AgentError::execution(format!(
                "{}() argument '{name}' must be a string",
                self.method
            ))),
        }
    }
}

/// Runs a command's validator: the checks IPA makes before accepting it.
/// An error with code 400 is an HTTP error; any other is stored as FAILED.
pub fn validate(
    command: &CommandDef,
    params: &Map<String, Value>,
    env: &ExecEnv,
) -> Result<(), AgentError> {
    match (command.extension, command.name) {
        ("standby", "prepare_image") => {
            validate_image_info(params.get("image_info"))?;
            crate::installer::image::validate_checksum_config(
                params.get("image_info"),
                env.config.md5_enabled,
            )
        }
        ("flow", "start_flow") => validate_flow(params.get("flow")),
        ("poll", "set_node_info") if !env.config.standalone => Err(AgentError::invalid_command(
            "Node lookup data can only be set when the Agent is running in standalone mode.",
        )),
        _ => Ok(()),
    }
}

/// IPA's image_info validator (`standby.prepare_image`).
pub fn validate_image_info(image_info: Option<&Value>) -> Result<(), AgentError> {
    let empty = Map::new();
    let info = match image_info {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(info)) => info,
        Some(_) => {
            return Err(AgentError::invalid_params(
                "Image 'image_info' must be an object.",
            ))
        }
    };
    for field in ["id", "urls"] {
        if !info.contains_key(field) {
            return Err(AgentError::invalid_params(format!(
                "Image is missing '{field}' field."
            )));
        }
    }
    if info["urls"].as_array().is_none_or(|urls| urls.is_empty()) {
        return Err(AgentError::invalid_params(
            "Image 'urls' must be a list with at least one element.",
        ));
    }
    let non_empty = |key: &str| {
        info.get(key)
            .and_then(Value::as_str)
            .is_some_and(|s| !s.is_empty())
    };
    if let Some(checksum) = info.get("checksum").filter(|v| !v.is_null()) {
        if checksum.as_str().is_none_or(str::is_empty) {
            return Err(AgentError::invalid_params(
                "Image 'checksum' must be a non-empty string.",
            ));
        }
    }
    let has_os_hash = non_empty("os_hash_algo") && non_empty("os_hash_value");
    if !non_empty("checksum") && !has_os_hash {
        return Err(AgentError::invalid_params(
            "Image is missing 'checksum' or 'os_hash_value' field.",
        ));
    }
    Ok(())
}

/// The `flow.start_flow` validator (§3.1): unknown extension → 404 error (stored
/// as FAILED), unknown method → 400, malformed flow → 400.
pub fn validate_flow(flow: Option<&Value>) -> Result<(), AgentError> {
    let Some(tasks) = flow.and_then(Value::as_array) else {
        return Err(AgentError::invalid_params(
            "flow must be a list of {\"<extension>.<command>\": {params}} objects",
        ));
    };
    for task in tasks {
        let Some(task) = task.as_object() else {
            return Err(AgentError::invalid_params(format!(
                "flow entry {task} is not an object"
            )));
        };
        for (method, params) in task {
            let Some((extension, command)) = method.split_once('.') else {
                return Err(AgentError::invalid_params(format!(
                    "flow entry {method} must be of the form <extension>.<name>"
                )));
            };
            if !COMMANDS.iter().any(|c| c.extension == extension) {
                return Err(AgentError::not_found(format!(
                    "Extension with id {extension} not found."
                )));
            }
            if !COMMANDS
                .iter()
                .any(|c| c.extension == extension && c.name == command)
            {
                return Err(AgentError::invalid_params(format!(
                    "Extension {extension} doesn't provide {command} method"
                )));
            }
            if !params.is_object() {
                return Err(AgentError::invalid_params(format!(
                    "the parameters of {method} must be an object"
                )));
            }
        }
    }
    Ok(())
}

/// Runs a command body. Errors are command failures (stored as FAILED or
/// CLEAN_VERSION_MISMATCH), never HTTP errors.
pub fn execute(
    command: &'static CommandDef,
    params: Map<String, Value>,
    env: ExecEnv,
) -> BoxFuture<'static, Result<Value, AgentError>> {
    Box::pin(async move {
        let method = command.name;
        let kw = Kwargs::new(method, &params);
        match (command.extension, command.name) {
            (_, "get_clean_steps" | "get_deploy_steps" | "get_service_steps") => {
                kw.only(&["node", "ports"])?;
                let node = kw.present("node")?;
                let ports = kw.present("ports")?;
                let kind = command
                    .step_kind()
                    .ok_or_else(|| AgentError::execution("no step kind"))?;
                Ok(env.managers.get_steps(kind, node, ports))
            }
            (_, "execute_clean_step" | "execute_deploy_step" | "execute_service_step") => {
                let kind = command
                    .step_kind()
                    .ok_or_else(|| AgentError::execution("no step kind"))?;
                kw.present("step")?;
                let node = kw.present("node")?.clone();
                let ports = kw.present("ports")?.clone();
                let ctx = env.step_context(Some(kind), node, ports);
                env.managers.clone().execute_step(kind, params, ctx).await
            }
            ("standby", "prepare_image") => {
                kw.only(&["image_info", "configdrive"])?;
                delegate(&env, "prepare_image", params).await
            }
            ("standby", "execute_bootc_install") => {
                kw.only(&[
                    "image_source",
                    "instance_info",
                    "pull_secret",
                    "configdrive",
                ])?;
                if !kw.present("image_source")?.is_string() {
                    return Err(AgentError::execution(
                        "execute_bootc_install() argument 'image_source' must be a string",
                    ));
                }
                delegate(&env, "execute_bootc_install", params).await
            }
            ("image", "install_bootloader") => {
                kw.only(&[
                    "root_uuid",
                    "efi_system_part_uuid",
                    "prep_boot_part_uuid",
                    "target_boot_mode",
                    "ignore_bootloader_failure",
                ])?;
                kw.present("root_uuid")?;
                kw.optional_str("target_boot_mode")?;
                delegate(&env, "install_bootloader", params).await
            }
            ("standby", "run_image") => {
                kw.only(&[])?;
                flush_before_power_action(env.runner.as_ref()).await;
                env.power.execute(PowerAction::Reboot).await?;
                Ok(Value::Null)
            }
            ("standby", "power_off") => {
                kw.only(&[])?;
                flush_before_power_action(env.runner.as_ref()).await;
                env.power.execute(PowerAction::PowerOff).await?;
                Ok(Value::Null)
            }
            ("standby", "sync") => {
                kw.only(&[])?;
                sync_disks(env.runner.as_ref()).await?;
                Ok(Value::Null)
            }
            ("standby", "get_partition_uuids") => {
                kw.only(&[])?;
                // `{}` until the installer wrote an image.
                delegate(&env, "get_partition_uuids", params).await
            }
            ("log", "collect_system_logs") => {
                kw.only(&[])?;
                let paths = &env.config.paths;
                let archive = crate::logs::collect_system_logs(
                    &paths.host_root,
                    &paths.proc_root,
                    env.runner.as_ref(),
                    &crate::logs::secrets_of(&env.config, &env.log_secrets),
                )
                .await?;
                Ok(json!({ "system_logs": archive }))
            }
            ("rescue", "finalize_rescue") => {
                kw.only(&["rescue_password", "hashed"])?;
                let password = kw.optional_str("rescue_password")?.unwrap_or("");
                let hashed = kw.optional_bool("hashed", false)?;
                finalize_rescue(&env.config.paths.etc_root, password, hashed).await?;
                schedule_api_stop(&env, "rescue finalized");
                Ok(Value::Null)
            }
            ("system", "lockdown") => {
                kw.only(&[])?;
                tracing::warn!("lockdown requested: the API stops, then the network goes down");
                schedule_api_stop(&env, "lockdown");
                schedule_links_down(&env);
                Ok(Value::Null)
            }
            ("poll", "get_hardware_info") => {
                kw.only(&[])?;
                let inventory = env
                    .peers
                    .inspector
                    .send(CollectInventory { refresh: true })
                    .await
                    .map_err(|err| {
                        AgentError::execution(format!("inspector unavailable: {err}"))
                    })??;
                serde_json::to_value(inventory)
                    .map_err(|err| AgentError::execution(format!("inventory: {err}")))
            }
            ("poll", "set_node_info") => {
                kw.only(&["node_info"])?;
                if !kw.present("node_info")?.is_object() {
                    return Err(AgentError::execution(
                        "set_node_info() argument 'node_info' must be an object",
                    ));
                }
                // The coordinator caches node_info["node"] when storing the result.
                Ok(Value::Null)
            }
            ("flow", "start_flow") => {
                kw.only(&["flow"])?;
                run_flow(params.get("flow").cloned().unwrap_or(Value::Null), env).await
            }
            _ => Err(AgentError::invalid_command(format!(
                "Unknown command: {}",
                command.name
            ))),
        }
    })
}

/// Hands a command's host work to the installer runner.
async fn delegate(
    env: &ExecEnv,
    name: &str,
    args: Map<String, Value>,
) -> Result<Value, AgentError> {
    let node = env.cached_node.clone().unwrap_or(Value::Null);
    let step = RunStep {
        step: name.to_string(),
        kind: None,
        args,
        node,
        ports: Value::Array(Vec::new()),
        install_device: None,
    };
    crate::hardware::generic::run_on_installer(&env.peers, step)
        .await
        .map_err(|err| err.into_command_error(name))
}

/// Before a reboot or power-off IPA writes the clock to the hardware clock and
/// flushes buffers; failures only warn.
async fn flush_before_power_action(runner: &dyn CommandRunner) {
    let hwclock = CommandSpec::new("hwclock", ["-v", "--systohc"]);
    if let Ok(output) = runner.run(hwclock).await {
        if !output.success() {
            tracing::warn!(exit = %output.describe_exit(), "failed to sync the hardware clock");
        }
    }
    if let Err(err) = sync_disks(runner).await {
        tracing::warn!(error = %err, "failed to sync file system buffers");
    }
}

/// `standby.sync`: flush file-system buffers.
pub async fn sync_disks(runner: &dyn CommandRunner) -> Result<(), AgentError> {
    let spec = CommandSpec::new("sync", Vec::<String>::new());
    match runner.run(spec).await {
        Ok(output) if output.success() => Ok(()),
        Ok(output) => Err(AgentError::execution(format!(
            "Flushing file system buffers failed: sync exited with {}: {}",
            output.describe_exit(),
            output.stderr.trim()
        ))),
        Err(err) => Err(AgentError::execution(format!(
            "Flushing file system buffers failed: {err}"
        ))),
    }
}

/// The rescue password file, below `etc_root`.
pub fn rescue_password_path(etc_root: &Path) -> std::path::PathBuf {
    etc_root.join("etc/ipa-rescue-config/ipa-rescue-password")
}

/// The marker that keeps the API stopped after a rescue, below `etc_root`.
pub fn rescued_marker_path(etc_root: &Path) -> std::path::PathBuf {
    etc_root.join("etc/.rescued")
}

/// Writes the (hashed) rescue password and the `.rescued` marker.
pub async fn finalize_rescue(
    etc_root: &Path,
    password: &str,
    hashed: bool,
) -> Result<(), AgentError> {
    let stored = if hashed {
        password.to_string()
    } else {
        let params = sha_crypt::Sha256Params::new(sha_crypt::ROUNDS_DEFAULT)
            .map_err(|err| AgentError::execution(format!("hashing parameters: {err:?}")))?;
        sha_crypt::sha256_simple(password, &params)
            .map_err(|err| AgentError::execution(format!("hashing the rescue password: {err:?}")))?
    };
    let path = rescue_password_path(etc_root);
    let io_error = |what: &str, err: std::io::Error| {
        AgentError::new(
            "RescueError",
            500,
            "Failed to finalize rescue",
            format!("{what}: {err}"),
        )
    };
    if let Some(dir) = path.parent() {
        tokio::fs::create_dir_all(dir)
            .await
            .map_err(|err| io_error("creating the rescue config directory", err))?;
    }
    tokio::fs::write(&path, stored.as_bytes())
        .await
        .map_err(|err| io_error("writing the rescue password", err))?;
    let marker = rescued_marker_path(etc_root);
    tokio::fs::write(&marker, b"")
        .await
        .map_err(|err| io_error("creating the .rescued marker", err))?;
    tracing::info!("rescue password written; the API stops");
    Ok(())
}

/// Stops the API shortly after the current response was sent.
fn schedule_api_stop(env: &ExecEnv, reason: &'static str) {
    let Some(api) = env.api.clone() else {
        tracing::warn!(reason, "no API control attached: the API keeps serving");
        return;
    };
    let delay = env.api_stop_delay;
    actix::spawn(async move {
        tokio::time::sleep(delay).await;
        tracing::info!(reason, "stopping the API");
        if let Err(err) = api.send(StopServing { graceful: true }).await {
            tracing::error!(error = %err, "could not stop the API");
        }
    });
}

/// The network interfaces to take down on lockdown: every entry of
/// `<sys_root>/class/net` except `lo`, sorted.
pub fn lockdown_interfaces(sys_root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(sys_root.join("class/net"))
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| name != "lo")
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// After lockdown (and after the API stopped), IPA runs `ip link set <iface> down`
/// for every interface so the node is unreachable.
fn schedule_links_down(env: &ExecEnv) {
    let runner = env.runner.clone();
    let interfaces = lockdown_interfaces(&env.config.paths.sys_root);
    let delay = env.api_stop_delay * 2;
    actix::spawn(async move {
        tokio::time::sleep(delay).await;
        for iface in interfaces {
            let spec = CommandSpec::new("ip", ["link", "set", iface.as_str(), "down"]);
            match runner.run(spec).await {
                Ok(output) if output.success() => tracing::info!(%iface, "interface down"),
                Ok(output) => {
                    tracing::warn!(%iface, exit = %output.describe_exit(), "could not take the interface down");
                }
                Err(err) => tracing::warn!(%iface, error = %err, "could not run ip"),
            }
        }
    });
}

/// `flow.start_flow`: run each entry in order; a FAILED one stops the flow.
/// Nested results are not stored in the command list.
async fn run_flow(flow: Value, env: ExecEnv) -> Result<Value, AgentError> {
    let tasks = flow.as_array().cloned().unwrap_or_default();
    for task in tasks {
        let Some(task) = task.as_object().cloned() else {
            return Err(AgentError::invalid_params("flow entry is not an object"));
        };
        for (method, params) in task {
            tracing::info!(%method, "flow: running nested command");
            let command = lookup(&method)?;
            let params = params.as_object().cloned().unwrap_or_default();
            let outcome = match validate(command, &params, &env) {
                Ok(()) => execute(command, params, env.clone()).await,
                Err(err) => Err(err),
            };
            if let Err(err) = outcome {
                tracing::warn!(%method, error = %err, "flow: nested command failed");
                return Err(AgentError::execution(format!("{method} was failed")));
            }
        }
    }
    Ok(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_gives_ipa_errors() {
        let no_dot = lookup("sync").expect_err("no dot");
        assert_eq!(no_dot.code, 400);
        assert_eq!(
            no_dot.faultstring(),
            "Invalid command: Command name must be of the form <extension>.<name>"
        );
        let unknown_ext = lookup("nope.sync").expect_err("unknown extension");
        assert_eq!(unknown_ext.code, 404);
        assert_eq!(
            unknown_ext.faultstring(),
            "Not found: Extension with id nope not found."
        );
        let unknown_cmd = lookup("standby.nope").expect_err("unknown command");
        assert_eq!(
            unknown_cmd.faultstring(),
            "Invalid command: Unknown command: nope"
        );
        let found = lookup("clean.execute_clean_step").expect("known");
        assert_eq!(found.mode, Mode::Async);
        assert_eq!(found.step_kind(), Some(StepKind::Clean));
        assert_eq!(lookup("standby.sync").expect("known").mode, Mode::Sync);
    }

    #[test]
    fn flow_validation_follows_ipa() {
        assert!(validate_flow(Some(
            &json!([{"standby.sync": {}}, {"standby.power_off": {}}])
        ))
        .is_ok());
        let missing_method = validate_flow(Some(&json!([{"standby.nope": {}}]))).expect_err("400");
        assert_eq!(missing_method.code, 400);
        assert_eq!(
            missing_method.faultstring(),
            "Invalid command parameters: Extension standby doesn't provide nope method"
        );
        let missing_ext = validate_flow(Some(&json!([{"nope.sync": {}}]))).expect_err("404");
        assert_eq!(missing_ext.code, 404);
        assert_eq!(missing_ext.error_type, "RequestedObjectNotFoundError");
        assert_eq!(validate_flow(None).expect_err("no flow").code, 400);
        assert_eq!(
            validate_flow(Some(&json!({"a": 1})))
                .expect_err("not a list")
                .code,
            400
        );
        assert_eq!(
            validate_flow(Some(&json!(["x"]))).expect_err("entry").code,
            400
        );
        assert_eq!(
            validate_flow(Some(&json!([{"sync": {}}])))
                .expect_err("dot")
                .code,
            400
        );
        assert_eq!(
            validate_flow(Some(&json!([{"standby.sync": 3}])))
                .expect_err("params")
                .code,
            400
        );
    }

    #[test]
    fn image_info_validation() {
        let good = json!({"id": "abc", "urls": ["http://x/img"], "checksum": "abc"});
        assert!(validate_image_info(Some(&good)).is_ok());
        let os_hash =
            json!({"id": "abc", "urls": ["u"], "os_hash_algo": "sha256", "os_hash_value": "f"});
        assert!(validate_image_info(Some(&os_hash)).is_ok());
        for (bad, text) in [
            (
                json!({"urls": ["u"], "checksum": "c"}),
                "Image is missing 'id' field.",
            ),
            (
                json!({"id": "a", "urls": [], "checksum": "c"}),
                "Image 'urls' must be a list",
            ),
            (
                json!({"id": "a", "urls": ["u"]}),
                "'checksum' or 'os_hash_value'",
            ),
            (
                json!({"id": "a", "urls": ["u"], "checksum": 5}),
                "non-empty string",
            ),
        ] {
            let err = validate_image_info(Some(&bad)).expect_err("invalid");
            assert_eq!(err.error_type, "InvalidCommandParamsError");
            assert!(err.details.contains(text), "{} vs {text}", err.details);
        }
        assert!(validate_image_info(None).is_err());
    }

    #[tokio::test]
    async fn finalize_rescue_hashes_and_marks() {
        let dir = tempfile::tempdir().expect("tempdir");
        finalize_rescue(dir.path(), "s3cret", false)
            .await
            .expect("rescue");
        let stored = std::fs::read_to_string(rescue_password_path(dir.path())).expect("read");
        assert!(stored.starts_with("$5$"), "{stored}");
        assert!(sha_crypt::sha256_check("s3cret", &stored).is_ok());
        assert!(rescued_marker_path(dir.path()).exists());

        let other = tempfile::tempdir().expect("tempdir");
        finalize_rescue(other.path(), "$6$already$hashed", true)
            .await
            .expect("rescue");
        let stored = std::fs::read_to_string(rescue_password_path(other.path())).expect("read");
        assert_eq!(stored, "$6$already$hashed");
    }
}

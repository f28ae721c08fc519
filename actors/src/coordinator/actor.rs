//! The coordinator actor and the messages the API sends it.
//!
//! Run requests are serialized by an async lock (IPA's global command lock);
//! other messages (list, get, cache) keep flowing while a sync command runs.
//! Async commands run as actor futures; waiters follow a `watch` channel per
//! command, so `wait=true` never blocks the mailbox.

use std::sync::Arc;
use std::time::Duration;

use actix::{
    Actor, ActorFutureExt, Addr, AsyncContext, Context, Handler, Message, MessageResult, Recipient,
    ResponseActFuture, ResponseFuture, WrapFuture,
};
use serde_json::{Map, Value};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tracing::Instrument;

use crate::api::StopServing;
use crate::command::CommandResult;
use crate::config::AgentConfig;
use crate::errors::AgentError;
use crate::hardware::ManagerSet;
use crate::host::{CommandRunner, DeviceAllowlist, ProcessRunner};
use crate::inspector::HardwareInspector;
use crate::installer::InstallerRunner;
use crate::ironic::{ForceHeartbeat, IronicClient};
use crate::power::{HostCommandPower, PowerControl};
use crate::probe::Probe;
use crate::systemd::SystemdSupervisor;

use super::commands::{self, ExecEnv, Mode};
use super::registry::{self, Registry};

/// Addresses of the worker actors the coordinator delegates to.
#[derive(Debug, Clone)]
pub struct Peers {
    /// Inventory and root-device selection.
    pub inspector: Addr<HardwareInspector>,
    /// Long subprocesses and image writes.
    pub installer: Addr<InstallerRunner>,
    /// Host systemd over D-Bus.
    pub systemd: Addr<SystemdSupervisor>,
    /// The Ironic client, told to heartbeat when an async command ends.
    pub ironic: Addr<IronicClient>,
}

/// Owns the command registry and runs commands one at a time.
pub struct Coordinator {
    config: Arc<AgentConfig>,
    peers: Peers,
    heartbeat: Recipient<ForceHeartbeat>,
    registry: Registry,
    cached_node: Option<Value>,
    managers: Arc<ManagerSet>,
    runner: Arc<dyn CommandRunner>,
    power: Arc<dyn PowerControl>,
    api: Option<Recipient<StopServing>>,
    run_lock: Arc<Mutex<()>>,
    draining: bool,
    api_stop_delay: Duration,
    state: Option<crate::state::StateStore>,
    labels: std::collections::BTreeMap<String, String>,
    log_secrets: Vec<crate::config::Secret>,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the cached node (driver_info may hold secrets) or results.
        f.debug_struct("Coordinator")
            .field("managers", &self.managers.summary())
            .field("commands", &self.registry.list().len())
            .field("node_cached", &self.cached_node.is_some())
            .field("draining", &self.draining)
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// Creates the coordinator with its peers, the standard hardware managers,
    /// the real process runner and host-command power control.
    pub fn new(config: AgentConfig, peers: Peers) -> Self {
        let heartbeat = peers.ironic.clone().recipient();
        let runner: Arc<dyn CommandRunner> = Arc::new(ProcessRunner::default());
        let power = Arc::new(HostCommandPower::new(
            runner.clone(),
            config.paths.host_root.clone(),
            config.paths.proc_root.clone(),
        ));
        let managers = Arc::new(ManagerSet::standard(&config));
        tracing::info!(managers = ?managers.summary(), "hardware managers loaded");
        Self {
            config: Arc::new(config),
            peers,
            heartbeat,
            registry: Registry::new(),
            cached_node: None,
            managers,
            runner,
            power,
            api: None,
            run_lock: Arc::new(Mutex::new(())),
            draining: false,
            api_stop_delay: Duration::from_millis(200),
            state: None,
            labels: std::collections::BTreeMap::new(),
            log_secrets: Vec::new(),
        }
    }

    /// Uses another host command runner (tests record or fake calls).
    pub fn with_runner(mut self, runner: Arc<dyn CommandRunner>) -> Self {
        self.runner = runner;
        self
    }

    /// Uses another power control (tests use a recording stand-in).
    pub fn with_power(mut self, power: Arc<dyn PowerControl>) -> Self {
        self.power = power;
        self
    }

    /// Uses another set of hardware managers.
    pub fn with_managers(mut self, managers: ManagerSet) -> Self {
        self.managers = Arc::new(managers);
        self
    }

    /// Sends forced heartbeats somewhere else than the Ironic client (tests).
    pub fn with_heartbeat(mut self, heartbeat: Recipient<ForceHeartbeat>) -> Self {
        self.heartbeat = heartbeat;
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// Writes the command history to the state directory, when persistence is on.
    fn persist(&self) {
        if let Some(store) = &self.state {
            if let Err(err) = store.save_history(self.registry.list(), &self.labels) {
                tracing::warn!(error = %err, "cannot save the command history");
            }
        }
    }

    fn env(&self) -> ExecEnv {
        ExecEnv {
            config: self.config.clone(),
            peers: self.peers.clone(),
            managers: self.managers.clone(),
            runner: self.runner.clone(),
            power: self.power.clone(),
            api: self.api.clone(),
            allowlist: DeviceAllowlist::new(self.config.block_device_allowlist.iter()),
            cached_node: self.cached_node.clone(),
            api_stop_delay: self.api_stop_delay,
            log_secrets: self.log_secrets.clone(),
        }
    }

    /// Caches the node a step command or `set_node_info` carries (§3.2).
    fn cache_from_params(&mut self, command: &commands::CommandDef, params: &Map<String, Value>) {
        let node = if command.step_kind().is_some() {
            params.get("node")
        } else if command.extension == "poll" && command.name == "set_node_info" {
            params.get("node_info").and_then(|info| info.get("node"))
        } else {
            None
        };
        if let Some(node) = node.filter(|node| node.is_object()) {
            self.cache_node(node.clone());
        }
    }

    fn cache_node(&mut self, node: Value) {
        let new_uuid = node.get("uuid").cloned();
        let old_uuid = self
            .cached_node
            .as_ref()
            .and_then(|n| n.get("uuid"))
            .cloned();
        if old_uuid.is_some() && old_uuid != new_uuid {
            tracing::info!("cached node changed");
        }
        self.cached_node = Some(node);
    }

    /// The run sequence, with the command lock held.
    fn start_command(
        &mut self,
        msg: RunCommand,
        guard: OwnedMutexGuard<()>,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<CommandResult, AgentError>> {
        let ready = |result| Box::pin(actix::fut::ready(result)) as ResponseActFuture<Self, _>;
        if self.draining {
            return ready(Err(AgentError::shutting_down()));
        }
        if !msg.name.contains('.') {
            return ready(Err(AgentError::invalid_command(
                "Command name must be of the form <extension>.<name>",
            )));
        }
        if let Err(err) = self.registry.check_busy() {
            return ready(Err(err));
        }
        let command = match commands::lookup(&msg.name) {
            Ok(command) => command,
            Err(err) => return ready(Err(err)),
        };
        let id = registry::new_id();
        let full_name = command.full_name();
        let span = tracing::info_span!("command", command.id = %id, command.name = %command.name);
        let env = self.env();
        let validated = commands::validate(command, &msg.params, &env);
        if let Err(err) = validated {
            if err.is_invalid_request() {
                return ready(Err(err));
            }
            span.in_scope(|| tracing::warn!(error = %err, "command rejected by its validator"));
            let result = registry::rejected_result(id, &full_name, err);
            self.registry.insert(result.clone());
            self.persist();
            return ready(Ok(result));
        }
        self.cache_from_params(command, &msg.params);
        let env = self.env();
        span.in_scope(|| tracing::info!(mode = ?command.mode, "command accepted"));
        match command.mode {
            Mode::Sync => {
                let body = commands::execute(command, msg.params, env).instrument(span.clone());
                Box::pin(body.into_actor(self).map(move |outcome, act, _| {
                    let result = registry::sync_result(id, &full_name, outcome);
                    span.in_scope(
                        || tracing::info!(status = ?result.command_status, "command finished"),
                    );
                    act.registry.insert(result.clone());
                    act.persist();
                    drop(guard);
                    Ok(result)
                }))
            }
            Mode::Async => {
                let running = registry::running_result(id.clone(), &full_name);
                let receiver = self.registry.insert(running.clone());
                self.labels.insert(
                    id.clone(),
                    crate::state::command_label(&full_name, &msg.params),
                );
                self.persist();
                let body = commands::execute(command, msg.params, env).instrument(span.clone());
                let finish_span = span.clone();
                ctx.spawn(body.into_actor(self).map(move |outcome, act, _| {
                    let result = registry::async_result(id, &full_name, outcome);
                    finish_span.in_scope(|| {
                        tracing::info!(status = ?result.command_status, "command finished");
                    });
                    act.registry.update(result);
                    act.persist();
                    act.heartbeat.do_send(ForceHeartbeat);
                }));
                drop(guard);
                if msg.wait {
                    Box::pin(
                        async move { Ok(registry::wait_finished(receiver).await) }.into_actor(self),
                    )
                } else {
                    ready(Ok(running))
                }
            }
        }
    }
}

impl Actor for Coordinator {
    type Context = Context<Self>;
}

/// Request: run `<extension>.<command>` with keyword parameters.
#[derive(Debug, Clone)]
pub struct RunCommand {
    /// The dotted command name from the request body.
    pub name: String,
    /// The keyword parameters.
    pub params: Map<String, Value>,
    /// Block until the command has finished.
    pub wait: bool,
}

impl Message for RunCommand {
    type Result = Result<CommandResult, AgentError>;
}

impl Handler<RunCommand> for Coordinator {
    type Result = ResponseActFuture<Self, Result<CommandResult, AgentError>>;

    fn handle(&mut self, msg: RunCommand, _ctx: &mut Self::Context) -> Self::Result {
        let lock = self.run_lock.clone();
        Box::pin(
            async move { lock.lock_owned().await }
                .into_actor(self)
                .then(move |guard, act, ctx| act.start_command(msg, guard, ctx)),
        )
    }
}

/// Request: every command result so far, in execution order.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListCommands;

impl Message for ListCommands {
    type Result = Vec<CommandResult>;
}

impl Handler<ListCommands> for Coordinator {
    type Result = ResponseFuture<Vec<CommandResult>>;

    fn handle(&mut self, _msg: ListCommands, _ctx: &mut Self::Context) -> Self::Result {
        let results = self.registry.list();
        let installer = self.peers.installer.clone();
        Box::pin(async move {
            let mut out = Vec::with_capacity(results.len());
            for result in results {
                out.push(with_progress(result, &installer).await);
            }
            out
        })
    }
}

/// A RUNNING result shows the installer's progress (bytes written or erased so
/// far) as `command_progress`, asked of the installer runner
/// ([`crate::installer::GetProgress`]), which runs one long step at a time.
async fn with_progress(
    mut result: CommandResult,
    installer: &Addr<crate::installer::InstallerRunner>,
) -> CommandResult {
    if !result.is_finished() && result.command_progress.is_none() {
        result.command_progress = installer
            .send(crate::installer::GetProgress)
            .await
            .ok()
            .flatten();
    }
    result
}

/// Request: one command result by id, optionally waiting for it to finish.
#[derive(Debug, Clone)]
pub struct GetCommand {
    /// The command id.
    pub id: String,
    /// Block until the command has finished.
    pub wait: bool,
}

impl Message for GetCommand {
    type Result = Result<CommandResult, AgentError>;
}

impl Handler<GetCommand> for Coordinator {
    type Result = ResponseFuture<Result<CommandResult, AgentError>>;

    fn handle(&mut self, msg: GetCommand, _ctx: &mut Self::Context) -> Self::Result {
        let Some(receiver) = self.registry.subscribe(&msg.id) else {
            let err =
                AgentError::not_found(format!("Command Result with id {} not found.", msg.id));
            return Box::pin(async move { Err(err) });
        };
        if msg.wait {
            Box::pin(async move { Ok(registry::wait_finished(receiver).await) })
        } else {
            let current = receiver.borrow().clone();
            let installer = self.peers.installer.clone();
            Box::pin(async move { Ok(with_progress(current, &installer).await) })
        }
    }
}

/// Request: stop accepting commands and wait (bounded) for the running one.
#[derive(Debug, Clone, Copy)]
pub struct DrainCommands {
    /// How long to wait for a running command before giving up.
    pub timeout: Duration,
}

impl Message for DrainCommands {
    /// `true` when nothing was left running.
    type Result = bool;
}

impl Handler<DrainCommands> for Coordinator {
    type Result = ResponseFuture<bool>;

    fn handle(&mut self, msg: DrainCommands, _ctx: &mut Self::Context) -> Self::Result {
        self.draining = true;
        let running = self.registry.running();
        let lock = self.run_lock.clone();
        Box::pin(async move {
            let wait = async move {
                // A sync command in progress holds the lock.
                let _guard = lock.lock().await;
                if let Some(receiver) = running {
                    registry::wait_finished(receiver).await;
                }
            };
            tokio::time::timeout(msg.timeout, wait).await.is_ok()
        })
    }
}

/// Request: persist the command history under `store` from now on, after restoring
/// the history a previous process of this boot left there. A command that was still
/// RUNNING is reported FAILED with "agent restarted during <step>". Answers
/// `(restored, interrupted)` counts.
#[derive(Debug, Clone)]
pub struct EnableStatePersistence(pub crate::state::StateStore);

impl Message for EnableStatePersistence {
    type Result = (usize, usize);
}

impl Handler<EnableStatePersistence> for Coordinator {
    type Result = actix::MessageResult<EnableStatePersistence>;

    fn handle(&mut self, msg: EnableStatePersistence, _ctx: &mut Self::Context) -> Self::Result {
        let store = msg.0;
        let mut counts = (0, 0);
        if let Some(mut history) = store.load_history() {
            counts.1 = history.fail_interrupted();
            counts.0 = history.commands.len();
            if counts.1 > 0 {
                for result in history.commands.iter().filter(|r| {
                    r.command_error
                        .as_ref()
                        .is_some_and(|e| e.error_type == "AgentRestarted")
                }) {
                    tracing::warn!(
                        command.id = %result.id,
                        error = %result.command_error.as_ref().map(|e| e.details.as_str()).unwrap_or(""),
                        "command interrupted by an agent restart: reporting it FAILED"
                    );
                }
            }
            for result in history.commands {
                self.registry.insert(result);
            }
            self.labels = history.labels;
            tracing::info!(restored = counts.0, "command history restored");
        }
        self.state = Some(store);
        self.persist();
        actix::MessageResult(counts)
    }
}

/// Request: apply the image options of lookup's `config` (ipa-protocol.md §6.2), as IPA
/// overrides its configuration with them; `None` keeps the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyLookupConfig {
    /// `agent_md5_checksum_enable` → `md5_enabled`.
    pub agent_md5_checksum_enable: Option<bool>,
    /// `permitted_image_formats`.
    pub permitted_image_formats: Option<Vec<String>>,
    /// `disable_deep_image_inspection`.
    pub disable_deep_image_inspection: Option<bool>,
    /// `enable_bios_bootloader_install`.
    pub enable_bios_bootloader_install: Option<bool>,
}

impl ApplyLookupConfig {
    /// Applies the given options to `config`.
    pub fn apply_to(&self, config: &mut AgentConfig) {
        if let Some(md5) = self.agent_md5_checksum_enable {
            config.md5_enabled = md5;
        }
        if let Some(formats) = &self.permitted_image_formats {
            config.permitted_image_formats = formats.clone();
        }
        if let Some(deep) = self.disable_deep_image_inspection {
            config.disable_deep_image_inspection = deep;
        }
        if let Some(bios) = self.enable_bios_bootloader_install {
            config.enable_bios_bootloader_install = bios;
        }
    }
}

impl Message for ApplyLookupConfig {
    /// The configuration commands run with from now on.
    type Result = Arc<AgentConfig>;
}

impl Handler<ApplyLookupConfig> for Coordinator {
    type Result = MessageResult<ApplyLookupConfig>;

    fn handle(&mut self, msg: ApplyLookupConfig, _ctx: &mut Self::Context) -> Self::Result {
        let mut config = (*self.config).clone();
        msg.apply_to(&mut config);
        tracing::info!(
            md5_enabled = config.md5_enabled,
            permitted_image_formats = ?config.permitted_image_formats,
            disable_deep_image_inspection = config.disable_deep_image_inspection,
            enable_bios_bootloader_install = config.enable_bios_bootloader_install,
            "applied the lookup configuration"
        );
        self.config = Arc::new(config);
        MessageResult(self.config.clone())
    }
}

/// Request: remember the node Ironic sent (lookup, or any step command).
#[derive(Debug, Clone)]
pub struct CacheNode {
    /// The node object exactly as Ironic serialized it.
    pub node: Value,
}

impl Message for CacheNode {
    type Result = ();
}

impl Handler<CacheNode> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: CacheNode, _ctx: &mut Self::Context) {
        self.cache_node(msg.node);
    }
}

/// Request: redact this secret (the agent token received at lookup) from collected logs.
#[derive(Debug, Clone)]
pub struct RedactInLogs(pub crate::config::Secret);

impl Message for RedactInLogs {
    type Result = ();
}

impl Handler<RedactInLogs> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: RedactInLogs, _ctx: &mut Self::Context) {
        let known = self
            .log_secrets
            .iter()
            .any(|s| s.expose() == msg.0.expose());
        if !msg.0.expose().is_empty() && !known {
            self.log_secrets.push(msg.0);
        }
    }
}

/// Request: the cached node, if any (diagnostics and tests).
#[derive(Debug, Clone, Copy, Default)]
pub struct GetCachedNode;

impl Message for GetCachedNode {
    type Result = Option<Value>;
}

impl Handler<GetCachedNode> for Coordinator {
    type Result = Option<Value>;

    fn handle(&mut self, _msg: GetCachedNode, _ctx: &mut Self::Context) -> Option<Value> {
        self.cached_node.clone()
    }
}

/// Request: from now on, stop the API through this recipient after
/// `rescue.finalize_rescue` and `system.lockdown`. Sent by the wiring once the
/// API actor exists (it is created after the coordinator).
#[derive(Debug, Clone)]
pub struct AttachApiControl(pub Recipient<StopServing>);

impl Message for AttachApiControl {
    type Result = ();
}

impl Handler<AttachApiControl> for Coordinator {
    type Result = ();

    fn handle(&mut self, msg: AttachApiControl, _ctx: &mut Self::Context) {
        self.api = Some(msg.0);
    }
}

/// Request: probe every peer actor and return their names (health check).
#[derive(Debug, Clone, Copy, Default)]
pub struct ProbeAll;

impl Message for ProbeAll {
    type Result = Result<Vec<String>, actix::MailboxError>;
}

impl Handler<ProbeAll> for Coordinator {
    type Result = ResponseFuture<Result<Vec<String>, actix::MailboxError>>;

    fn handle(&mut self, _msg: ProbeAll, _ctx: &mut Self::Context) -> Self::Result {
        let peers = self.peers.clone();
        Box::pin(async move {
            let mut names = vec!["coordinator".to_string()];
            names.push(peers.inspector.send(Probe).await?);
            names.push(peers.installer.send(Probe).await?);
            names.push(peers.systemd.send(Probe).await?);
            names.push(peers.ironic.send(Probe).await?);
            Ok(names)
        })
    }
}

crate::answer_probe!(Coordinator, "coordinator");

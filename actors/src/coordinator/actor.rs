//! The coordinator actor and the messages the API sends it.

use std::time::Duration;

use actix::{Actor, Addr, Context, Handler, Message, Recipient, ResponseFuture};
use serde_json::{Map, Value};

use crate::command::CommandResult;
use crate::config::AgentConfig;
use crate::errors::AgentError;
use crate::inspector::HardwareInspector;
use crate::installer::InstallerRunner;
use crate::ironic::{ForceHeartbeat, IronicClient};
use crate::probe::Probe;
use crate::systemd::SystemdSupervisor;

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
#[derive(Debug)]
pub struct Coordinator {
    config: AgentConfig,
    peers: Peers,
    heartbeat: Recipient<ForceHeartbeat>,
    commands: Vec<CommandResult>,
    cached_node: Option<Value>,
}

impl Coordinator {
    /// Creates the coordinator with its peers.
    pub fn new(config: AgentConfig, peers: Peers) -> Self {
        let heartbeat = peers.ironic.clone().recipient();
        Self {
            config,
            peers,
            heartbeat,
            commands: Vec::new(),
            cached_node: None,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
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
    type Result = Result<CommandResult, AgentError>;

    fn handle(&mut self, msg: RunCommand, _ctx: &mut Self::Context) -> Self::Result {
        let Some((extension, _command)) = msg.name.split_once('.') else {
            return Err(AgentError::invalid_command(
                "Command name must be of the form <extension>.<name>",
            ));
        };
        Err(AgentError::not_found(format!(
            "Extension with id {extension} not found."
        )))
    }
}

/// Request: every command result so far, in execution order.
#[derive(Debug, Clone, Copy, Default)]
pub struct ListCommands;

impl Message for ListCommands {
    type Result = Vec<CommandResult>;
}

impl Handler<ListCommands> for Coordinator {
    type Result = Vec<CommandResult>;

    fn handle(&mut self, _msg: ListCommands, _ctx: &mut Self::Context) -> Self::Result {
        self.commands.clone()
    }
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
    type Result = Result<CommandResult, AgentError>;

    fn handle(&mut self, msg: GetCommand, _ctx: &mut Self::Context) -> Self::Result {
        self.commands
            .iter()
            .find(|result| result.id == msg.id)
            .cloned()
            .ok_or_else(|| {
                AgentError::not_found(format!("Command Result with id {} not found.", msg.id))
            })
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
    type Result = bool;

    fn handle(&mut self, _msg: DrainCommands, _ctx: &mut Self::Context) -> bool {
        self.commands.iter().all(CommandResult::is_finished)
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
        self.cached_node = Some(msg.node);
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
        let heartbeat = self.heartbeat.clone();
        Box::pin(async move {
            let mut names = vec!["coordinator".to_string()];
            names.push(peers.inspector.send(Probe).await?);
            names.push(peers.installer.send(Probe).await?);
            names.push(peers.systemd.send(Probe).await?);
            names.push(peers.ironic.send(Probe).await?);
            heartbeat.send(ForceHeartbeat).await?;
            Ok(names)
        })
    }
}

crate::answer_probe!(Coordinator, "coordinator");

//! The Ironic client actor.

use actix::{Actor, Context, Handler, Message};

use crate::config::AgentConfig;

/// Talks to the Ironic API on behalf of the agent.
#[derive(Debug)]
pub struct IronicClient {
    config: AgentConfig,
    forced_heartbeats: u64,
}

impl IronicClient {
    /// Creates the client for the configured API URLs.
    pub fn new(config: AgentConfig) -> Self {
        Self {
            config,
            forced_heartbeats: 0,
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }
}

impl Actor for IronicClient {
    type Context = Context<Self>;
}

/// Request: send a heartbeat now (an async command just finished).
#[derive(Debug, Clone, Copy, Default)]
pub struct ForceHeartbeat;

impl Message for ForceHeartbeat {
    type Result = ();
}

impl Handler<ForceHeartbeat> for IronicClient {
    type Result = ();

    fn handle(&mut self, _msg: ForceHeartbeat, _ctx: &mut Self::Context) {
        self.forced_heartbeats += 1;
        tracing::debug!(count = self.forced_heartbeats, "forced heartbeat requested");
    }
}

crate::answer_probe!(IronicClient, "ironic-client");

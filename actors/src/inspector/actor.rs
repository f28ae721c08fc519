//! The hardware inspector actor.

use actix::{Actor, Context};

use crate::config::AgentConfig;

/// Owns inventory collection; runs its work off the API path.
#[derive(Debug)]
pub struct HardwareInspector {
    config: AgentConfig,
}

impl HardwareInspector {
    /// Creates the inspector for the given configuration.
    pub fn new(config: AgentConfig) -> Self {
        Self { config }
    }

    /// The configuration this inspector reads host paths from.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }
}

impl Actor for HardwareInspector {
    type Context = Context<Self>;
}

crate::answer_probe!(HardwareInspector, "hardware-inspector");

/// Request: the inventory of this machine (`refresh` rebuilds a cached one).
#[derive(Debug, Clone, Copy, Default)]
pub struct CollectInventory {
    /// Rebuild instead of answering from the cache.
    pub refresh: bool,
}

impl actix::Message for CollectInventory {
    type Result = Result<crate::inspector::Inventory, crate::errors::AgentError>;
}

impl actix::Handler<CollectInventory> for HardwareInspector {
    type Result = Result<crate::inspector::Inventory, crate::errors::AgentError>;

    fn handle(&mut self, _msg: CollectInventory, _ctx: &mut Self::Context) -> Self::Result {
        Err(crate::errors::AgentError::execution(
            "hardware inventory collection is not implemented yet",
        ))
    }
}

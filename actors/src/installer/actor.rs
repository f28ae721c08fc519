//! The installer runner actor.

use std::sync::Arc;

use actix::{Actor, Context};

use crate::config::AgentConfig;
use crate::host::CommandRunner;

/// Runs long host processes (installers, image writes) one at a time.
#[derive(Debug)]
pub struct InstallerRunner {
    config: AgentConfig,
    runner: Arc<dyn CommandRunner>,
}

impl InstallerRunner {
    /// Creates the runner with the host command runner to use.
    pub fn new(config: AgentConfig, runner: Arc<dyn CommandRunner>) -> Self {
        Self { config, runner }
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    /// The host command runner.
    pub fn runner(&self) -> &Arc<dyn CommandRunner> {
        &self.runner
    }
}

impl Actor for InstallerRunner {
    type Context = Context<Self>;
}

crate::answer_probe!(InstallerRunner, "installer-runner");

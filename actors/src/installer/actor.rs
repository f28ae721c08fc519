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

/// Request: run the host work of a step or command (erase, RAID, image write,
/// `install_coreos`, bootc, boot loader…). Arguments were already validated by
/// the hardware manager or command; the answer is the step's result value.
#[derive(Debug, Clone)]
pub struct RunStep {
    /// The step or command name (`erase_devices`, `write_image`, `prepare_image`…).
    pub step: String,
    /// The step family, when a step command asked (`None` for plain commands).
    pub kind: Option<crate::errors::StepKind>,
    /// Keyword arguments (step args merged over the command's extra parameters).
    pub args: serde_json::Map<String, serde_json::Value>,
    /// The node Ironic sent (may hold secrets: never log it whole).
    pub node: serde_json::Value,
    /// The ports Ironic sent.
    pub ports: serde_json::Value,
}

impl actix::Message for RunStep {
    type Result = crate::hardware::StepResult;
}

impl actix::Handler<RunStep> for InstallerRunner {
    type Result = crate::hardware::StepResult;

    fn handle(&mut self, msg: RunStep, _ctx: &mut Self::Context) -> Self::Result {
        tracing::warn!(step = %msg.step, "step requested but not implemented yet");
        Err(crate::hardware::StepError::not_implemented(&msg.step))
    }
}

//! Step work requested by the hardware managers and the standby/image commands.

use crate::hardware::{StepError, StepResult};

use super::InstallerRunner;

/// Request: run the host work of a step or command (erase, RAID, image write,
/// `install_coreos`, bootc, boot loader…). Arguments were already validated by
/// the hardware manager or command; the answer is the step's result value.
///
/// Until the issue that implements a given step lands, the answer is a clear
/// `NotImplementedError` failure (never a fake success).
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
    type Result = StepResult;
}

impl actix::Handler<RunStep> for InstallerRunner {
    type Result = StepResult;

    fn handle(&mut self, msg: RunStep, _ctx: &mut Self::Context) -> Self::Result {
        tracing::warn!(step = %msg.step, "step requested but not implemented yet");
        Err(StepError::not_implemented(&msg.step))
    }
}

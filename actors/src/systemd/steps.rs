//! Unit work requested by the hardware managers.

use crate::hardware::{StepError, StepResult};

use super::SystemdSupervisor;

/// Request: start a host unit (job mode `fail`) and wait until it is no longer
/// `activating`/`active`; `failed` is an error naming the unit's `Result`.
/// Used by the `start_assisted_install` deploy step.
///
/// Until the systemd issue lands, the answer is a clear `NotImplementedError`
/// failure (never a fake success).
#[derive(Debug, Clone)]
pub struct StartUnitAndWait {
    /// The step that asked, for messages (`start_assisted_install`).
    pub step: String,
    /// The unit name (`agent.service`).
    pub unit: String,
}

impl actix::Message for StartUnitAndWait {
    type Result = StepResult;
}

impl actix::Handler<StartUnitAndWait> for SystemdSupervisor {
    type Result = StepResult;

    fn handle(&mut self, msg: StartUnitAndWait, _ctx: &mut Self::Context) -> Self::Result {
        tracing::warn!(step = %msg.step, unit = %msg.unit, "unit start requested but not implemented yet");
        Err(StepError::not_implemented(&msg.step))
    }
}

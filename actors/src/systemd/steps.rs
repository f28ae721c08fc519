//! Unit work requested by the hardware managers.

use actix::{Handler, ResponseFuture};
use serde_json::Value;

use crate::errors::{AgentError, StepKind};
use crate::hardware::{StepError, StepResult};

use super::{RunUnitToCompletion, SystemdSupervisor};

/// Request: start a host unit (job mode `fail`) and wait until it is no longer
/// `activating`/`active`; `failed` is an error naming the unit's `Result`.
/// Used by the `start_assisted_install` deploy step.
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

impl Handler<StartUnitAndWait> for SystemdSupervisor {
    type Result = ResponseFuture<StepResult>;

    fn handle(&mut self, msg: StartUnitAndWait, ctx: &mut Self::Context) -> Self::Result {
        let step = msg.step;
        let wait = <Self as Handler<RunUnitToCompletion>>::handle(
            self,
            RunUnitToCompletion {
                unit: msg.unit,
                timeout: None,
            },
            ctx,
        );
        Box::pin(async move {
            let failure = match wait.await {
                Ok(outcome) => match outcome.failure() {
                    None => {
                        tracing::info!(%step, "unit finished successfully");
                        return Ok(serde_json::to_value(&outcome).unwrap_or(Value::Null));
                    }
                    Some(message) => message.to_string(),
                },
                Err(err) => err.to_string(),
            };
            Err(StepError::Agent(AgentError::step_failed(
                StepKind::Deploy,
                failure,
            )))
        })
    }
}

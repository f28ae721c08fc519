//! The systemd supervisor actor.

use actix::{Actor, Context};

/// Owns the connection to the host's system bus.
#[derive(Debug, Default)]
pub struct SystemdSupervisor {
    bus_address: Option<String>,
}

impl SystemdSupervisor {
    /// Creates the supervisor; `bus_address` overrides `DBUS_SYSTEM_BUS_ADDRESS`.
    pub fn new(bus_address: Option<String>) -> Self {
        Self { bus_address }
    }

    /// The configured bus address, if any.
    pub fn bus_address(&self) -> Option<&str> {
        self.bus_address.as_deref()
    }
}

impl Actor for SystemdSupervisor {
    type Context = Context<Self>;
}

crate::answer_probe!(SystemdSupervisor, "systemd-supervisor");

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
    type Result = crate::hardware::StepResult;
}

impl actix::Handler<StartUnitAndWait> for SystemdSupervisor {
    type Result = crate::hardware::StepResult;

    fn handle(&mut self, msg: StartUnitAndWait, _ctx: &mut Self::Context) -> Self::Result {
        tracing::warn!(step = %msg.step, unit = %msg.unit, "unit start requested but not implemented yet");
        Err(crate::hardware::StepError::not_implemented(&msg.step))
    }
}

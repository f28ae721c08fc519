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

//! The systemd supervisor actor: owns the one connection to the system bus.
//!
//! The connection is made lazily, on the first message, with zbus' tokio
//! integration inside the actix system (zbus' internal tasks then run on this
//! actor's arbiter; nothing blocks). When the bus goes away the connection is
//! dropped, that is logged once, and the next message reconnects.

use std::rc::Rc;
use std::time::Duration;

use actix::{Actor, Context, Handler, Message, ResponseFuture};
use zbus::Connection;

use super::client::{self, FollowOptions, DEFAULT_SERVICE_GRACE};
use super::error::SystemdError;
use super::proxy::ManagerProxy;
use super::unit::UnitOutcome;

/// Upper bound for any single D-Bus call (the D-Bus reference default).
pub const METHOD_TIMEOUT: Duration = Duration::from_secs(25);

/// Request: start a unit over D-Bus and follow it until it has run to its
/// end (`start_assisted_install` sends this for `agent.service`).
///
/// `Ok` carries the unit's end, successful or not ([`UnitOutcome::failure`]);
/// `Err` means the supervisor could not start or follow the unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunUnitToCompletion {
    /// The unit, e.g. `agent.service` (`.service` is added when no suffix).
    pub unit: String,
    /// Give up waiting after this long (the unit keeps running); `None`
    /// waits until it ends, like the original agent.
    pub timeout: Option<Duration>,
}

impl Message for RunUnitToCompletion {
    type Result = Result<UnitOutcome, SystemdError>;
}

/// Request: power the host off now (`Manager.PowerOff`, like
/// `systemctl poweroff --force`: units are not stopped one by one, file
/// systems are synced and unmounted).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PowerOff;

impl Message for PowerOff {
    type Result = Result<(), SystemdError>;
}

/// Request: reboot the host now (`Manager.Reboot`, like
/// `systemctl reboot --force`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reboot;

impl Message for Reboot {
    type Result = Result<(), SystemdError>;
}

/// Owns the connection to the host's system bus.
#[derive(Debug)]
pub struct SystemdSupervisor {
    bus: Rc<Bus>,
}

impl SystemdSupervisor {
    /// Creates the supervisor; `bus_address` overrides `DBUS_SYSTEM_BUS_ADDRESS`
    /// (and the default socket).
    pub fn new(bus_address: Option<String>) -> Self {
        Self {
            bus: Rc::new(Bus {
                address: bus_address,
                service_grace: DEFAULT_SERVICE_GRACE,
                slot: tokio::sync::Mutex::new(Slot::default()),
            }),
        }
    }

    /// How long systemd may be off the bus while a unit is followed
    /// (default [`DEFAULT_SERVICE_GRACE`]); call before `start()`.
    pub fn with_service_grace(mut self, grace: Duration) -> Self {
        if let Some(bus) = Rc::get_mut(&mut self.bus) {
            bus.service_grace = grace;
        }
        self
    }

    /// The configured bus address, if any.
    pub fn bus_address(&self) -> Option<&str> {
        self.bus.address.as_deref()
    }
}

impl Default for SystemdSupervisor {
    fn default() -> Self {
        Self::new(None)
    }
}

impl Actor for SystemdSupervisor {
    type Context = Context<Self>;
}

crate::answer_probe!(SystemdSupervisor, "systemd-supervisor");

impl Handler<RunUnitToCompletion> for SystemdSupervisor {
    type Result = ResponseFuture<Result<UnitOutcome, SystemdError>>;

    fn handle(&mut self, msg: RunUnitToCompletion, _ctx: &mut Self::Context) -> Self::Result {
        let bus = self.bus.clone();
        Box::pin(async move {
            let conn = bus.connection().await?;
            let options = FollowOptions {
                timeout: msg.timeout,
                service_grace: bus.service_grace,
            };
            let result = client::run_to_completion(&conn, &msg.unit, options).await;
            bus.check(&conn).await;
            result
        })
    }
}

impl Handler<PowerOff> for SystemdSupervisor {
    type Result = ResponseFuture<Result<(), SystemdError>>;

    fn handle(&mut self, _msg: PowerOff, _ctx: &mut Self::Context) -> Self::Result {
        let bus = self.bus.clone();
        Box::pin(async move { bus.power(Power::Off).await })
    }
}

impl Handler<Reboot> for SystemdSupervisor {
    type Result = ResponseFuture<Result<(), SystemdError>>;

    fn handle(&mut self, _msg: Reboot, _ctx: &mut Self::Context) -> Self::Result {
        let bus = self.bus.clone();
        Box::pin(async move { bus.power(Power::Reboot).await })
    }
}

/// The two host power actions.
#[derive(Debug, Clone, Copy)]
enum Power {
    Off,
    Reboot,
}

/// The connection and how to make it again.
#[derive(Debug)]
struct Bus {
    address: Option<String>,
    service_grace: Duration,
    /// Async lock: concurrent first messages make one connection.
    slot: tokio::sync::Mutex<Slot>,
}

#[derive(Debug, Default)]
struct Slot {
    conn: Option<Connection>,
    /// The previous connection was lost (so the next one is a reconnect).
    lost: bool,
}

impl Bus {
    fn describe_address(&self) -> String {
        match &self.address {
            Some(address) => address.clone(),
            None => std::env::var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|_| "the default system bus".to_string()),
        }
    }

    /// The live connection, connecting (again) when there is none.
    async fn connection(&self) -> Result<Connection, SystemdError> {
        let mut slot = self.slot.lock().await;
        if let Some(conn) = &slot.conn {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
            tracing::warn!(
                "the system D-Bus connection ({}) was lost; reconnecting",
                self.describe_address()
            );
            slot.conn = None;
            slot.lost = true;
        }
        let builder = match &self.address {
            Some(address) => zbus::connection::Builder::address(address.as_str()),
            None => zbus::connection::Builder::system(),
        };
        let conn = match builder {
            Ok(builder) => builder.method_timeout(METHOD_TIMEOUT).build().await,
            Err(e) => Err(e),
        }
        .map_err(|e| SystemdError::Connect {
            address: self.describe_address(),
            detail: e.to_string(),
        })?;
        if slot.lost {
            tracing::info!(
                "reconnected to the system D-Bus ({})",
                self.describe_address()
            );
            slot.lost = false;
        } else {
            tracing::debug!(
                "connected to the system D-Bus ({})",
                self.describe_address()
            );
        }
        slot.conn = Some(conn.clone());
        Ok(conn)
    }

    /// Forgets `conn` if it has closed, logging the loss once.
    async fn check(&self, conn: &Connection) {
        if !conn.is_closed() {
            return;
        }
        let mut slot = self.slot.lock().await;
        let current = slot
            .conn
            .as_ref()
            .is_some_and(|held| held.unique_name() == conn.unique_name());
        if current {
            tracing::warn!(
                "the system D-Bus connection ({}) was lost; the next request reconnects",
                self.describe_address()
            );
            slot.conn = None;
            slot.lost = true;
        }
    }

    async fn power(&self, action: Power) -> Result<(), SystemdError> {
        let method = match action {
            Power::Off => "PowerOff",
            Power::Reboot => "Reboot",
        };
        let conn = self.connection().await?;
        let result = async {
            let manager = ManagerProxy::new(&conn).await?;
            match action {
                Power::Off => manager.power_off().await,
                Power::Reboot => manager.reboot().await,
            }
        }
        .await
        .map_err(|e| SystemdError::call("-", method, e));
        self.check(&conn).await;
        if result.is_ok() {
            tracing::info!("asked systemd to {method}");
        }
        result
    }
}

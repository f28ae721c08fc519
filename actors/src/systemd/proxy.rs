//! zbus proxies for the parts of `org.freedesktop.systemd1` the supervisor uses.
//!
//! Only the async API is generated (zbus runs on the actix/tokio runtime).
//! Unit and service proxies are always built through [`unit_proxies`], which
//! turns property caching off: a cached `ActiveState` can still show the
//! pre-start value right after `JobRemoved`, so every property read is a
//! fresh `org.freedesktop.DBus.Properties.Get`.

// The proxy macro generates signal-argument structs and accessors without
// doc comments; the traits below are documented instead.
#![allow(missing_docs)]

use zbus::proxy::CacheProperties;
use zbus::zvariant::{ObjectPath, OwnedObjectPath};
use zbus::Connection;

/// The bus name of systemd.
pub const SYSTEMD_BUS_NAME: &str = "org.freedesktop.systemd1";
/// The manager object.
pub const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
/// The unit interface (whose `PropertiesChanged` carries `ActiveState`).
pub const UNIT_INTERFACE: &str = "org.freedesktop.systemd1.Unit";
/// systemd's error for an unknown unit.
pub const ERROR_NO_SUCH_UNIT: &str = "org.freedesktop.systemd1.NoSuchUnit";
/// systemd's error for a second `Subscribe()` from the same connection.
pub const ERROR_ALREADY_SUBSCRIBED: &str = "org.freedesktop.systemd1.AlreadySubscribed";

/// `org.freedesktop.systemd1.Manager`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
pub trait Manager {
    /// Loads a unit (a unit file that does not exist loads as `not-found`).
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// The object of an already loaded unit (`NoSuchUnit` otherwise).
    fn get_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;

    /// Enqueues a start job; returns the job object.
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;

    /// Asks systemd to emit its signals (`JobRemoved`, unit `PropertiesChanged`)
    /// for as long as this connection lives.
    fn subscribe(&self) -> zbus::Result<()>;

    /// Immediate power-off (`systemctl poweroff --force`).
    fn power_off(&self) -> zbus::Result<()>;

    /// Immediate reboot (`systemctl reboot --force`).
    fn reboot(&self) -> zbus::Result<()>;

    /// A job finished: `result` is `done`, `canceled`, `timeout`, `failed`,
    /// `dependency` or `skipped`. For `Type=simple` services the start job
    /// finishes when the process has been started, not when it exits.
    #[zbus(signal)]
    fn job_removed(
        &self,
        id: u32,
        job: OwnedObjectPath,
        unit: String,
        result: String,
    ) -> zbus::Result<()>;
}

/// `org.freedesktop.systemd1.Unit`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Unit",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
pub trait Unit {
    /// `active`, `inactive`, `failed`, `activating`, ...
    #[zbus(property)]
    fn active_state(&self) -> zbus::Result<String>;

    /// Type-specific state (`running`, `exited`, `dead`, `failed`, ...).
    #[zbus(property)]
    fn sub_state(&self) -> zbus::Result<String>;

    /// `loaded`, `not-found`, `bad-setting`, `error`, `masked`.
    #[zbus(property)]
    fn load_state(&self) -> zbus::Result<String>;

    /// Pins the unit while this connection lives (or until `Unref`), so a
    /// cleanly exited unit is not garbage-collected before its exit status
    /// is read.
    #[zbus(name = "Ref")]
    fn ref_(&self) -> zbus::Result<()>;

    /// Drops the pin taken by `Ref`.
    fn unref(&self) -> zbus::Result<()>;
}

/// `org.freedesktop.systemd1.Service`.
#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Service",
    default_service = "org.freedesktop.systemd1",
    gen_blocking = false
)]
pub trait Service {
    /// `success`, `exit-code`, `signal`, `core-dump`, `timeout`, ...
    #[zbus(property)]
    fn result(&self) -> zbus::Result<String>;

    /// The main process' `CLD_*` code (1 exited, 2 killed, 3 dumped; 0 none).
    #[zbus(property)]
    fn exec_main_code(&self) -> zbus::Result<i32>;

    /// The main process' exit status or signal number.
    #[zbus(property)]
    fn exec_main_status(&self) -> zbus::Result<i32>;

    /// When the current (or last) main process started, CLOCK_MONOTONIC µs;
    /// unchanged across a start attempt means the main process never ran.
    #[zbus(property)]
    fn exec_main_start_timestamp_monotonic(&self) -> zbus::Result<u64>;
}

/// Uncached proxies for one unit object.
pub async fn unit_proxies<'a>(
    conn: &Connection,
    path: &ObjectPath<'a>,
) -> zbus::Result<(UnitProxy<'a>, ServiceProxy<'a>)> {
    let unit = UnitProxy::builder(conn)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    let service = ServiceProxy::builder(conn)
        .path(path.clone())?
        .cache_properties(CacheProperties::No)
        .build()
        .await?;
    Ok((unit, service))
}

//! Starting a unit and following it to its end: plain async zbus code, no
//! actix types (the actor only owns the connection and calls in here).
//!
//! The sequence, and why:
//! 1. `LoadUnit` and check `LoadState` (a unit without a file loads as
//!    `not-found`, which is reported before anything is started).
//! 2. `Unit.Ref()` — otherwise a cleanly exited unit is garbage-collected at
//!    once and its `ExecMainCode`/`ExecMainStatus` read back as 0.
//! 3. `Manager.Subscribe()` — otherwise systemd need not emit the final
//!    `PropertiesChanged` at all.
//! 4. Match rules for `JobRemoved` (this unit), the unit object's
//!    `PropertiesChanged` and systemd's `NameOwnerChanged`, all registered
//!    before the start so nothing can be missed.
//! 5. `StartUnit(unit, "fail")`.
//! 6. Wait on those signals plus the connection's "closed" event and the
//!    optional deadline. No timer-driven polling: properties are read
//!    (uncached) only after a relevant signal — our `JobRemoved`, a
//!    `PropertiesChanged` carrying a different `ActiveState`, or systemd
//!    coming back after leaving the bus (daemon-reexec; it has a grace
//!    period, then we re-subscribe and re-read). For `Type=simple`, our
//!    `JobRemoved` means "started", not "finished" ([`unit::is_finished`]).
//! 7. Read `SubState`, `Result`, `ExecMainCode`, `ExecMainStatus` and judge.
//! 8. `Unit.Unref()`.

use std::pin::pin;
use std::time::Duration;

use futures_util::{FutureExt, StreamExt};
use tokio::time::Instant;
use zbus::fdo::{DBusProxy, NameOwnerChanged, PropertiesChanged, PropertiesProxy};
use zbus::zvariant::OwnedObjectPath;
use zbus::Connection;

use super::error::{describe, error_name, SystemdError};
use super::proxy::{
    unit_proxies, JobRemoved, ManagerProxy, ServiceProxy, UnitProxy, ERROR_ALREADY_SUBSCRIBED,
    ERROR_NO_SUCH_UNIT, SYSTEMD_BUS_NAME, UNIT_INTERFACE,
};
use super::unit::{
    interpret, is_finished, normalize_unit_name, ActiveState, MainExit, Progress, UnitOutcome,
    UnitSnapshot,
};

/// How long systemd may be off the bus (e.g. `systemctl daemon-reexec`)
/// before following a unit fails with [`SystemdError::ServiceLost`].
pub const DEFAULT_SERVICE_GRACE: Duration = Duration::from_secs(30);

/// Limits for [`run_to_completion`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOptions {
    /// Bounds the wait after the start (the unit is then left running);
    /// `None` waits as long as it takes, like the original agent (Ironic's
    /// deploy timeout bounds the step).
    pub timeout: Option<Duration>,
    /// How long `org.freedesktop.systemd1` may be gone from the bus while
    /// waiting; when it comes back (a re-executed systemd keeps its units,
    /// jobs, subscribers and references), the wait goes on.
    pub service_grace: Duration,
}

impl Default for FollowOptions {
    fn default() -> Self {
        Self {
            timeout: None,
            service_grace: DEFAULT_SERVICE_GRACE,
        }
    }
}

/// Starts `unit` and waits, event-driven, until it has run to its end.
pub async fn run_to_completion(
    conn: &Connection,
    unit: &str,
    options: FollowOptions,
) -> Result<UnitOutcome, SystemdError> {
    let unit = normalize_unit_name(unit);
    if !unit.ends_with(".service") {
        return Err(SystemdError::NotAService { unit });
    }
    let manager = ManagerProxy::new(conn)
        .await
        .map_err(|e| SystemdError::call(&unit, "LoadUnit", e))?;
    let path = match manager.load_unit(&unit).await {
        Ok(path) => path,
        Err(e) if error_name(&e).as_deref() == Some(ERROR_NO_SUCH_UNIT) => {
            return Err(SystemdError::NoSuchUnit {
                detail: describe(&e),
                unit,
            })
        }
        Err(e) => return Err(SystemdError::call(&unit, "LoadUnit", e)),
    };
    let (unit_proxy, service_proxy) = unit_proxies(conn, &path.as_ref())
        .await
        .map_err(|e| SystemdError::call(&unit, "LoadUnit", e))?;
    let load_state = unit_proxy
        .load_state()
        .await
        .map_err(|e| SystemdError::call(&unit, "Get(LoadState)", e))?;
    match load_state.as_str() {
        "loaded" => {}
        "not-found" => {
            return Err(SystemdError::NoSuchUnit {
                detail: "no unit file (LoadState=not-found)".to_string(),
                unit,
            })
        }
        _ => return Err(SystemdError::NotLoaded { unit, load_state }),
    }

    unit_proxy
        .ref_()
        .await
        .map_err(|e| SystemdError::call(&unit, "Ref", e))?;
    let result = start_and_follow(
        conn,
        &manager,
        &unit_proxy,
        &service_proxy,
        &path,
        &unit,
        options,
    )
    .await;
    if !conn.is_closed() {
        if let Err(e) = unit_proxy.unref().await {
            tracing::debug!(unit = %unit, "Unref failed: {}", describe(&e));
        }
    }
    result
}

async fn start_and_follow(
    conn: &Connection,
    manager: &ManagerProxy<'_>,
    unit_proxy: &UnitProxy<'_>,
    service_proxy: &ServiceProxy<'_>,
    path: &OwnedObjectPath,
    unit: &str,
    options: FollowOptions,
) -> Result<UnitOutcome, SystemdError> {
    let call = |method: &'static str| move |e| SystemdError::call(unit, method, e);
    match manager.subscribe().await {
        Ok(()) => {}
        Err(e) if error_name(&e).as_deref() == Some(ERROR_ALREADY_SUBSCRIBED) => {}
        Err(e) => return Err(call("Subscribe")(e)),
    }
    let mut jobs = manager
        .receive_job_removed_with_args(&[(2, unit)])
        .await
        .map_err(call("AddMatch(JobRemoved)"))?;
    let properties = PropertiesProxy::builder(conn)
        .destination(SYSTEMD_BUS_NAME)
        .and_then(|b| b.path(path.clone()))
        .map_err(call("AddMatch(PropertiesChanged)"))?
        .build()
        .await
        .map_err(call("AddMatch(PropertiesChanged)"))?;
    let mut changes = properties
        .receive_properties_changed()
        .await
        .map_err(call("AddMatch(PropertiesChanged)"))?;
    let bus = DBusProxy::new(conn)
        .await
        .map_err(call("AddMatch(NameOwnerChanged)"))?;
    let mut owners = bus
        .receive_name_owner_changed_with_args(&[(0, SYSTEMD_BUS_NAME)])
        .await
        .map_err(call("AddMatch(NameOwnerChanged)"))?;

    let before = ActiveState::parse(
        &unit_proxy
            .active_state()
            .await
            .map_err(call("Get(ActiveState)"))?,
    );
    let already_active = before.is_active_or_activating();
    let main_started_before = service_proxy
        .exec_main_start_timestamp_monotonic()
        .await
        .map_err(call("Get(ExecMainStartTimestampMonotonic)"))?;
    if already_active {
        tracing::error!(
            unit = %unit,
            "{unit} is already {before}; starting it anyway and following it to its end"
        );
    }

    let job = match manager.start_unit(unit, "fail").await {
        Ok(job) => job,
        Err(e) if error_name(&e).as_deref() == Some(ERROR_NO_SUCH_UNIT) => {
            return Err(SystemdError::NoSuchUnit {
                unit: unit.to_string(),
                detail: describe(&e),
            })
        }
        Err(e) => return Err(call("StartUnit")(e)),
    };
    let started = Instant::now();
    tracing::info!(unit = %unit, job = %job.as_str(), "started {unit}; waiting for it to finish");

    let mut watch = Watch {
        unit,
        job,
        progress: Progress {
            job_result: None,
            seen_up: already_active,
        },
        last_state: before,
        signals: 0,
        systemd_gone: None,
        systemd_returned: false,
    };
    let mut calls: u32 = 0;
    let timeout = options.timeout;
    let deadline = timeout.map(|t| started + t);
    let mut closed = pin!(conn.closed());
    loop {
        let event = tokio::select! {
            biased;
            () = &mut closed => Event::Closed,
            removed = jobs.next() => Event::JobRemoved(removed),
            changed = changes.next() => Event::PropertiesChanged(changed),
            owner = owners.next() => Event::OwnerChanged(owner),
            () = sleep_until(deadline) => {
                return Err(SystemdError::Timeout {
                    unit: unit.to_string(),
                    after: timeout.unwrap_or_default(),
                });
            }
            () = sleep_until(watch.systemd_gone.map(|gone| gone + options.service_grace)) => {
                return Err(SystemdError::ServiceLost { unit: unit.to_string() });
            }
        };
        let mut relevant = watch.apply(event)?;
        // Signals of one systemd state change come in bursts (JobRemoved and
        // PropertiesChanged together): take what is already queued before
        // reading, so one burst costs one read.
        loop {
            let event = if let Some(removed) = jobs.next().now_or_never() {
                Event::JobRemoved(removed)
            } else if let Some(changed) = changes.next().now_or_never() {
                Event::PropertiesChanged(changed)
            } else if let Some(owner) = owners.next().now_or_never() {
                Event::OwnerChanged(owner)
            } else {
                break;
            };
            relevant |= watch.apply(event)?;
        }
        if conn.is_closed() {
            return Err(SystemdError::BusLost {
                unit: unit.to_string(),
            });
        }
        if !relevant || watch.systemd_gone.is_some() {
            continue;
        }
        if std::mem::take(&mut watch.systemd_returned) {
            // A re-executed systemd normally keeps its subscribers; make sure.
            calls += 1;
            match manager.subscribe().await {
                Ok(()) => {}
                Err(e) if error_name(&e).as_deref() == Some(ERROR_ALREADY_SUBSCRIBED) => {}
                Err(e) => return Err(call("Subscribe")(e)),
            }
            // Signals sent while it was away are lost: if the main process
            // started meanwhile, our start has taken effect.
            calls += 1;
            let main_started = service_proxy
                .exec_main_start_timestamp_monotonic()
                .await
                .map_err(call("Get(ExecMainStartTimestampMonotonic)"))?;
            if main_started != main_started_before {
                watch.progress.seen_up = true;
            }
        }

        calls += 1;
        let state = ActiveState::parse(
            &unit_proxy
                .active_state()
                .await
                .map_err(call("Get(ActiveState)"))?,
        );
        if state.is_up() {
            watch.progress.seen_up = true;
        }
        watch.last_state = state.clone();
        let progress = &watch.progress;
        let job_failed = progress
            .job_result
            .as_deref()
            .is_some_and(|result| result != "done");
        let sub_state = if state == ActiveState::Active && progress.job_result.is_some() {
            calls += 1;
            Some(
                unit_proxy
                    .sub_state()
                    .await
                    .map_err(call("Get(SubState)"))?,
            )
        } else {
            None
        };
        if !job_failed && !is_finished(&state, sub_state.as_deref(), progress) {
            continue;
        }

        let snapshot = read_snapshot(unit_proxy, service_proxy, state, sub_state, &mut calls)
            .await
            .map_err(|(method, e)| SystemdError::call(unit, method, e))?;
        // A failed start job (e.g. `dependency`, or ExecStartPre failing) is
        // an error when our start never ran the main process; the exit
        // fields may still describe an earlier run, so compare start times.
        let main_ran = job_failed && {
            calls += 1;
            snapshot.main_exit != MainExit::NotRun
                && service_proxy
                    .exec_main_start_timestamp_monotonic()
                    .await
                    .map_err(call("Get(ExecMainStartTimestampMonotonic)"))?
                    != main_started_before
        };
        if job_failed && !main_ran {
            return Err(SystemdError::JobFailed {
                unit: unit.to_string(),
                job_result: watch.progress.job_result.unwrap_or_default(),
                unit_result: snapshot.result,
            });
        }
        let verdict = interpret(unit, &snapshot);
        let outcome = UnitOutcome {
            unit: unit.to_string(),
            verdict,
            snapshot,
            already_active,
            job_result: watch.progress.job_result,
            dbus_calls_while_waiting: calls,
            signals_while_waiting: watch.signals,
            waited: started.elapsed(),
        };
        match outcome.failure() {
            None => tracing::info!(unit = %unit, "{unit} finished successfully"),
            Some(message) => tracing::warn!(unit = %unit, "{message}"),
        }
        return Ok(outcome);
    }
}

/// Something that happened while waiting.
enum Event {
    /// The bus connection closed.
    Closed,
    /// A `JobRemoved` for this unit (`None`: the stream ended).
    JobRemoved(Option<JobRemoved>),
    /// A `PropertiesChanged` on the unit object (`None`: the stream ended).
    PropertiesChanged(Option<PropertiesChanged>),
    /// A `NameOwnerChanged` for systemd's name (`None`: the stream ended).
    OwnerChanged(Option<NameOwnerChanged>),
}

/// What the wait loop knows from signals alone.
struct Watch<'a> {
    unit: &'a str,
    job: OwnedObjectPath,
    progress: Progress,
    /// The last `ActiveState` read; a signal is relevant only if it differs.
    last_state: ActiveState,
    signals: u32,
    /// Since when `org.freedesktop.systemd1` has had no owner.
    systemd_gone: Option<Instant>,
    /// It came back; re-subscribe and re-read before anything else.
    systemd_returned: bool,
}

impl Watch<'_> {
    /// Takes in one event; `Ok(true)` when the unit's state must be re-read.
    fn apply(&mut self, event: Event) -> Result<bool, SystemdError> {
        let lost = || SystemdError::BusLost {
            unit: self.unit.to_string(),
        };
        match event {
            Event::Closed => Err(lost()),
            Event::JobRemoved(None)
            | Event::PropertiesChanged(None)
            | Event::OwnerChanged(None) => Err(lost()),
            Event::JobRemoved(Some(removed)) => {
                self.signals += 1;
                match removed.args() {
                    Ok(args) if args.job == self.job => {
                        tracing::debug!(unit = %self.unit, result = %args.result, "start job removed");
                        self.progress.job_result = Some(args.result.clone());
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            }
            Event::PropertiesChanged(Some(changed)) => {
                self.signals += 1;
                // systemd sends every emits-change property of the interface
                // on each change, so ActiveState being present means nothing;
                // a different value (or an invalidation) does.
                Ok(changed.args().is_ok_and(|args| {
                    args.interface_name.as_str() == UNIT_INTERFACE
                        && (args.invalidated_properties.contains(&"ActiveState")
                            || args
                                .changed_properties
                                .get("ActiveState")
                                .and_then(|value| <&str>::try_from(value).ok())
                                .is_some_and(|state| state != self.last_state.as_str()))
                }))
            }
            Event::OwnerChanged(Some(owner)) => {
                self.signals += 1;
                let Ok(args) = owner.args() else {
                    return Ok(false);
                };
                match args.new_owner.as_ref() {
                    None => {
                        tracing::warn!(
                            unit = %self.unit,
                            "org.freedesktop.systemd1 left the bus while waiting for {}; \
                             waiting for it to come back",
                            self.unit
                        );
                        self.systemd_gone.get_or_insert_with(Instant::now);
                        Ok(false)
                    }
                    Some(new_owner) => {
                        // After `daemon-reexec` the name may pass straight to
                        // the new connection, without a gap.
                        match self.systemd_gone.take() {
                            Some(gone) => tracing::info!(
                                unit = %self.unit,
                                "org.freedesktop.systemd1 is back ({new_owner}) after {:?}",
                                gone.elapsed()
                            ),
                            None => tracing::info!(
                                unit = %self.unit,
                                "org.freedesktop.systemd1 is back with a new owner ({new_owner}), \
                                 e.g. after daemon-reexec"
                            ),
                        }
                        self.systemd_returned = true;
                        Ok(true)
                    }
                }
            }
        }
    }
}

/// Reads the end state; `calls` counts the D-Bus calls made. The reads go out
/// together (zbus pipelines concurrent calls on one connection), so the end
/// costs one round trip to systemd rather than four.
async fn read_snapshot(
    unit_proxy: &UnitProxy<'_>,
    service_proxy: &ServiceProxy<'_>,
    active_state: ActiveState,
    sub_state: Option<String>,
    calls: &mut u32,
) -> Result<UnitSnapshot, (&'static str, zbus::Error)> {
    *calls += if sub_state.is_some() { 3 } else { 4 };
    let sub_state = async {
        match sub_state {
            Some(sub_state) => Ok(sub_state),
            None => unit_proxy
                .sub_state()
                .await
                .map_err(|e| ("Get(SubState)", e)),
        }
    };
    let result = async { service_proxy.result().await.map_err(|e| ("Get(Result)", e)) };
    let code = async {
        service_proxy
            .exec_main_code()
            .await
            .map_err(|e| ("Get(ExecMainCode)", e))
    };
    let status = async {
        service_proxy
            .exec_main_status()
            .await
            .map_err(|e| ("Get(ExecMainStatus)", e))
    };
    let (sub_state, result, code, status) =
        futures_util::future::try_join4(sub_state, result, code, status).await?;
    Ok(UnitSnapshot {
        active_state,
        sub_state,
        result,
        main_exit: MainExit::from_codes(code, status),
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

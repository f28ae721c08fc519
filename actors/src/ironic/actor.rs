//! The Ironic client actor: lookup, inspection and the heartbeat loop.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::{Duration, Instant};

use actix::{
    Actor, ActorFutureExt, AsyncContext, Context, Handler, Message, Recipient, ResponseFuture,
    SpawnHandle, WrapFuture,
};
use serde_json::Value;

use super::client::{
    ApiVersion, ClientSettings, HeartbeatRequest, IronicError, IronicHttp, LookupResult,
};
use super::timing::{self, InspectionRetry, Jitter, LookupBackoff, ThreadJitter};
use super::token::{self, TokenDecision};
use crate::api::InstallAgentToken;
use crate::config::{AgentConfig, Secret};
use crate::state::StateStore;

/// A [`Jitter`] shared between the actor and the futures it spawns.
#[derive(Clone)]
pub struct SharedJitter(Rc<RefCell<Box<dyn Jitter>>>);

impl SharedJitter {
    /// Wraps a jitter source.
    pub fn new(jitter: impl Jitter + 'static) -> Self {
        Self(Rc::new(RefCell::new(Box::new(jitter))))
    }
}

impl std::fmt::Debug for SharedJitter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedJitter")
    }
}

impl Jitter for SharedJitter {
    fn uniform(&mut self, low: f64, high: f64) -> f64 {
        self.0.borrow_mut().uniform(low, high)
    }
}

/// The shortest wait after an accepted heartbeat, whatever `heartbeat_timeout` says.
const MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Counters of the heartbeat loop, for status and tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, actix::MessageResponse)]
pub struct HeartbeatStats {
    /// Heartbeats sent.
    pub sent: u64,
    /// Heartbeats Ironic accepted (202).
    pub accepted: u64,
    /// Heartbeats that failed (any other status, or no answer).
    pub failed: u64,
    /// The last failure, as text.
    pub last_error: Option<String>,
    /// Forced heartbeats requested.
    pub forced: u64,
    /// New agent tokens looked up after Ironic rejected the held one.
    pub tokens_renewed: u64,
    /// Whether the loop runs.
    pub running: bool,
}

#[derive(Debug)]
struct Heartbeater {
    request: HeartbeatRequest,
    heartbeat_timeout: f64,
    timer: Option<SpawnHandle>,
    in_flight: bool,
    force_pending: bool,
    last_error_at: Option<Instant>,
    last_outcome: Option<String>,
    generation: u64,
    renewal: Option<TokenRenewal>,
    last_renewal_failure: Option<String>,
}

/// How the heartbeat loop gets a new agent token once Ironic rejects the held one
/// (the conductor wipes it, e.g. when it powers the node off after a deploy or fails
/// a cleaning, while this process keeps running).
///
/// IPA 13 only retries the heartbeat (5-10 s apart) and relies on the reboot that
/// follows such a wipe. When this process survives, the loop looks the node up
/// again instead: Ironic 39 hands out a fresh token when it holds none, and answers
/// 404 in states where lookup is not allowed (then the loop keeps retrying).
#[derive(Debug, Clone)]
pub struct TokenRenewal {
    /// The MACs of the lookup (the node UUID is the heartbeat's).
    pub macs: Vec<String>,
    /// The API server, which must check Ironic's calls against the new token.
    pub install: Recipient<InstallAgentToken>,
}

/// Talks to the Ironic API on behalf of the agent.
#[derive(Debug)]
pub struct IronicClient {
    config: AgentConfig,
    http: Result<IronicHttp, IronicError>,
    lookup_backoff: LookupBackoff,
    inspection_retry: InspectionRetry,
    error_base: Duration,
    jitter: SharedJitter,
    heartbeat: Option<Heartbeater>,
    generation: u64,
    stats: HeartbeatStats,
}

impl IronicClient {
    /// Creates the client for the configured API URLs with IPA's timings. Must be
    /// called inside an actix system (the HTTP client is bound to it).
    pub fn new(config: AgentConfig) -> Self {
        let http = IronicHttp::new(ClientSettings::from_config(&config));
        if let Err(err) = &http {
            tracing::error!(error = %err, "the Ironic client cannot be set up");
        }
        Self {
            lookup_backoff: LookupBackoff::ipa(config.lookup_interval),
            inspection_retry: InspectionRetry::default(),
            error_base: Duration::from_secs_f64(timing::HEARTBEAT_ERROR_FLOOR),
            jitter: SharedJitter::new(ThreadJitter),
            heartbeat: None,
            generation: 0,
            stats: HeartbeatStats::default(),
            http,
            config,
        }
    }

    /// Replaces the lookup back-off (tests shrink it).
    pub fn with_lookup_backoff(mut self, policy: LookupBackoff) -> Self {
        self.lookup_backoff = policy;
        self
    }

    /// Replaces the inspection retry policy (tests shrink it).
    pub fn with_inspection_retry(mut self, policy: InspectionRetry) -> Self {
        self.inspection_retry = policy;
        self
    }

    /// Replaces the 5 s base of the error interval `base × U(1, 2)`, which is also the
    /// floor between a failed heartbeat and a forced one (tests shrink it).
    pub fn with_error_base(mut self, base: Duration) -> Self {
        self.error_base = base;
        self
    }

    /// Replaces the random source.
    pub fn with_jitter(mut self, jitter: impl Jitter + 'static) -> Self {
        self.jitter = SharedJitter::new(jitter);
        self
    }

    /// The configuration in use.
    pub fn config(&self) -> &AgentConfig {
        &self.config
    }

    fn http(&self) -> Result<IronicHttp, IronicError> {
        self.http.clone()
    }

    /// `error_base × U(1, 2)`: IPA's `5 × U(1, 2)` with the default base.
    fn error_interval(&mut self) -> Duration {
        self.error_base.mul_f64(self.jitter.uniform(1.0, 2.0))
    }

    fn schedule(&mut self, delay: Duration, ctx: &mut Context<Self>) {
        let Some(beater) = self.heartbeat.as_mut() else {
            return;
        };
        if let Some(timer) = beater.timer.take() {
            ctx.cancel_future(timer);
        }
        let generation = beater.generation;
        beater.timer = Some(ctx.run_later(delay, move |act, ctx| {
            if let Some(beater) = act.heartbeat.as_mut() {
                if beater.generation == generation {
                    beater.timer = None;
                    act.beat(ctx);
                }
            }
        }));
    }

    fn beat(&mut self, ctx: &mut Context<Self>) {
        let http = self.http();
        let Some(beater) = self.heartbeat.as_mut() else {
            return;
        };
        if beater.in_flight {
            beater.force_pending = true;
            return;
        }
        beater.in_flight = true;
        self.stats.sent += 1;
        let request = beater.request.clone();
        let generation = beater.generation;
        ctx.spawn(
            async move {
                match http {
                    Ok(http) => http.heartbeat(&request).await,
                    Err(err) => Err(err),
                }
            }
            .into_actor(self)
            .map(move |result, act, ctx| act.beat_done(generation, result, ctx)),
        );
    }

    fn beat_done(
        &mut self,
        generation: u64,
        result: Result<(), IronicError>,
        ctx: &mut Context<Self>,
    ) {
        let mut delay = match &result {
            Ok(()) => {
                let timeout = self.heartbeat.as_ref().map_or(0.0, |b| b.heartbeat_timeout);
                // Guard against a zero or tiny heartbeat_timeout spinning the loop.
                timing::heartbeat_interval(timeout, &mut self.jitter).max(MIN_INTERVAL)
            }
            Err(_) => self.error_interval(),
        };
        let error_base = self.error_base;
        let Some(beater) = settle_in_flight(&mut self.heartbeat, generation) else {
            return;
        };
        let outcome = match &result {
            Ok(()) => "accepted".to_string(),
            Err(err) => err.kind(),
        };
        let changed = beater.last_outcome.as_deref() != Some(outcome.as_str());
        match &result {
            Ok(()) => {
                self.stats.accepted += 1;
                beater.last_error_at = None;
                if changed {
                    tracing::info!(node = %beater.request.node_uuid, "heartbeat accepted");
                } else {
                    tracing::debug!("heartbeat accepted");
                }
            }
            Err(err) => {
                self.stats.failed += 1;
                self.stats.last_error = Some(err.to_string());
                beater.last_error_at = Some(Instant::now());
                if changed {
                    tracing::warn!(error = %err, "heartbeat failed; retrying every 5-10 s");
                } else {
                    tracing::debug!(error = %err, "heartbeat failed again");
                }
            }
        }
        beater.last_outcome = Some(outcome);
        if beater.force_pending {
            beater.force_pending = false;
            delay = if result.is_ok() {
                Duration::ZERO
            } else {
                error_base
            };
        }
        if result.as_ref().is_err_and(IronicError::is_token_rejection) && beater.renewal.is_some() {
            self.renew_token(delay, ctx);
            return;
        }
        tracing::debug!(?delay, "next heartbeat");
        self.schedule(delay, ctx);
    }

    /// Looks the node up once for a new token (see [`TokenRenewal`]); the heartbeat
    /// goes out again at once with a new token, else after `retry_delay`.
    fn renew_token(&mut self, retry_delay: Duration, ctx: &mut Context<Self>) {
        let http = self.http();
        let Some(beater) = self.heartbeat.as_mut() else {
            return;
        };
        let Some(renewal) = beater.renewal.clone() else {
            return;
        };
        beater.in_flight = true;
        let generation = beater.generation;
        let node_uuid = beater.request.node_uuid.clone();
        tracing::debug!("Ironic rejected the agent token; looking the node up again");
        ctx.spawn(
            async move {
                match http {
                    Ok(http) => http.lookup_once(&renewal.macs, Some(&node_uuid)).await,
                    Err(err) => Err(err),
                }
            }
            .into_actor(self)
            .map(move |result, act, ctx| act.renewal_done(generation, result, retry_delay, ctx)),
        );
    }

    fn renewal_done(
        &mut self,
        generation: u64,
        result: Result<LookupResult, IronicError>,
        retry_delay: Duration,
        ctx: &mut Context<Self>,
    ) {
        let error_base = self.error_base;
        let Some(beater) = settle_in_flight(&mut self.heartbeat, generation) else {
            return;
        };
        let failure = match &result {
            Ok(found) => {
                let received = found.config.agent_token.as_ref().map(Secret::expose);
                match token::decide(received, beater.request.agent_token.as_ref()) {
                    TokenDecision::Use(new_token) => {
                        if let Some(renewal) = &beater.renewal {
                            renewal
                                .install
                                .do_send(InstallAgentToken(new_token.clone()));
                        }
                        beater.request.agent_token = Some(new_token.clone());
                        beater.last_renewal_failure = None;
                        beater.force_pending = false;
                        self.stats.tokens_renewed += 1;
                        tracing::info!(
                            node = %found.node_uuid,
                            "Ironic had dropped the agent token; a new one was looked up"
                        );
                        remember_token(&self.config, &found.node_uuid, &new_token);
                        self.schedule(Duration::ZERO, ctx);
                        return;
                    }
                    TokenDecision::KeepHeld(_) | TokenDecision::Lockdown => {
                        "Ironic holds another agent token (handed out already)".to_string()
                    }
                    TokenDecision::Ignored(_) => "the lookup carried no usable token".to_string(),
                }
            }
            Err(err) => format!("lookup failed: {err}"),
        };
        if beater.last_renewal_failure.as_deref() != Some(failure.as_str()) {
            tracing::warn!(
                reason = %failure,
                "Ironic rejects the agent token and gave no new one; retrying"
            );
            beater.last_renewal_failure = Some(failure);
        } else {
            tracing::debug!(reason = %failure, "no new agent token yet");
        }
        let delay = if std::mem::take(&mut beater.force_pending) {
            error_base
        } else {
            retry_delay
        };
        self.schedule(delay, ctx);
    }
}

/// Saves a renewed token in the session of this boot, so that a restarted process
/// (`state::StateStore`) holds the token Ironic will not hand out again.
fn remember_token(config: &AgentConfig, node_uuid: &str, token: &Secret) {
    let store = StateStore::new(&config.paths.state_dir, &config.paths.proc_root);
    let Some(mut session) = store
        .load_session()
        .filter(|session| session.node_uuid == node_uuid)
    else {
        return;
    };
    session.agent_token = Some(token.expose().to_string());
    if let Err(err) = store.save_session(&session) {
        tracing::warn!(error = %err, "cannot save the renewed token: a restart will not recover");
    }
}

impl Actor for IronicClient {
    type Context = Context<Self>;
}

/// Request: send a heartbeat now (an async command just finished).
///
/// Unlike IPA, which waits until 5 s after the previous heartbeat, this is sent at
/// once; only after a failed heartbeat is the 5 s floor kept.
#[derive(Debug, Clone, Copy, Default)]
pub struct ForceHeartbeat;

impl Message for ForceHeartbeat {
    type Result = ();
}

impl Handler<ForceHeartbeat> for IronicClient {
    type Result = ();

    fn handle(&mut self, _msg: ForceHeartbeat, ctx: &mut Self::Context) {
        self.stats.forced += 1;
        let floor = self.error_base;
        let Some(beater) = self.heartbeat.as_mut() else {
            tracing::debug!("forced heartbeat requested while not heartbeating");
            return;
        };
        if beater.in_flight {
            beater.force_pending = true;
            return;
        }
        let delay = beater
            .last_error_at
            .map_or(Duration::ZERO, |at| floor.saturating_sub(at.elapsed()));
        tracing::debug!(?delay, "forced heartbeat");
        self.schedule(delay, ctx);
    }
}

/// Request: look the node up, retrying per IPA until `lookup_timeout` runs out.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The MACs of the inventory's interfaces.
    pub macs: Vec<String>,
    /// The node UUID returned by inspection, if any.
    pub node_uuid: Option<String>,
}

impl Message for Lookup {
    type Result = Result<LookupResult, IronicError>;
}

impl Handler<Lookup> for IronicClient {
    type Result = ResponseFuture<Result<LookupResult, IronicError>>;

    fn handle(&mut self, msg: Lookup, _ctx: &mut Self::Context) -> Self::Result {
        let http = self.http();
        let policy = self.lookup_backoff.clone();
        let mut jitter = self.jitter.clone();
        let timeout = Duration::from_secs(self.config.lookup_timeout);
        Box::pin(async move {
            let http = http?;
            tracing::info!(macs = ?msg.macs, node = ?msg.node_uuid, "looking the node up");
            http.lookup(
                &msg.macs,
                msg.node_uuid.as_deref(),
                timeout,
                &policy,
                &mut jitter,
            )
            .await
        })
    }
}

/// Request: post inspection data to these callback URLs (tried in order); answers the
/// node UUID Ironic returned.
#[derive(Debug, Clone)]
pub struct Inspect {
    /// The callback URLs (`inspection_callback_url`, comma separated there).
    pub urls: Vec<String>,
    /// The collected data (`inventory`, collector keys, `error`).
    pub data: Value,
}

impl Message for Inspect {
    type Result = Result<Option<String>, IronicError>;
}

impl Handler<Inspect> for IronicClient {
    type Result = ResponseFuture<Result<Option<String>, IronicError>>;

    fn handle(&mut self, msg: Inspect, _ctx: &mut Self::Context) -> Self::Result {
        let http = self.http();
        let policy = self.inspection_retry.clone();
        Box::pin(async move { http?.post_inspection(&msg.urls, &msg.data, &policy).await })
    }
}

/// Request: the Ironic API version (detected once; 1.31 when detection fails).
#[derive(Debug, Clone, Copy, Default)]
pub struct GetApiVersion;

impl Message for GetApiVersion {
    type Result = ApiVersion;
}

impl Handler<GetApiVersion> for IronicClient {
    type Result = ResponseFuture<ApiVersion>;

    fn handle(&mut self, _msg: GetApiVersion, _ctx: &mut Self::Context) -> Self::Result {
        let http = self.http();
        Box::pin(async move {
            match http {
                Ok(http) => http.api_version().await,
                Err(_) => ApiVersion::FALLBACK,
            }
        })
    }
}

/// Request: start the heartbeat loop; the first heartbeat goes out at once.
#[derive(Debug, Clone)]
pub struct StartHeartbeating {
    /// The node from the lookup.
    pub node_uuid: String,
    /// The token held after the lookup.
    pub agent_token: Option<Secret>,
    /// `config.heartbeat_timeout` from the lookup, in seconds.
    pub heartbeat_timeout: f64,
    /// `<proto>://<host>:<port>`; never changes for the life of the node.
    pub callback_url: String,
    /// The auto-TLS certificate PEM, sent as `agent_verify_ca`.
    pub verify_ca: Option<String>,
    /// Look up a new token when Ironic rejects this one; `None`: only retry.
    pub renewal: Option<TokenRenewal>,
}

impl Message for StartHeartbeating {
    type Result = ();
}

impl Handler<StartHeartbeating> for IronicClient {
    type Result = ();

    fn handle(&mut self, msg: StartHeartbeating, ctx: &mut Self::Context) {
        if let Some(old) = self.heartbeat.take() {
            if let Some(timer) = old.timer {
                ctx.cancel_future(timer);
            }
        }
        self.generation += 1;
        tracing::info!(
            node = %msg.node_uuid,
            callback_url = %msg.callback_url,
            heartbeat_timeout = msg.heartbeat_timeout,
            "heartbeating"
        );
        self.heartbeat = Some(Heartbeater {
            request: HeartbeatRequest {
                node_uuid: msg.node_uuid,
                callback_url: msg.callback_url,
                agent_token: msg.agent_token,
                verify_ca: msg.verify_ca,
            },
            heartbeat_timeout: msg.heartbeat_timeout,
            timer: None,
            in_flight: false,
            force_pending: false,
            last_error_at: None,
            last_outcome: None,
            generation: self.generation,
            renewal: msg.renewal,
            last_renewal_failure: None,
        });
        self.stats.running = true;
        self.beat(ctx);
    }
}

/// Request: stop the heartbeat loop (lockdown, rescue, shutdown).
#[derive(Debug, Clone, Copy, Default)]
pub struct StopHeartbeating;

impl Message for StopHeartbeating {
    type Result = ();
}

impl Handler<StopHeartbeating> for IronicClient {
    type Result = ();

    fn handle(&mut self, _msg: StopHeartbeating, ctx: &mut Self::Context) {
        if let Some(old) = self.heartbeat.take() {
            if let Some(timer) = old.timer {
                ctx.cancel_future(timer);
            }
            tracing::info!("heartbeating stopped");
        }
        self.stats.running = false;
    }
}

/// Request: the heartbeat counters.
#[derive(Debug, Clone, Copy, Default)]
pub struct GetHeartbeatStats;

impl Message for GetHeartbeatStats {
    type Result = HeartbeatStats;
}

impl Handler<GetHeartbeatStats> for IronicClient {
    type Result = HeartbeatStats;

    fn handle(&mut self, _msg: GetHeartbeatStats, _ctx: &mut Self::Context) -> HeartbeatStats {
        self.stats.clone()
    }
}

crate::answer_probe!(IronicClient, "ironic-client");

/// The heartbeat loop whose request of `generation` just ended, marked idle; `None`
/// when heartbeating stopped or restarted meanwhile (a stale answer).
fn settle_in_flight(
    heartbeat: &mut Option<Heartbeater>,
    generation: u64,
) -> Option<&mut Heartbeater> {
    let beater = heartbeat.as_mut().filter(|b| b.generation == generation)?;
    beater.in_flight = false;
    Some(beater)
}

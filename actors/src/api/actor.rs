//! The API actor: owns the HTTP server and forwards requests to the coordinator.

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use actix::{
    Actor, ActorFutureExt, Addr, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpResponse, HttpServer};
use serde_json::json;

use crate::config::Secret;
use crate::coordinator::Coordinator;

/// Where and how the API listens.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Host to bind (`::`, `0.0.0.0`, `127.0.0.1`, …).
    pub listen_host: String,
    /// Port to bind; 0 picks a free one.
    pub listen_port: u16,
}

/// The agent token the command routes check; set by config or by lookup.
pub type TokenStore = std::sync::Arc<std::sync::RwLock<Option<Secret>>>;

/// Shared state of the request handlers.
#[derive(Debug, Clone)]
struct AppState {
    started_at: f64,
    coordinator: Addr<Coordinator>,
    token: TokenStore,
}

/// Owns the actix-web server; stopping the actor's server stops the API.
#[derive(Debug)]
pub struct ApiServer {
    settings: ApiSettings,
    coordinator: Addr<Coordinator>,
    handle: Option<ServerHandle>,
    started_at: f64,
    token: TokenStore,
}

impl ApiServer {
    /// Creates the API actor; nothing listens until [`StartServing`].
    pub fn new(
        settings: ApiSettings,
        coordinator: Addr<Coordinator>,
        token: Option<Secret>,
    ) -> Self {
        let started_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|elapsed| elapsed.as_secs_f64())
            .unwrap_or_default();
        Self {
            settings,
            coordinator,
            handle: None,
            started_at,
            token: std::sync::Arc::new(std::sync::RwLock::new(token)),
        }
    }
}

impl Actor for ApiServer {
    type Context = Context<Self>;
}

/// PEM files of the server certificate and key (static or auto-TLS).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM.
    pub cert: std::path::PathBuf,
    /// Private key, PEM.
    pub key: std::path::PathBuf,
}

/// Request: bind the listening socket and start serving (over TLS when given).
#[derive(Debug, Clone, Default)]
pub struct StartServing {
    /// Serve HTTPS with these files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
}

impl Message for StartServing {
    /// The bound addresses, or why binding failed.
    type Result = Result<Vec<SocketAddr>, String>;
}

impl Handler<StartServing> for ApiServer {
    type Result = Result<Vec<SocketAddr>, String>;

    fn handle(&mut self, _msg: StartServing, _ctx: &mut Self::Context) -> Self::Result {
        if self.handle.is_some() {
            return Err("the API is already serving".to_string());
        }
        let state = AppState {
            started_at: self.started_at,
            coordinator: self.coordinator.clone(),
            token: self.token.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .route("/v1/status", web::get().to(status))
                .route("/v1/commands/", web::get().to(list_commands))
        })
        .workers(2)
        .disable_signals()
        .bind((
            self.settings.listen_host.as_str(),
            self.settings.listen_port,
        ))
        .map_err(|err| {
            format!(
                "cannot listen on {}:{}: {err}",
                self.settings.listen_host, self.settings.listen_port
            )
        })?;
        let addrs = server.addrs();
        let server = server.run();
        self.handle = Some(server.handle());
        actix::spawn(async move {
            if let Err(err) = server.await {
                tracing::error!(error = %err, "API server stopped with an error");
            }
        });
        tracing::info!(?addrs, "API serving");
        Ok(addrs)
    }
}

/// Request: stop serving the API (after rescue, lockdown or on shutdown).
#[derive(Debug, Clone, Copy)]
pub struct StopServing {
    /// Let in-flight requests finish first.
    pub graceful: bool,
}

impl Message for StopServing {
    type Result = ();
}

impl Handler<StopServing> for ApiServer {
    type Result = ResponseActFuture<Self, ()>;

    fn handle(&mut self, msg: StopServing, _ctx: &mut Self::Context) -> Self::Result {
        let handle = self.handle.take();
        Box::pin(
            async move {
                if let Some(handle) = handle {
                    handle.stop(msg.graceful).await;
                }
            }
            .into_actor(self)
            .map(|_, _, _| tracing::info!("API stopped")),
        )
    }
}

/// Request: hold this agent token from now on (lookup handed it out).
#[derive(Debug, Clone)]
pub struct InstallAgentToken(pub Secret);

impl Message for InstallAgentToken {
    type Result = ();
}

impl Handler<InstallAgentToken> for ApiServer {
    type Result = ();

    fn handle(&mut self, msg: InstallAgentToken, _ctx: &mut Self::Context) {
        match self.token.write() {
            Ok(mut slot) => *slot = Some(msg.0),
            Err(poisoned) => *poisoned.into_inner() = Some(msg.0),
        }
        tracing::info!("agent token installed");
    }
}

crate::answer_probe!(ApiServer, "api");

async fn status(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "started_at": state.started_at,
        "version": crate::AGENT_VERSION,
    }))
}

/// Whether the query's `agent_token` equals the held token (constant time).
fn token_matches(
    state: &AppState,
    query: &web::Query<std::collections::HashMap<String, String>>,
) -> bool {
    use subtle::ConstantTimeEq;
    let Some(given) = query.get("agent_token").filter(|token| !token.is_empty()) else {
        return false;
    };
    let held = match state.token.read() {
        Ok(slot) => slot.clone(),
        Err(poisoned) => poisoned.into_inner().clone(),
    };
    held.filter(|token| !token.is_empty())
        .is_some_and(|token| bool::from(token.expose().as_bytes().ct_eq(given.as_bytes())))
}

async fn list_commands(
    state: web::Data<AppState>,
    query: web::Query<std::collections::HashMap<String, String>>,
) -> HttpResponse {
    if !token_matches(&state, &query) {
        return HttpResponse::Unauthorized().json(json!({
            "faultcode": "Client",
            "faultstring": "401 Unauthorized: Token invalid.",
        }));
    }
    match state
        .coordinator
        .send(crate::coordinator::ListCommands)
        .await
    {
        Ok(commands) => HttpResponse::Ok().json(json!({ "commands": commands })),
        Err(err) => HttpResponse::InternalServerError().json(json!({
            "faultcode": "Server",
            "faultstring": format!("coordinator unavailable: {err}"),
        })),
    }
}

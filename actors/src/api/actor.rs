//! The API actor: owns the HTTP server and forwards requests to the coordinator.

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use actix::{
    Actor, ActorFutureExt, Addr, Context, Handler, Message, ResponseActFuture, WrapFuture,
};
use actix_web::dev::ServerHandle;
use actix_web::http::KeepAlive;
use actix_web::{web, App, HttpServer};

use super::handlers::{dispatch, AppState};
pub use super::token::TokenStore;
use super::token::{install_token, new_store};
use crate::config::{AgentConfig, Secret, TlsVersion};
use crate::coordinator::Coordinator;

/// Longest time a client may take to send its request head.
pub const CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest time a connection lingers after the server decided to close it.
pub const CLIENT_DISCONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Longest idle time of a kept-alive connection.
pub const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest time a client may take to finish the TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Most connections each worker serves at once.
pub const MAX_CONNECTIONS_PER_WORKER: usize = 1024;

/// Where and how the API listens.
#[derive(Debug, Clone)]
pub struct ApiSettings {
    /// Host to bind (`::`, `0.0.0.0`, `127.0.0.1`, …).
    pub listen_host: String,
    /// Port to bind; 0 picks a free one.
    pub listen_port: u16,
    /// Largest accepted request body, in bytes (`max_request_body_bytes`).
    pub max_request_body_bytes: u64,
    /// Lowest TLS version served (`tls_min_version`).
    pub tls_min_version: TlsVersion,
    /// TLS 1.2 cipher list (`tls_cipher_suites`); `None` is IPA's list.
    pub tls_cipher_suites: Option<String>,
}

impl Default for ApiSettings {
    fn default() -> Self {
        ApiSettings::from_config(&AgentConfig::default())
    }
}

impl ApiSettings {
    /// The API's part of the agent configuration.
    pub fn from_config(config: &AgentConfig) -> Self {
        ApiSettings {
            listen_host: config.listen_host.clone(),
            listen_port: config.listen_port,
            max_request_body_bytes: config.max_request_body_bytes,
            tls_min_version: config.tls_min_version,
            tls_cipher_suites: config.tls_cipher_suites.clone(),
        }
    }
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
            token: new_store(token),
        }
    }

    /// The token store the command routes check.
    pub fn token_store(&self) -> TokenStore {
        self.token.clone()
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

/// A listening socket on `addr`; an unspecified IPv6 address also accepts IPv4 where
/// the OS allows it.
fn listen_on(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() && addr.ip().is_unspecified() {
        if let Err(err) = socket.set_only_v6(false) {
            tracing::warn!(error = %err, "cannot accept IPv4 on the IPv6 socket");
        }
    }
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// Binds `host:port` (a name, an address, or a bracketed IPv6 address). When the
/// default `::` cannot be bound (IPv6 disabled), falls back to `0.0.0.0` as IPA does.
pub fn bind_listener(host: &str, port: u16) -> Result<TcpListener, String> {
    let bare = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    let addrs: Vec<SocketAddr> = (bare, port)
        .to_socket_addrs()
        .map_err(|err| format!("cannot listen on {host}:{port}: cannot resolve {host:?}: {err}"))?
        .collect();
    let mut last_error = None;
    for addr in &addrs {
        match listen_on(*addr) {
            Ok(listener) => return Ok(listener),
            Err(err) => last_error = Some(format!("cannot listen on {addr}: {err}")),
        }
    }
    if bare == "::" {
        let fallback = SocketAddr::from(([0, 0, 0, 0], port));
        if let Ok(listener) = listen_on(fallback) {
            tracing::warn!(
                error = last_error.as_deref().unwrap_or("no address"),
                "IPv6 unavailable: listening on 0.0.0.0"
            );
            return Ok(listener);
        }
    }
    Err(last_error.unwrap_or_else(|| format!("cannot listen on {host}:{port}: no address")))
}

impl Handler<StartServing> for ApiServer {
    type Result = Result<Vec<SocketAddr>, String>;

    fn handle(&mut self, msg: StartServing, _ctx: &mut Self::Context) -> Self::Result {
        if self.handle.is_some() {
            return Err("the API is already serving".to_string());
        }
        let tls = msg
            .tls
            .as_ref()
            .map(|files| {
                super::tls::server_config(
                    files,
                    self.settings.tls_min_version,
                    self.settings.tls_cipher_suites.as_deref(),
                )
            })
            .transpose()?;
        let state = AppState {
            started_at: self.started_at,
            coordinator: self.coordinator.clone(),
            token: self.token.clone(),
            scheme: if tls.is_some() { "https" } else { "http" },
            max_body: usize::try_from(self.settings.max_request_body_bytes).unwrap_or(usize::MAX),
        };
        let listener = bind_listener(&self.settings.listen_host, self.settings.listen_port)?;
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(dispatch))
        })
        .workers(2)
        .disable_signals()
        .client_request_timeout(CLIENT_REQUEST_TIMEOUT)
        .client_disconnect_timeout(CLIENT_DISCONNECT_TIMEOUT)
        .keep_alive(KeepAlive::Timeout(KEEP_ALIVE_TIMEOUT))
        .tls_handshake_timeout(TLS_HANDSHAKE_TIMEOUT)
        .max_connections(MAX_CONNECTIONS_PER_WORKER);
        let server = match tls {
            Some(config) => server.listen_rustls_0_23(listener, config),
            None => server.listen(listener),
        }
        .map_err(|err| format!("cannot serve the API: {err}"))?;
        let addrs = server.addrs();
        let server = server.run();
        self.handle = Some(server.handle());
        actix::spawn(async move {
            if let Err(err) = server.await {
                tracing::error!(error = %err, "API server stopped with an error");
            }
        });
        // tests/support/agent.rs waits for this message: keep its wording.
        tracing::info!(?addrs, tls = msg.tls.is_some(), "API serving");
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
        install_token(&self.token, msg.0);
        tracing::info!("agent token installed");
    }
}

/// Request: the TLS options of lookup's `config` (`tls_min_version`,
/// `tls_cipher_suites`), applied before the API starts serving, as IPA does. `None`
/// keeps the configured value; an unknown version is logged and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyTlsSettings {
    /// `tls_min_version` (`1.2` or `1.3`).
    pub tls_min_version: Option<String>,
    /// `tls_cipher_suites` (a TLS 1.2 cipher string).
    pub tls_cipher_suites: Option<String>,
}

impl ApplyTlsSettings {
    /// Applies the options to `settings`.
    pub fn apply_to(&self, settings: &mut ApiSettings) {
        if let Some(version) = &self.tls_min_version {
            match version.parse::<TlsVersion>() {
                Ok(version) => settings.tls_min_version = version,
                Err(err) => tracing::warn!("lookup's tls_min_version ignored: {err}"),
            }
        }
        if let Some(suites) = &self.tls_cipher_suites {
            settings.tls_cipher_suites = Some(suites.clone());
        }
    }
}

impl Message for ApplyTlsSettings {
    /// The settings the next [`StartServing`] uses.
    type Result = ApiSettings;
}

impl Handler<ApplyTlsSettings> for ApiServer {
    type Result = actix::MessageResult<ApplyTlsSettings>;

    fn handle(&mut self, msg: ApplyTlsSettings, _ctx: &mut Self::Context) -> Self::Result {
        if self.handle.is_some() {
            tracing::warn!("TLS settings from lookup arrive after the API started serving");
        }
        msg.apply_to(&mut self.settings);
        actix::MessageResult(self.settings.clone())
    }
}

crate::answer_probe!(ApiServer, "api");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binds_loopback_and_reports_busy_ports_clearly() {
        let listener = bind_listener("127.0.0.1", 0).expect("a free port");
        let port = listener.local_addr().expect("address").port();
        let err = bind_listener("127.0.0.1", port).expect_err("port in use");
        assert!(
            err.contains(&format!("cannot listen on 127.0.0.1:{port}")),
            "{err}"
        );
    }

    #[test]
    fn bracketed_ipv6_and_the_wildcard_bind() {
        if std::net::TcpListener::bind("[::1]:0").is_ok() {
            let listener = bind_listener("[::1]", 0).expect("IPv6 loopback");
            assert!(listener.local_addr().expect("address").is_ipv6());
        }
        // `::` binds (dual stack, or 0.0.0.0 when IPv6 is off) and takes IPv4 clients.
        let listener = bind_listener("::", 0).expect("wildcard");
        let port = listener.local_addr().expect("address").port();
        std::net::TcpStream::connect(("127.0.0.1", port)).expect("IPv4 client accepted");
    }

    #[test]
    fn settings_come_from_the_config() {
        let config = AgentConfig {
            listen_port: 9998,
            max_request_body_bytes: 42,
            tls_min_version: TlsVersion::V1_3,
            ..AgentConfig::default()
        };
        let settings = ApiSettings::from_config(&config);
        assert_eq!(settings.listen_port, 9998);
        assert_eq!(settings.max_request_body_bytes, 42);
        assert_eq!(settings.tls_min_version, TlsVersion::V1_3);
        assert_eq!(
            ApiSettings::default().max_request_body_bytes,
            AgentConfig::DEFAULT_MAX_REQUEST_BODY_BYTES
        );
    }
}

//! The request handler: one service that routes like IPA's werkzeug map, checks the
//! token, reads the body within its limit and forwards typed messages to the coordinator.

use std::time::{Duration, Instant};

use actix::Addr;
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{ConnectionType, Method, StatusCode};
use actix_web::web::{self, Bytes, BytesMut};
use actix_web::{HttpRequest, HttpResponse};
use futures_util::StreamExt;
use serde_json::json;
use tracing::Instrument;

use super::faults::Fault;
use super::routes::{self, Endpoint, RouteMatch};
use super::token::{held_token, token_valid, TokenStore};
use crate::coordinator::{Coordinator, GetCommand, ListCommands, RunCommand};

/// Longest pause allowed between two pieces of a request body (cheroot, IPA's server,
/// drops a client whose socket stays silent for 10 s).
pub const BODY_IDLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Shared state of the request handler.
#[derive(Debug, Clone)]
pub(super) struct AppState {
    /// When the agent started, epoch seconds.
    pub started_at: f64,
    /// Where commands go.
    pub coordinator: Addr<Coordinator>,
    /// The agent token.
    pub token: TokenStore,
    /// `http` or `https`, for the documents and redirects.
    pub scheme: &'static str,
    /// Largest accepted request body.
    pub max_body: usize,
}

/// The one service of the app: every request comes here. Each request gets a span with
/// its method and path; never the query string, which holds the token.
///
/// Reads (`GET`/`HEAD`: status and command polling, several per second while a
/// conductor waits on a step) get a DEBUG span and, when they succeed, a DEBUG
/// "request answered" line: at INFO they would flood the journal and cost a write
/// per poll. Every other request, and every failed one, is logged at INFO.
pub(super) async fn dispatch(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let span = if is_read(req.method()) {
        tracing::debug_span!("request", method = %req.method(), path = %req.path())
    } else {
        tracing::info_span!("request", method = %req.method(), path = %req.path())
    };
    answer(req, payload, state).instrument(span).await
}

/// Whether a request only reads state (logged at DEBUG when it succeeds).
fn is_read(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

async fn answer(
    req: HttpRequest,
    payload: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let started = Instant::now();
    let mut response = match handle(&req, payload, &state).await {
        Ok(response) => response,
        Err(fault) => {
            let mut response = fault.to_response();
            if matches!(
                fault.status,
                StatusCode::PAYLOAD_TOO_LARGE | StatusCode::REQUEST_TIMEOUT
            ) {
                // The rest of the body is not wanted: close after answering.
                response
                    .head_mut()
                    .set_connection_type(ConnectionType::Close);
            }
            response
        }
    };
    response.headers_mut().insert(
        header::SERVER,
        HeaderValue::from_static("ironic-python-agent"),
    );
    let status = response.status().as_u16();
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    if is_read(req.method()) && response.status().is_success() {
        tracing::debug!(status, elapsed_ms, "request answered");
    } else {
        tracing::info!(status, elapsed_ms, "request answered");
    }
    response
}

async fn handle(
    req: &HttpRequest,
    payload: web::Payload,
    state: &AppState,
) -> Result<HttpResponse, Fault> {
    let endpoint = match routes::match_path(req.path()) {
        RouteMatch::Endpoint(endpoint) => endpoint,
        RouteMatch::RedirectTo(target) => return Ok(redirect(req, state, &target)),
        RouteMatch::NotFound => return Err(Fault::not_found()),
    };
    if !endpoint.allows(req.method()) {
        return Err(Fault::method_not_allowed(endpoint.allow()));
    }
    let query = req.query_string();
    if endpoint.needs_token() {
        let given = routes::query_param(query, "agent_token");
        if !token_valid(held_token(&state.token).as_ref(), given.as_deref()) {
            return Err(Fault::unauthorized());
        }
    }
    match endpoint {
        Endpoint::Root => Ok(json_ok(&routes::root_document(&host_url(req, state)))),
        Endpoint::V1 => Ok(json_ok(&routes::v1_document(&host_url(req, state)))),
        Endpoint::Status => Ok(json_ok(&json!({
            "started_at": state.started_at,
            "version": crate::AGENT_VERSION,
        }))),
        Endpoint::Commands if req.method() == Method::POST => {
            let body = read_body(req, payload, state.max_body).await?;
            let run = routes::parse_run_body(&body)?;
            let wait = routes::wait_requested(query);
            tracing::info!(command = %run.name, wait, "running command");
            let result = state
                .coordinator
                .send(RunCommand {
                    name: run.name,
                    params: run.params,
                    wait,
                })
                .await
                .map_err(mailbox_fault)?
                .map_err(|err| Fault::from_agent_error(&err))?;
            Ok(json_ok(&result))
        }
        Endpoint::Commands => {
            let commands = state
                .coordinator
                .send(ListCommands)
                .await
                .map_err(mailbox_fault)?;
            Ok(json_ok(&json!({ "commands": commands })))
        }
        Endpoint::Command(id) => {
            let wait = routes::wait_requested(query);
            let result = state
                .coordinator
                .send(GetCommand { id, wait })
                .await
                .map_err(mailbox_fault)?
                .map_err(|err| Fault::from_agent_error(&err))?;
            Ok(json_ok(&result))
        }
    }
}

fn json_ok<T: serde::Serialize>(value: &T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

fn mailbox_fault(err: actix::MailboxError) -> Fault {
    tracing::error!(error = %err, "the coordinator did not answer");
    Fault::internal()
}

/// The request's `Host` header as given, else the listening address.
fn request_host(req: &HttpRequest) -> String {
    req.headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| !host.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| req.app_config().host().to_string())
}

fn host_url(req: &HttpRequest, state: &AppState) -> String {
    routes::host_url(state.scheme, &request_host(req))
}

/// 308 to the slash form of the path, keeping the query string.
fn redirect(req: &HttpRequest, state: &AppState, target: &str) -> HttpResponse {
    let location =
        routes::redirect_location(state.scheme, &request_host(req), target, req.query_string());
    // A Host header that cannot be echoed falls back to a relative Location.
    let header_value = HeaderValue::from_str(&location).unwrap_or_else(|_| {
        HeaderValue::from_str(target).unwrap_or_else(|_| HeaderValue::from_static("/"))
    });
    HttpResponse::build(StatusCode::PERMANENT_REDIRECT)
        .insert_header((header::LOCATION, header_value))
        .content_type("text/html; charset=utf-8")
        .body(routes::redirect_body(&location))
}

/// Reads the whole body, refusing more than `limit` bytes (413) and stalls (408).
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<Bytes, Fault> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit as u64) {
        tracing::warn!(declared, limit, "request body too large");
        return Err(Fault::payload_too_large());
    }
    let mut body = BytesMut::new();
    loop {
        let next = tokio::time::timeout(BODY_IDLE_TIMEOUT, payload.next())
            .await
            .map_err(|_| {
                tracing::warn!("client stopped sending its request body");
                Fault::request_timeout()
            })?;
        match next {
            None => break,
            Some(Ok(chunk)) => {
                if body.len().saturating_add(chunk.len()) > limit {
                    tracing::warn!(limit, "request body too large");
                    return Err(Fault::payload_too_large());
                }
                body.extend_from_slice(&chunk);
            }
            Some(Err(err)) => {
                tracing::warn!(error = %err, "unreadable request body");
                return Err(Fault::unreadable_body());
            }
        }
    }
    Ok(body.freeze())
}

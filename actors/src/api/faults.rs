//! IPA's HTTP fault bodies: `{"faultcode": "Client"|"Server", "faultstring": "…"}`.
//!
//! Two families of faultstrings exist (spec §2.6): errors of the HTTP layer, written
//! like werkzeug's `"<code> <Reason>: <description>"`, and agent errors, written
//! `"<message>: <details>"` ([`AgentError::faultstring`]).

use actix_web::http::{header, StatusCode};
use actix_web::HttpResponse;
use serde_json::{json, Value};

use crate::errors::AgentError;

/// werkzeug's description of a 404.
pub const NOT_FOUND_DESCRIPTION: &str = "The requested URL was not found on the server. \
     If you entered the URL manually please check your spelling and try again.";

/// werkzeug's description of a 405.
pub const METHOD_NOT_ALLOWED_DESCRIPTION: &str = "The method is not allowed for the requested URL.";

/// werkzeug's description of a 413.
pub const TOO_LARGE_DESCRIPTION: &str = "The data value transmitted exceeds the capacity limit.";

/// werkzeug's description of a 408.
pub const TIMEOUT_DESCRIPTION: &str = "The server closed the network connection because the \
     browser didn't finish the request within the specified time.";

/// werkzeug's description of a generic 400.
pub const BAD_REQUEST_DESCRIPTION: &str =
    "The browser (or proxy) sent a request that this server could not understand.";

/// werkzeug's description of a 500.
pub const INTERNAL_DESCRIPTION: &str = "The server encountered an internal error and was \
     unable to complete your request. Either the server is overloaded or there is an error \
     in the application.";

/// An HTTP error answer in IPA's shape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// The HTTP status.
    pub status: StatusCode,
    /// The `faultstring` of the body.
    pub faultstring: String,
    /// The `Allow` header, for 405 answers.
    pub allow: Option<&'static str>,
}

impl Fault {
    /// A fault with this status and faultstring.
    pub fn new(status: StatusCode, faultstring: impl Into<String>) -> Self {
        Fault {
            status,
            faultstring: faultstring.into(),
            allow: None,
        }
    }

    /// An HTTP-layer fault: `"<code> <Reason>: <description>"`.
    pub fn http(status: StatusCode, description: &str) -> Self {
        let reason = status.canonical_reason().unwrap_or("Error");
        Fault::new(
            status,
            format!("{} {reason}: {description}", status.as_u16()),
        )
    }

    /// 401 `Token invalid.`: the agent token is missing, wrong, or none is held.
    pub fn unauthorized() -> Self {
        Fault::http(StatusCode::UNAUTHORIZED, "Token invalid.")
    }

    /// 404 for a path no route matches.
    pub fn not_found() -> Self {
        Fault::http(StatusCode::NOT_FOUND, NOT_FOUND_DESCRIPTION)
    }

    /// 405 with the `Allow` header listing the route's methods.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Fault {
            allow: Some(allow),
            ..Fault::http(
                StatusCode::METHOD_NOT_ALLOWED,
                METHOD_NOT_ALLOWED_DESCRIPTION,
            )
        }
    }

    /// 413: the request body is larger than the configured limit.
    pub fn payload_too_large() -> Self {
        // werkzeug's (RFC 2616) reason phrase, not the `http` crate's "Payload Too Large".
        Fault::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("413 Request Entity Too Large: {TOO_LARGE_DESCRIPTION}"),
        )
    }

    /// 408: the client stopped sending its body.
    pub fn request_timeout() -> Self {
        Fault::http(StatusCode::REQUEST_TIMEOUT, TIMEOUT_DESCRIPTION)
    }

    /// 400: the body could not be read (broken chunked encoding and the like).
    pub fn unreadable_body() -> Self {
        Fault::http(StatusCode::BAD_REQUEST, BAD_REQUEST_DESCRIPTION)
    }

    /// 400: the body is not JSON; `parser_message` says why.
    pub fn bad_json(parser_message: &str) -> Self {
        Fault::http(
            StatusCode::BAD_REQUEST,
            &format!("Failed to decode JSON object: {parser_message}"),
        )
    }

    /// 400: the body lacks `name` or `params`, or `params` is not an object.
    pub fn missing_name_or_params() -> Self {
        Fault::http(StatusCode::BAD_REQUEST, "Missing or invalid name or params")
    }

    /// 500: the agent could not answer (e.g. the coordinator is gone).
    pub fn internal() -> Self {
        Fault::http(StatusCode::INTERNAL_SERVER_ERROR, INTERNAL_DESCRIPTION)
    }

    /// An agent error as a fault: status `err.code`, faultstring `"<message>: <details>"`.
    pub fn from_agent_error(err: &AgentError) -> Self {
        let status = StatusCode::from_u16(err.code)
            .ok()
            .filter(|status| status.is_client_error() || status.is_server_error())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        Fault::new(status, err.faultstring())
    }

    /// `Server` for 5xx statuses, `Client` otherwise.
    pub fn faultcode(&self) -> &'static str {
        if self.status.is_server_error() {
            "Server"
        } else {
            "Client"
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        json!({ "faultcode": self.faultcode(), "faultstring": self.faultstring })
    }

    /// The HTTP response: the status, the JSON body and `Allow` when set.
    pub fn to_response(&self) -> HttpResponse {
        let mut builder = HttpResponse::build(self.status);
        if let Some(allow) = self.allow {
            builder.insert_header((header::ALLOW, allow));
        }
        builder.json(self.body())
    }
}

impl From<&AgentError> for Fault {
    fn from(err: &AgentError) -> Self {
        Fault::from_agent_error(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_faults_use_werkzeug_wording() {
        assert_eq!(
            Fault::unauthorized().faultstring,
            "401 Unauthorized: Token invalid."
        );
        assert_eq!(
            Fault::missing_name_or_params().faultstring,
            "400 Bad Request: Missing or invalid name or params"
        );
        assert!(Fault::not_found()
            .faultstring
            .starts_with("404 Not Found: The requested URL was not found on the server."));
        assert_eq!(
            Fault::method_not_allowed("GET, HEAD").faultstring,
            "405 Method Not Allowed: The method is not allowed for the requested URL."
        );
        assert_eq!(
            Fault::bad_json("expected value at line 1 column 1").faultstring,
            "400 Bad Request: Failed to decode JSON object: expected value at line 1 column 1"
        );
        assert!(Fault::payload_too_large()
            .faultstring
            .starts_with("413 Request Entity Too Large: "));
    }

    #[test]
    fn faultcode_depends_on_status_class() {
        assert_eq!(Fault::unauthorized().faultcode(), "Client");
        assert_eq!(Fault::internal().faultcode(), "Server");
        let body = Fault::not_found().body();
        assert_eq!(body["faultcode"], "Client");
        assert_eq!(body.as_object().map(|o| o.len()), Some(2));
    }

    #[test]
    fn agent_errors_keep_their_code_and_text() {
        let fault = Fault::from_agent_error(&AgentError::busy("execute_clean_step"));
        assert_eq!(fault.status, StatusCode::CONFLICT);
        assert_eq!(
            fault.faultstring,
            "Agent is busy: executing command execute_clean_step"
        );
        let fault =
            Fault::from_agent_error(&AgentError::not_found("Extension with id bad not found."));
        assert_eq!(fault.status, StatusCode::NOT_FOUND);
        assert_eq!(
            fault.faultstring,
            "Not found: Extension with id bad not found."
        );
        let fault = Fault::from_agent_error(&AgentError::execution("boom"));
        assert_eq!(fault.faultcode(), "Server");
    }

    #[test]
    fn odd_agent_codes_become_500() {
        for code in [0, 200, 302, 1000] {
            let err = AgentError::new("Weird", code, "Weird", "thing");
            assert_eq!(
                Fault::from_agent_error(&err).status,
                StatusCode::INTERNAL_SERVER_ERROR,
                "{code}"
            );
        }
    }

    #[test]
    fn method_not_allowed_carries_allow_header() {
        let response = Fault::method_not_allowed("GET, POST, HEAD").to_response();
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(
            response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok()),
            Some("GET, POST, HEAD")
        );
    }
}

//! The route table and the plain logic of the handlers (spec §2.2, §2.4): which path is
//! which endpoint, the methods each allows, query parsing, the slash redirect target, the
//! root and v1 documents, and the POST body rules. No actix types besides `Method`.

use actix_web::http::Method;
use serde_json::{json, Map, Value};

use super::faults::Fault;

/// What a request path names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `/`: the API root document.
    Root,
    /// `/v1/`: the v1 document.
    V1,
    /// `/v1/status` and `/status`.
    Status,
    /// `/v1/commands/` and `/commands/`: list (GET) and run (POST).
    Commands,
    /// `/v1/commands/<id>` and `/commands/<id>`: one result.
    Command(String),
}

/// The outcome of matching a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteMatch {
    /// A known endpoint.
    Endpoint(Endpoint),
    /// The slashless form of a slash route: answer 308 to this path.
    RedirectTo(String),
    /// No route.
    NotFound,
}

/// Matches a request path (as sent, percent-encoded) to a route, as werkzeug's strict
/// slashes do: `/v1` and `/v1/commands` redirect to their slash forms.
pub fn match_path(path: &str) -> RouteMatch {
    match path {
        "/" => RouteMatch::Endpoint(Endpoint::Root),
        "/v1/" => RouteMatch::Endpoint(Endpoint::V1),
        "/v1/status" | "/status" => RouteMatch::Endpoint(Endpoint::Status),
        "/v1/commands/" | "/commands/" => RouteMatch::Endpoint(Endpoint::Commands),
        "/v1" | "/v1/commands" | "/commands" => RouteMatch::RedirectTo(format!("{path}/")),
        _ => {
            let rest = path
                .strip_prefix("/v1/commands/")
                .or_else(|| path.strip_prefix("/commands/"));
            match rest {
                Some(id) if !id.is_empty() && !id.contains('/') => {
                    let id = percent_encoding::percent_decode_str(id)
                        .decode_utf8_lossy()
                        .into_owned();
                    RouteMatch::Endpoint(Endpoint::Command(id))
                }
                _ => RouteMatch::NotFound,
            }
        }
    }
}

impl Endpoint {
    /// The `Allow` header of the endpoint's 405 answer.
    pub fn allow(&self) -> &'static str {
        match self {
            Endpoint::Commands => "GET, POST, HEAD",
            _ => "GET, HEAD",
        }
    }

    /// Whether the endpoint answers this method.
    pub fn allows(&self, method: &Method) -> bool {
        *method == Method::GET
            || *method == Method::HEAD
            || (*method == Method::POST && *self == Endpoint::Commands)
    }

    /// Whether the endpoint needs the agent token (the three command routes).
    pub fn needs_token(&self) -> bool {
        matches!(self, Endpoint::Commands | Endpoint::Command(_))
    }
}

/// The first value of a query parameter, decoded (`+` is a space), as werkzeug's
/// `request.args.get` gives it.
pub fn query_param(query: &str, key: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(name, _)| name == key)
        .map(|(_, value)| value.into_owned())
}

/// `wait` is true only when it equals `true`, case-insensitively.
pub fn wait_requested(query: &str) -> bool {
    query_param(query, "wait").is_some_and(|value| value.eq_ignore_ascii_case("true"))
}

/// `<scheme>://<host>/`, werkzeug's `request.host_url`.
pub fn host_url(scheme: &str, host: &str) -> String {
    format!("{scheme}://{host}/")
}

/// The `Location` of a slash redirect: the slash path on the request's host, with the
/// original query string kept.
pub fn redirect_location(scheme: &str, host: &str, target_path: &str, query: &str) -> String {
    let path = target_path.trim_start_matches('/');
    let mut location = format!("{}{path}", host_url(scheme, host));
    if !query.is_empty() {
        location.push('?');
        location.push_str(query);
    }
    location
}

/// The HTML body werkzeug sends with a redirect.
pub fn redirect_body(location: &str) -> String {
    let escaped = html_escape(location);
    format!(
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n\
         <h1>Redirecting...</h1>\n<p>You should be redirected automatically to the target URL: \
         <a href=\"{escaped}\">{escaped}</a>. If not, click the link.\n"
    )
}

fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            other => out.push(other),
        }
    }
    out
}

fn link(href: String, rel: &str) -> Value {
    json!({ "href": href, "rel": rel })
}

/// The `id`/`links` pair of the v1 version, with hrefs on `host_url`.
pub fn version_document(host_url: &str) -> Value {
    json!({
        "id": "v1",
        "links": [
            link(format!("{host_url}v1"), "self"),
            {
                "href": "https://docs.openstack.org/ironic-python-agent/",
                "rel": "describedby",
                "type": "text/html",
            },
        ],
    })
}

/// The API root document (`GET /`).
pub fn root_document(host_url: &str) -> Value {
    let version = version_document(host_url);
    json!({
        "name": "OpenStack Ironic Python Agent API",
        "description": "Ironic Python Agent is a provisioning agent for OpenStack Ironic",
        "versions": [version.clone()],
        "default_version": version,
    })
}

/// The v1 document (`GET /v1/`).
pub fn v1_document(host_url: &str) -> Value {
    let mut doc = json!({
        "commands": [
            link(format!("{host_url}v1/commands"), "self"),
            link(format!("{host_url}commands"), "bookmark"),
        ],
        "status": [
            link(format!("{host_url}v1/status"), "self"),
            link(format!("{host_url}status"), "bookmark"),
        ],
        "media_types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.ironic-python-agent.v1+json",
        }],
    });
    if let (Some(doc), Value::Object(version)) = (doc.as_object_mut(), version_document(host_url)) {
        doc.extend(version);
    }
    doc
}

/// A parsed run request: the dotted name and the keyword parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRequest {
    /// `<extension>.<command>`, unchecked (the coordinator splits it).
    pub name: String,
    /// The keyword parameters.
    pub params: Map<String, Value>,
}

/// Parses a POST body: JSON, an object with a string `name` and an object `params`.
pub fn parse_run_body(body: &[u8]) -> Result<RunRequest, Fault> {
    let value: Value =
        serde_json::from_slice(body).map_err(|err| Fault::bad_json(&err.to_string()))?;
    let Value::Object(mut object) = value else {
        return Err(Fault::missing_name_or_params());
    };
    match (object.remove("name"), object.remove("params")) {
        (Some(Value::String(name)), Some(Value::Object(params))) => Ok(RunRequest { name, params }),
        _ => Err(Fault::missing_name_or_params()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(path: &str) -> Endpoint {
        match match_path(path) {
            RouteMatch::Endpoint(endpoint) => endpoint,
            other => panic!("{path}: {other:?}"),
        }
    }

    #[test]
    fn canonical_paths_and_aliases_match() {
        assert_eq!(endpoint("/"), Endpoint::Root);
        assert_eq!(endpoint("/v1/"), Endpoint::V1);
        assert_eq!(endpoint("/v1/status"), Endpoint::Status);
        assert_eq!(endpoint("/status"), Endpoint::Status);
        assert_eq!(endpoint("/v1/commands/"), Endpoint::Commands);
        assert_eq!(endpoint("/commands/"), Endpoint::Commands);
        assert_eq!(
            endpoint("/v1/commands/abc-1"),
            Endpoint::Command("abc-1".into())
        );
        assert_eq!(endpoint("/commands/abc"), Endpoint::Command("abc".into()));
        assert_eq!(endpoint("/commands/a%20b"), Endpoint::Command("a b".into()));
    }

    #[test]
    fn slashless_forms_redirect() {
        assert_eq!(match_path("/v1"), RouteMatch::RedirectTo("/v1/".into()));
        assert_eq!(
            match_path("/v1/commands"),
            RouteMatch::RedirectTo("/v1/commands/".into())
        );
        assert_eq!(
            match_path("/commands"),
            RouteMatch::RedirectTo("/commands/".into())
        );
    }

    #[test]
    fn other_paths_are_not_found() {
        for path in [
            "",
            "/v2/",
            "/v1/status/",
            "/v1/commands/a/b",
            "/v1/commands/a/",
            "/v1//commands/",
            "/v1/commandsx",
            "/statusx",
        ] {
            assert_eq!(match_path(path), RouteMatch::NotFound, "{path}");
        }
    }

    #[test]
    fn methods_and_allow_headers() {
        assert!(Endpoint::Commands.allows(&Method::POST));
        assert!(Endpoint::Commands.allows(&Method::HEAD));
        assert!(!Endpoint::Commands.allows(&Method::DELETE));
        assert!(!Endpoint::Status.allows(&Method::POST));
        assert!(!Endpoint::Command("x".into()).allows(&Method::PUT));
        assert_eq!(Endpoint::Commands.allow(), "GET, POST, HEAD");
        assert_eq!(Endpoint::Root.allow(), "GET, HEAD");
    }

    #[test]
    fn only_command_routes_need_the_token() {
        assert!(Endpoint::Commands.needs_token());
        assert!(Endpoint::Command("x".into()).needs_token());
        assert!(!Endpoint::Status.needs_token());
        assert!(!Endpoint::Root.needs_token());
        assert!(!Endpoint::V1.needs_token());
    }

    #[test]
    fn wait_is_true_only_for_true() {
        assert!(wait_requested("wait=true"));
        assert!(wait_requested("wait=TRUE&agent_token=x"));
        assert!(wait_requested("agent_token=x&wait=True"));
        assert!(!wait_requested("wait=1"));
        assert!(!wait_requested("wait=yes"));
        assert!(!wait_requested("wait=false"));
        assert!(!wait_requested("wait="));
        assert!(!wait_requested("wait"));
        assert!(!wait_requested(""));
        // The first value wins, as with werkzeug's args.get.
        assert!(!wait_requested("wait=no&wait=true"));
    }

    #[test]
    fn query_params_are_decoded() {
        assert_eq!(
            query_param("agent_token=a%2Bb&x=1", "agent_token").as_deref(),
            Some("a+b")
        );
        assert_eq!(
            query_param("agent_token=", "agent_token").as_deref(),
            Some("")
        );
        assert_eq!(query_param("x=1", "agent_token"), None);
    }

    #[test]
    fn location_keeps_host_and_query() {
        assert_eq!(
            redirect_location(
                "http",
                "127.0.0.1:9999",
                "/v1/commands/",
                "agent_token=678123&wait=true"
            ),
            "http://127.0.0.1:9999/v1/commands/?agent_token=678123&wait=true"
        );
        assert_eq!(
            redirect_location("https", "[::1]:9999", "/v1/", ""),
            "https://[::1]:9999/v1/"
        );
    }

    #[test]
    fn redirect_body_escapes_the_url() {
        let body = redirect_body("http://h/v1/?a=1&b=<x>");
        assert!(body.contains("http://h/v1/?a=1&amp;b=&lt;x&gt;"));
        assert!(!body.contains("<x>"));
    }

    #[test]
    fn documents_use_the_host_url() {
        let root = root_document("http://10.0.0.5:9999/");
        assert_eq!(root["name"], "OpenStack Ironic Python Agent API");
        assert_eq!(
            root["versions"][0]["links"][0]["href"],
            "http://10.0.0.5:9999/v1"
        );
        assert_eq!(root["default_version"], root["versions"][0]);
        let v1 = v1_document("http://h:9999/");
        assert_eq!(v1["id"], "v1");
        assert_eq!(v1["commands"][0]["href"], "http://h:9999/v1/commands");
        assert_eq!(v1["commands"][1]["rel"], "bookmark");
        assert_eq!(v1["status"][1]["href"], "http://h:9999/status");
        assert_eq!(
            v1["media_types"][0]["type"],
            "application/vnd.openstack.ironic-python-agent.v1+json"
        );
        assert_eq!(v1["links"][1]["rel"], "describedby");
    }

    #[test]
    fn run_body_rules() {
        let ok = parse_run_body(br#"{"name": "clean.get_clean_steps", "params": {"a": 1}}"#)
            .expect("valid body");
        assert_eq!(ok.name, "clean.get_clean_steps");
        assert_eq!(ok.params["a"], 1);

        for bad in [
            &br#"{"params": {}}"#[..],
            br#"{"name": "a.b"}"#,
            br#"{"name": "a.b", "params": []}"#,
            br#"{"name": "a.b", "params": null}"#,
            br#"{"name": 5, "params": {}}"#,
            br#"[1, 2]"#,
            br#""text""#,
        ] {
            let fault = parse_run_body(bad).expect_err("invalid body");
            assert_eq!(
                fault.faultstring,
                "400 Bad Request: Missing or invalid name or params"
            );
        }
        for not_json in [&b""[..], b"{", b"name=x", b"\xff\xfe", b"{\"a\": }"] {
            let fault = parse_run_body(not_json).expect_err("not JSON");
            assert_eq!(fault.status.as_u16(), 400);
            assert!(
                fault
                    .faultstring
                    .starts_with("400 Bad Request: Failed to decode JSON object: "),
                "{}",
                fault.faultstring
            );
        }
    }

    #[test]
    fn deeply_nested_json_is_rejected_not_overflowed() {
        let body = "[".repeat(100_000);
        let fault = parse_run_body(body.as_bytes()).expect_err("too deep");
        assert_eq!(fault.status.as_u16(), 400);
    }
}

//! The Ironic API client: version detection, lookup, heartbeat and the inspection
//! callback (`ipa-protocol.md` §6, §7). Plain async code on `awc`; no actix actors.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use awc::http::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::timing::{InspectionRetry, Jitter, LookupBackoff};
use crate::config::{AgentConfig, Secret, TlsVersion};
use crate::tls_client::{read_certs, system_ca_bundle, AcceptAnyServerCert};

/// An Ironic API microversion `major.minor`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ApiVersion {
    /// Always 1 today.
    pub major: u32,
    /// The minor version.
    pub minor: u32,
}

impl ApiVersion {
    /// `major.minor`.
    pub const fn new(major: u32, minor: u32) -> Self {
        Self { major, minor }
    }
    /// What the agent assumes when `GET /` fails (not cached).
    pub const FALLBACK: ApiVersion = ApiVersion::new(1, 31);
    /// The highest version sent on lookup.
    pub const LOOKUP_MAX: ApiVersion = ApiVersion::new(1, 62);
    /// The highest version sent on heartbeat.
    pub const HEARTBEAT_MAX: ApiVersion = ApiVersion::new(1, 68);
    /// From here heartbeats carry `agent_version`.
    pub const AGENT_VERSION: ApiVersion = ApiVersion::new(1, 36);
    /// From here heartbeats carry `agent_token`.
    pub const AGENT_TOKEN: ApiVersion = ApiVersion::new(1, 62);
    /// From here heartbeats carry `agent_verify_ca`, and auto-TLS applies.
    pub const AGENT_VERIFY_CA: ApiVersion = ApiVersion::new(1, 68);
}

impl fmt::Display for ApiVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

impl FromStr for ApiVersion {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (major, minor) = s
            .trim()
            .split_once('.')
            .ok_or_else(|| format!("API version {s:?} is not x.y"))?;
        let parse = |part: &str| {
            part.parse::<u32>()
                .map_err(|_| format!("API version {s:?} is not x.y"))
        };
        Ok(ApiVersion::new(parse(major)?, parse(minor)?))
    }
}

/// A failed call to Ironic.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IronicError {
    /// No URL answered (connection refused, timeout, TLS failure…).
    #[error("cannot reach {url}: {message}")]
    Connection {
        /// The last URL tried.
        url: String,
        /// What went wrong.
        message: String,
    },
    /// Ironic answered with an unexpected status; `text` is taken from its body.
    #[error("Error {code}: {text}")]
    Status {
        /// The HTTP status.
        code: u16,
        /// `error_message` / `faultstring` / `title`, or the raw body.
        text: String,
    },
    /// The answer was not what the protocol promises.
    #[error("invalid response from Ironic: {0}")]
    InvalidResponse(String),
    /// The client cannot be used (no URL, bad CA file…).
    #[error("{0}")]
    Config(String),
}

impl IronicError {
    /// The HTTP status, when Ironic answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            IronicError::Status { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether Ironic refused a heartbeat for its agent token: 400 with "Invalid or
    /// missing agent token received." or "Agent token is required …" (Ironic 39).
    /// That happens once the conductor has wiped the token it handed out.
    pub fn is_token_rejection(&self) -> bool {
        match self {
            IronicError::Status { code: 400, text } => {
                text.to_ascii_lowercase().contains("agent token")
            }
            _ => false,
        }
    }

    /// A short class of the error, to log a failure once per change, not per retry.
    pub fn kind(&self) -> String {
        match self {
            IronicError::Connection { .. } => "connection".into(),
            IronicError::Status { code, .. } => format!("status {code}"),
            IronicError::InvalidResponse(_) => "invalid response".into(),
            IronicError::Config(_) => "config".into(),
        }
    }
}

/// The `config` object of a lookup answer. `heartbeat_timeout` is required; every
/// other key is optional and unknown keys are kept in `extra`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LookupConfig {
    /// Seconds after which Ironic considers the agent dead.
    pub heartbeat_timeout: f64,
    /// The agent token (≥ 32 chars), or `******` once handed out.
    #[serde(default)]
    pub agent_token: Option<Secret>,
    /// Always true today; ignored.
    #[serde(default)]
    pub agent_token_required: Option<bool>,
    /// Sets `md5_enabled`.
    #[serde(default)]
    pub agent_md5_checksum_enable: Option<bool>,
    /// Overrides `disable_deep_image_inspection` when not null.
    #[serde(default)]
    pub disable_deep_image_inspection: Option<bool>,
    /// Overrides `permitted_image_formats` when not null.
    #[serde(default)]
    pub permitted_image_formats: Option<Vec<String>>,
    /// Adds `skip_bmc_detect` to the cached node.
    #[serde(default)]
    pub agent_skip_bmc_detect: Option<bool>,
    /// Applied when truthy.
    #[serde(default)]
    pub enable_bios_bootloader_install: Option<bool>,
    /// The server's lowest TLS version, when non-empty.
    #[serde(default)]
    pub tls_min_version: Option<String>,
    /// TLS 1.2 ciphers, when non-empty.
    #[serde(default)]
    pub tls_cipher_suites: Option<String>,
    /// Container step settings, verbatim.
    #[serde(default)]
    pub agent_containers: Option<Value>,
    /// Metrics settings, verbatim.
    #[serde(default)]
    pub metrics: Option<Value>,
    /// Statsd settings, verbatim.
    #[serde(default)]
    pub metrics_statsd: Option<Value>,
    /// Any other key.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A successful lookup.
#[derive(Debug, Clone)]
pub struct LookupResult {
    /// `node.uuid`.
    pub node_uuid: String,
    /// The node object exactly as Ironic sent it.
    pub node: Value,
    /// The typed `config`.
    pub config: LookupConfig,
}

/// Parses a lookup answer body (already known to be a 200).
pub fn parse_lookup(body: &[u8]) -> Result<LookupResult, IronicError> {
    let mut value: Value = serde_json::from_slice(body)
        .map_err(|err| IronicError::InvalidResponse(format!("lookup body is not JSON: {err}")))?;
    let object = value
        .as_object_mut()
        .ok_or_else(|| IronicError::InvalidResponse("lookup body is not an object".into()))?;
    let node = object.remove("node").unwrap_or(Value::Null);
    let node_uuid = node
        .get("uuid")
        .and_then(Value::as_str)
        .ok_or_else(|| IronicError::InvalidResponse("lookup answer lacks node.uuid".into()))?
        .to_string();
    let mut config = match object.remove("config") {
        Some(Value::Object(config)) => config,
        Some(_) | None => Map::new(),
    };
    // Old APIs put heartbeat_timeout at the top level.
    if !config.contains_key("heartbeat_timeout") {
        match object.remove("heartbeat_timeout") {
            Some(timeout) => {
                config.insert("heartbeat_timeout".into(), timeout);
            }
            None => {
                return Err(IronicError::InvalidResponse(
                    "lookup answer has no heartbeat_timeout".into(),
                ))
            }
        }
    }
    let config: LookupConfig = serde_json::from_value(Value::Object(config))
        .map_err(|err| IronicError::InvalidResponse(format!("lookup config: {err}")))?;
    Ok(LookupResult {
        node_uuid,
        node,
        config,
    })
}

/// The readable error text of an Ironic error body: `error_message` (itself maybe a
/// JSON string holding `faultstring`), else `faultstring`, else `title`, else the body.
pub fn error_text(body: &[u8]) -> String {
    fn from_object(value: &Value) -> Option<String> {
        for key in ["faultstring", "title"] {
            if let Some(text) = value.get(key).and_then(Value::as_str) {
                return Some(text.to_string());
            }
        }
        None
    }
    let raw = String::from_utf8_lossy(body).trim().to_string();
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return raw.chars().take(500).collect();
    };
    if let Some(message) = value.get("error_message") {
        match message {
            Value::String(text) => {
                return serde_json::from_str::<Value>(text)
                    .ok()
                    .and_then(|inner| from_object(&inner))
                    .unwrap_or_else(|| text.clone());
            }
            Value::Object(_) => {
                if let Some(text) = from_object(message) {
                    return text;
                }
            }
            _ => {}
        }
    }
    from_object(&value).unwrap_or_else(|| raw.chars().take(500).collect())
}

/// Everything the client needs from the configuration.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// API base URLs, trailing `/` stripped, `mdns` dropped.
    pub api_urls: Vec<String>,
    /// Skip certificate verification.
    pub insecure: bool,
    /// CA bundle; the system bundle when `None`.
    pub cafile: Option<std::path::PathBuf>,
    /// Client certificate and key.
    pub client_cert: Option<(std::path::PathBuf, std::path::PathBuf)>,
    /// Per-request timeout.
    pub timeout: Duration,
    /// `X-OpenStack-Request-ID`.
    pub request_id: Option<String>,
    /// A configured microversion instead of detection.
    pub api_version: Option<ApiVersion>,
    /// The lowest TLS version towards Ironic.
    pub tls_min_version: TlsVersion,
}

/// Strips trailing `/` and drops empty entries and `mdns` (not supported).
pub fn normalize_urls(urls: &[String]) -> Vec<String> {
    urls.iter()
        .flat_map(|url| url.split(','))
        .map(|url| url.trim().trim_end_matches('/').to_string())
        .filter(|url| !url.is_empty() && url != "mdns")
        .collect()
}

impl ClientSettings {
    /// The settings from the agent configuration.
    pub fn from_config(config: &AgentConfig) -> Self {
        let api_version = config
            .ironic_api_version
            .as_deref()
            .and_then(|v| match v.parse() {
                Ok(version) => Some(version),
                Err(err) => {
                    tracing::warn!("ignoring ironic_api_version: {err}");
                    None
                }
            });
        Self {
            api_urls: normalize_urls(&config.api_url),
            insecure: config.insecure,
            cafile: config.cafile.clone(),
            client_cert: config.certfile.clone().zip(config.keyfile.clone()),
            timeout: Duration::from_secs(config.http_request_timeout.max(1)),
            request_id: config.global_request_id.clone().filter(|id| !id.is_empty()),
            api_version,
            tls_min_version: config.tls_min_version,
        }
    }
}

fn tls_config(settings: &ClientSettings) -> Result<rustls::ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: &[&rustls::SupportedProtocolVersion] = match settings.tls_min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|err| err.to_string())?;
    let builder = if settings.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
    } else {
        let mut roots = rustls::RootCertStore::empty();
        match &settings.cafile {
            Some(cafile) => {
                for cert in read_certs(cafile)? {
                    roots.add(cert).map_err(|err| err.to_string())?;
                }
            }
            None => {
                if let Some(bundle) = system_ca_bundle() {
                    let certs = read_certs(bundle).unwrap_or_default();
                    roots.add_parsable_certificates(certs);
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut config = match &settings.client_cert {
        Some((cert, key)) => {
            let certs = read_certs(cert)?;
            let data = std::fs::read(key).map_err(|err| format!("{}: {err}", key.display()))?;
            let key = rustls_pemfile::private_key(&mut data.as_slice())
                .map_err(|err| err.to_string())?
                .ok_or_else(|| "keyfile holds no private key".to_string())?;
            builder
                .with_client_auth_cert(certs, key)
                .map_err(|err| err.to_string())?
        }
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// A raw answer: which base URL answered, the status and the body.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The URL that answered.
    pub url: String,
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// What a heartbeat says.
#[derive(Debug, Clone)]
pub struct HeartbeatRequest {
    /// The node from the lookup.
    pub node_uuid: String,
    /// `callback_url`.
    pub callback_url: String,
    /// `agent_token`.
    pub agent_token: Option<Secret>,
    /// `agent_verify_ca`: the auto-TLS certificate PEM.
    pub verify_ca: Option<String>,
}

/// The heartbeat body for the negotiated version `version`.
pub fn heartbeat_body(request: &HeartbeatRequest, version: ApiVersion) -> Value {
    let mut body = Map::new();
    body.insert("callback_url".into(), json!(request.callback_url));
    if version >= ApiVersion::AGENT_TOKEN {
        if let Some(token) = &request.agent_token {
            body.insert("agent_token".into(), json!(token.expose()));
        }
    }
    if version >= ApiVersion::AGENT_VERSION {
        body.insert("agent_version".into(), json!(crate::AGENT_VERSION));
    }
    if version >= ApiVersion::AGENT_VERIFY_CA {
        if let Some(ca) = &request.verify_ca {
            body.insert("agent_verify_ca".into(), json!(ca));
        }
    }
    Value::Object(body)
}

/// The query of a lookup: `addresses=<macs joined by ,>[&node_uuid=]`, percent-encoded
/// like python-requests (`:` → `%3A`, `,` → `%2C`).
pub fn lookup_query(macs: &[String], node_uuid: Option<&str>) -> String {
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query.append_pair("addresses", &macs.join(","));
    if let Some(uuid) = node_uuid {
        query.append_pair("node_uuid", uuid);
    }
    query.finish()
}

#[derive(Debug, Default)]
struct State {
    urls: Vec<String>,
    detected: Option<ApiVersion>,
}

/// The Ironic client. Cheap to clone; clones share the URL order and the detected
/// version. Not `Send` (awc): use it on the actix thread that created it.
#[derive(Clone)]
pub struct IronicHttp {
    http: awc::Client,
    settings: Rc<ClientSettings>,
    state: Rc<RefCell<State>>,
}

impl fmt::Debug for IronicHttp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IronicHttp")
            .field("settings", &self.settings)
            .field("state", &self.state)
            .finish()
    }
}

/// Largest body read from Ironic.
const MAX_BODY: usize = 64 * 1024 * 1024;

impl IronicHttp {
    /// Builds the client; fails on unreadable TLS files.
    pub fn new(settings: ClientSettings) -> Result<Self, IronicError> {
        let tls = tls_config(&settings).map_err(IronicError::Config)?;
        let connector = awc::Connector::new()
            .rustls_0_23(Arc::new(tls))
            .timeout(settings.timeout);
        let http = awc::Client::builder()
            .connector(connector)
            .timeout(settings.timeout)
            .disable_redirects()
            .finish();
        let state = State {
            urls: settings.api_urls.clone(),
            detected: None,
        };
        Ok(Self {
            http,
            settings: Rc::new(settings),
            state: Rc::new(RefCell::new(state)),
        })
    }

    /// The API URLs in their current order (the one that last worked first).
    pub fn api_urls(&self) -> Vec<String> {
        self.state.borrow().urls.clone()
    }

    /// The settings in use.
    pub fn settings(&self) -> &ClientSettings {
        &self.settings
    }

    async fn send_one(
        &self,
        method: &Method,
        url: &str,
        version: Option<ApiVersion>,
        body: Option<&Value>,
    ) -> Result<RawResponse, IronicError> {
        let connection = |message: String| IronicError::Connection {
            url: url.to_string(),
            message,
        };
        let mut request = self
            .http
            .request(method.clone(), url)
            .insert_header(("Content-Type", "application/json"))
            .insert_header(("Accept", "application/json"));
        if let Some(id) = &self.settings.request_id {
            request = request.insert_header(("X-OpenStack-Request-ID", id.as_str()));
        }
        if let Some(version) = version {
            request =
                request.insert_header(("X-OpenStack-Ironic-API-Version", version.to_string()));
        }
        let sent = match body {
            Some(body) => request.send_body(body.to_string()).await,
            None => request.send().await,
        };
        let mut response = sent.map_err(|err| connection(err.to_string()))?;
        let bytes = response
            .body()
            .limit(MAX_BODY)
            .await
            .map_err(|err| connection(format!("reading the answer: {err}")))?;
        Ok(RawResponse {
            url: url.to_string(),
            status: response.status().as_u16(),
            body: bytes.to_vec(),
        })
    }

    /// Sends to `{base}{path}` for each API URL in order until one answers; the one that
    /// answered moves to the front.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        version: Option<ApiVersion>,
        body: Option<&Value>,
    ) -> Result<RawResponse, IronicError> {
        let urls = self.api_urls();
        if urls.is_empty() {
            return Err(IronicError::Config(
                "no Ironic API URL is configured".into(),
            ));
        }
        let mut last = None;
        for base in urls {
            match self
                .send_one(&method, &format!("{base}{path}"), version, body)
                .await
            {
                Ok(response) => {
                    let mut state = self.state.borrow_mut();
                    if let Some(index) = state.urls.iter().position(|url| *url == base) {
                        let url = state.urls.remove(index);
                        state.urls.insert(0, url);
                    }
                    return Ok(response);
                }
                Err(err) => {
                    tracing::debug!(error = %err, "Ironic API URL failed, trying the next");
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| IronicError::Config("no Ironic API URL".into())))
    }

    /// The server's API version: configured, else detected by `GET /` (cached on
    /// success), else 1.31 (not cached, so the next call asks again).
    pub async fn api_version(&self) -> ApiVersion {
        if let Some(version) = self.settings.api_version {
            return version;
        }
        if let Some(version) = self.state.borrow().detected {
            return version;
        }
        let detected = match self.send(Method::GET, "/", None, None).await {
            Ok(response) if response.status == 200 => {
                serde_json::from_slice::<Value>(&response.body)
                    .ok()
                    .and_then(|root| {
                        root.pointer("/default_version/version")
                            .and_then(Value::as_str)
                            .and_then(|v| v.parse::<ApiVersion>().ok())
                    })
            }
            Ok(response) => {
                tracing::debug!(status = response.status, "GET / did not answer 200");
                None
            }
            Err(err) => {
                tracing::debug!(error = %err, "cannot detect the Ironic API version");
                None
            }
        };
        match detected {
            Some(version) => {
                self.state.borrow_mut().detected = Some(version);
                tracing::debug!(%version, "Ironic API version detected");
                version
            }
            None => ApiVersion::FALLBACK,
        }
    }

    /// One lookup attempt: `GET /v1/lookup?addresses=…[&node_uuid=…]` with version
    /// `min(server, 1.62)`; success is exactly 200 with a usable body.
    pub async fn lookup_once(
        &self,
        macs: &[String],
        node_uuid: Option<&str>,
    ) -> Result<LookupResult, IronicError> {
        let version = self.api_version().await.min(ApiVersion::LOOKUP_MAX);
        let path = format!("/v1/lookup?{}", lookup_query(macs, node_uuid));
        let response = self.send(Method::GET, &path, Some(version), None).await?;
        if response.status != 200 {
            return Err(IronicError::Status {
                code: response.status,
                text: error_text(&response.body),
            });
        }
        parse_lookup(&response.body)
    }

    /// Lookup with IPA's retries (§6.2) until `timeout` has passed; the last error when
    /// it runs out. Failures are logged once per change of error kind.
    pub async fn lookup(
        &self,
        macs: &[String],
        node_uuid: Option<&str>,
        timeout: Duration,
        policy: &LookupBackoff,
        jitter: &mut impl Jitter,
    ) -> Result<LookupResult, IronicError> {
        let deadline = Instant::now() + timeout;
        let mut attempt = 0u32;
        let mut conflicts = 0u32;
        let mut last_kind: Option<String> = None;
        loop {
            attempt += 1;
            let err = match self.lookup_once(macs, node_uuid).await {
                Ok(found) => {
                    if last_kind.is_some() {
                        tracing::info!(attempt, "lookup succeeded after retries");
                    }
                    return Ok(found);
                }
                Err(err) => err,
            };
            let kind = err.kind();
            if last_kind.as_deref() != Some(kind.as_str()) {
                tracing::warn!(attempt, error = %err, "lookup failed, retrying");
                last_kind = Some(kind);
            } else {
                tracing::debug!(attempt, error = %err, "lookup failed again");
            }
            let mut wait = Duration::ZERO;
            if err.status() == Some(409) {
                conflicts += 1;
                wait += policy.conflict_sleep(conflicts);
            }
            wait += policy.delay(attempt, jitter);
            let now = Instant::now();
            if now >= deadline {
                return Err(err);
            }
            actix_rt::time::sleep(wait.min(deadline - now)).await;
        }
    }

    /// One heartbeat: `POST /v1/heartbeat/<uuid>` with version `min(server, 1.68)`;
    /// success is exactly 202.
    pub async fn heartbeat(&self, request: &HeartbeatRequest) -> Result<(), IronicError> {
        let version = self.api_version().await.min(ApiVersion::HEARTBEAT_MAX);
        let body = heartbeat_body(request, version);
        let path = format!("/v1/heartbeat/{}", request.node_uuid);
        let response = self
            .send(Method::POST, &path, Some(version), Some(&body))
            .await?;
        if response.status == 202 {
            Ok(())
        } else {
            Err(IronicError::Status {
                code: response.status,
                text: error_text(&response.body),
            })
        }
    }

    /// Posts inspection data to the first of `urls` that answers (no version header),
    /// retrying connection errors, 409 and 5xx per `policy`; any other 4xx gives up.
    /// Returns the node UUID of the answer (`uuid`), if any.
    pub async fn post_inspection(
        &self,
        urls: &[String],
        data: &Value,
        policy: &InspectionRetry,
    ) -> Result<Option<String>, IronicError> {
        if urls.is_empty() {
            return Err(IronicError::Config("no inspection URL".into()));
        }
        let attempts = policy.attempts.max(1);
        let mut last_kind: Option<String> = None;
        for attempt in 1..=attempts {
            let mut result = Err(IronicError::Config("no inspection URL".into()));
            for url in urls {
                result = self.send_one(&Method::POST, url, None, Some(data)).await;
                if result.is_ok() {
                    break;
                }
            }
            let err = match result {
                Ok(response) if response.status < 400 => {
                    let uuid = serde_json::from_slice::<Value>(&response.body)
                        .ok()
                        .and_then(|answer| {
                            answer
                                .get("uuid")
                                .and_then(Value::as_str)
                                .map(str::to_string)
                        });
                    tracing::info!(url = %response.url, node = ?uuid, "inspection data accepted");
                    return Ok(uuid);
                }
                Ok(response) => {
                    let err = IronicError::Status {
                        code: response.status,
                        text: error_text(&response.body),
                    };
                    if response.status != 409 && response.status < 500 {
                        return Err(err);
                    }
                    err
                }
                Err(err) => err,
            };
            if attempt == attempts {
                return Err(err);
            }
            let kind = err.kind();
            if last_kind.as_deref() != Some(kind.as_str()) {
                tracing::warn!(attempt, error = %err, "posting inspection data failed, retrying");
                last_kind = Some(kind);
            }
            actix_rt::time::sleep(policy.delay(attempt)).await;
        }
        unreachable!("the loop returns on its last attempt")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_parse_compare_and_negotiate() {
        let server: ApiVersion = "1.115".parse().expect("version");
        assert_eq!(server, ApiVersion::new(1, 115));
        assert!(server > ApiVersion::new(1, 68), "numeric, not lexical");
        assert_eq!(server.min(ApiVersion::LOOKUP_MAX).to_string(), "1.62");
        assert_eq!(server.min(ApiVersion::HEARTBEAT_MAX).to_string(), "1.68");
        let old: ApiVersion = "1.50".parse().expect("version");
        assert_eq!(old.min(ApiVersion::LOOKUP_MAX).to_string(), "1.50");
        assert_eq!(ApiVersion::FALLBACK.to_string(), "1.31");
        assert!("1".parse::<ApiVersion>().is_err());
        assert!("1.x".parse::<ApiVersion>().is_err());
        assert!("latest".parse::<ApiVersion>().is_err());
    }

    #[test]
    fn urls_are_split_stripped_and_mdns_dropped() {
        let urls = normalize_urls(&[
            "http://a:6385/".to_string(),
            "http://b:6385//,https://[fd00::1]:6385/".to_string(),
            "mdns".to_string(),
            " ".to_string(),
        ]);
        assert_eq!(
            urls,
            ["http://a:6385", "http://b:6385", "https://[fd00::1]:6385"]
        );
    }

    #[test]
    fn lookup_query_is_percent_encoded_like_requests() {
        let macs = vec![
            "02:fc:00:00:00:01".to_string(),
            "52:54:00:aa:bb:cc".to_string(),
        ];
        assert_eq!(
            lookup_query(&macs, None),
            "addresses=02%3Afc%3A00%3A00%3A00%3A01%2C52%3A54%3A00%3Aaa%3Abb%3Acc"
        );
        assert_eq!(
            lookup_query(&macs[..1], Some("2865dde3-5ab8-44f2-89b9-ac1d6436aebc")),
            "addresses=02%3Afc%3A00%3A00%3A00%3A01&node_uuid=2865dde3-5ab8-44f2-89b9-ac1d6436aebc"
        );
    }

    #[test]
    fn heartbeat_body_depends_on_version() {
        let request = HeartbeatRequest {
            node_uuid: "n".into(),
            callback_url: "https://127.0.0.1:9999".into(),
            agent_token: Some(Secret::new("t".repeat(43))),
            verify_ca: Some("PEM".into()),
        };
        let full = heartbeat_body(&request, ApiVersion::new(1, 68));
        assert_eq!(full["callback_url"], "https://127.0.0.1:9999");
        assert_eq!(full["agent_token"], "t".repeat(43));
        assert_eq!(full["agent_version"], crate::AGENT_VERSION);
        assert_eq!(full["agent_verify_ca"], "PEM");
        let mid = heartbeat_body(&request, ApiVersion::new(1, 62));
        assert!(mid.get("agent_verify_ca").is_none());
        assert!(mid.get("agent_token").is_some());
        let old = heartbeat_body(&request, ApiVersion::FALLBACK);
        assert_eq!(
            old.as_object()
                .map(|o| o.keys().cloned().collect::<Vec<_>>()),
            Some(vec!["callback_url".to_string()])
        );
        let plain = HeartbeatRequest {
            verify_ca: None,
            ..request
        };
        assert!(heartbeat_body(&plain, ApiVersion::new(1, 68))
            .get("agent_verify_ca")
            .is_none());
    }

    #[test]
    fn error_text_reads_ironic_shapes() {
        let nested = br#"{"error_message": "{\"faultcode\": \"Client\", \"faultstring\": \"Node x is locked\", \"debuginfo\": null}"}"#;
        assert_eq!(error_text(nested), "Node x is locked");
        assert_eq!(
            error_text(br#"{"error_message": {"faultstring": "inner"}}"#),
            "inner"
        );
        assert_eq!(error_text(br#"{"error_message": "plain"}"#), "plain");
        assert_eq!(error_text(br#"{"faultstring": "top"}"#), "top");
        assert_eq!(error_text(br#"{"title": "Not Found"}"#), "Not Found");
        assert_eq!(error_text(b"oops "), "oops");
        let err = IronicError::Status {
            code: 409,
            text: error_text(nested),
        };
        assert_eq!(err.to_string(), "Error 409: Node x is locked");
    }

    #[test]
    fn lookup_answer_parsing() {
        let body = br#"{"node": {"uuid": "u-1", "properties": {}},
                        "config": {"heartbeat_timeout": 20, "agent_token": "tok",
                                   "tls_min_version": "1.3", "new_key": 1}}"#;
        let found = parse_lookup(body).expect("valid");
        assert_eq!(found.node_uuid, "u-1");
        assert_eq!(found.config.heartbeat_timeout, 20.0);
        assert_eq!(
            found.config.agent_token.as_ref().map(Secret::expose),
            Some("tok")
        );
        assert_eq!(found.config.tls_min_version.as_deref(), Some("1.3"));
        assert_eq!(found.config.extra["new_key"], 1);
        assert_eq!(found.node["properties"], json!({}));
        // Old APIs: heartbeat_timeout at the top level.
        let old =
            parse_lookup(br#"{"node": {"uuid": "u"}, "heartbeat_timeout": 300}"#).expect("valid");
        assert_eq!(old.config.heartbeat_timeout, 300.0);
        for bad in [
            &b"not json"[..],
            br#"{"node": {}, "config": {"heartbeat_timeout": 1}}"#,
            br#"{"node": {"uuid": "u"}, "config": {}}"#,
            br#"[1]"#,
        ] {
            assert!(
                matches!(parse_lookup(bad), Err(IronicError::InvalidResponse(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn settings_from_config() {
        let config = AgentConfig {
            api_url: vec!["http://a:6385/".into()],
            ironic_api_version: Some("1.70".into()),
            global_request_id: Some("req-1".into()),
            ..AgentConfig::default()
        };
        let settings = ClientSettings::from_config(&config);
        assert_eq!(settings.api_urls, ["http://a:6385"]);
        assert_eq!(settings.api_version, Some(ApiVersion::new(1, 70)));
        assert_eq!(settings.request_id.as_deref(), Some("req-1"));
        assert_eq!(settings.timeout, Duration::from_secs(30));
    }
}

//! Image and checksum-file downloads (§10.4): per-URL retries, 4xx fatal at once,
//! stall timeout, total time limit, basic auth, `image_request_authorization` and
//! proxies ([`super::proxy`]).

use std::time::Duration;

use base64::Engine;
use reqwest::StatusCode;
use tokio::time::Instant;

use super::ImageInfo;
use crate::errors::AgentError;
use crate::installer::failures;

/// Why an attempt failed: retried by the whole-download loop, or final.
#[derive(Debug)]
pub enum Failure {
    /// Retry the whole download (5xx used up, read/write error, checksum mismatch).
    Retry(AgentError),
    /// Stop now (4xx, out of space, time limit, invalid image).
    Stop(AgentError),
}

impl Failure {
    /// The error to report.
    pub fn into_error(self) -> AgentError {
        match self {
            Failure::Retry(err) | Failure::Stop(err) => err,
        }
    }
}

/// The response of an image request.
pub type Response = reqwest::Response;

/// A reqwest error with its causes ("error sending request …: tunnel …: 407").
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Settings of one download.
pub struct Fetcher {
    client: reqwest::Client,
    image_id: String,
    basic: Option<(String, String)>,
    authorization: Option<String>,
    /// `image_download_connection_retries`.
    pub retries: u32,
    /// `image_download_connection_retry_interval`.
    pub interval: Duration,
    /// `image_download_connection_timeout`: connect timeout, longest wait for the response
    /// head and longest gap between chunks.
    pub stall: Duration,
    /// `image_download_max_duration` as a deadline.
    pub deadline: Option<Instant>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Credentials are never printed.
        f.debug_struct("Fetcher")
            .field("image_id", &self.image_id)
            .field("retries", &self.retries)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// Builds the fetcher from the configuration and `image_info`.
    pub fn new(config: &crate::config::AgentConfig, info: &ImageInfo) -> Result<Self, AgentError> {
        let stall = Duration::from_secs(config.image_download_connection_timeout.max(1));
        let tls = super::tls::client_config(config.cafile.as_deref(), config.insecure)
            .map_err(|e| failures::image_download(&info.id, format!("TLS setup: {e}")))?;
        let proxies = info
            .proxies
            .clone()
            .with_environment(|name| std::env::var(name).ok());
        // `no_proxy()` first: the proxies come from `proxies` alone, never from
        // reqwest's own reading of the environment.
        let mut builder = reqwest::Client::builder()
            .use_preconfigured_tls((*tls).clone())
            .connect_timeout(stall)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        if let Some(proxy) = proxies.to_reqwest() {
            builder = builder.proxy(proxy);
        }
        if proxies.any() {
            tracing::info!(
                image = %info.id,
                http = proxies.http.as_ref().map(super::proxy::redacted).as_deref().unwrap_or("direct"),
                https = proxies.https.as_ref().map(super::proxy::redacted).as_deref().unwrap_or("direct"),
                no_proxy = proxies.no_proxy.as_deref().unwrap_or(""),
                "image downloads go through a proxy"
            );
        }
        let client = builder.build().map_err(|e| {
            failures::image_download(&info.id, format!("HTTP client setup: {}", describe(&e)))
        })?;
        let strategy = info
            .auth_strategy
            .clone()
            .unwrap_or_else(|| format!("{:?}", config.image_server_auth_strategy).to_lowercase());
        let basic = if strategy.replace('_', "") == "httpbasic" {
            let user = info
                .user
                .clone()
                .or_else(|| config.image_server_user.clone())
                .ok_or_else(|| {
                    AgentError::invalid_params("http_basic image server auth needs a user name")
                })?;
            let password = info
                .password
                .clone()
                .or_else(|| {
                    config
                        .image_server_password
                        .as_ref()
                        .map(|p| p.expose().to_string())
                })
                .unwrap_or_default();
            Some((user, password))
        } else {
            None
        };
        let authorization = match &info.request_authorization {
            Some(b64) => Some(
                base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .ok()
                    .and_then(|raw| String::from_utf8(raw).ok())
                    .ok_or_else(|| {
                        AgentError::invalid_params(
                            "image_request_authorization must be base64 of a header value",
                        )
                    })?,
            ),
            None => None,
        };
        let max = config.image_download_max_duration;
        Ok(Self {
            client,
            image_id: info.id.clone(),
            basic,
            authorization,
            retries: config.image_download_connection_retries,
            interval: Duration::from_secs(config.image_download_connection_retry_interval),
            stall,
            deadline: (max > 0).then(|| Instant::now() + Duration::from_secs(max)),
        })
    }

    /// The download's time limit error.
    pub fn timeout_error(&self) -> AgentError {
        failures::image_download_timeout(
            &self.image_id,
            "the download took longer than image_download_max_duration",
        )
    }

    /// Fails when the total time limit has passed.
    pub fn check_deadline(&self) -> Result<(), Failure> {
        match self.deadline {
            Some(deadline) if Instant::now() >= deadline => {
                Err(Failure::Stop(self.timeout_error()))
            }
            _ => Ok(()),
        }
    }

    async fn get_once(&self, url: &str) -> Result<Response, String> {
        let mut request = self.client.get(url);
        if let Some((user, password)) = &self.basic {
            request = request.basic_auth(user, Some(password));
        }
        if let Some(value) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, value.as_str());
        }
        match tokio::time::timeout_at(self.stall_limit(), request.send()).await {
            Ok(response) => {
                response.map_err(|err| format!("request to {url} failed: {}", describe(&err)))
            }
            Err(_) if self.check_deadline().is_err() => Err("max duration".to_string()),
            Err(_) => Err(format!(
                "no response from {url} within {} seconds (image_download_connection_timeout)",
                self.stall.as_secs()
            )),
        }
    }

    /// When the current wait (response head or next chunk) gives up: after the stall
    /// timeout, or at the total deadline if that comes first.
    fn stall_limit(&self) -> Instant {
        let stall_at = Instant::now() + self.stall;
        match self.deadline {
            Some(deadline) if deadline < stall_at => deadline,
            _ => stall_at,
        }
    }

    /// Opens the first URL that answers 200, with `retries + 1` attempts per URL.
    /// A status below 500 is fatal at once (unlike IPA's accidental retry).
    pub async fn open(&self, urls: &[String]) -> Result<(Response, String), Failure> {
        let mut last = String::from("no URL to try");
        for url in urls {
            for attempt in 0..=self.retries {
                self.check_deadline()?;
                match self.get_once(url).await {
                    Ok(response) if response.status() == StatusCode::OK => {
                        return Ok((response, url.clone()))
                    }
                    Ok(response) if response.status().as_u16() < 500 => {
                        return Err(Failure::Stop(failures::image_download_fatal(
                            &self.image_id,
                            format!(
                                "Received status code {} from {url}, expected 200. Response body: ",
                                response.status().as_u16()
                            ),
                        )));
                    }
                    Ok(response) => {
                        last = format!(
                            "Received status code {} from {url}, expected 200",
                            response.status().as_u16()
                        );
                    }
                    Err(err) if err == "max duration" => {
                        return Err(Failure::Stop(self.timeout_error()))
                    }
                    Err(err) => last = err,
                }
                tracing::warn!(url = %url, attempt = attempt + 1, error = %last, "image download attempt failed");
                if attempt < self.retries {
                    tokio::time::sleep(self.interval).await;
                }
            }
        }
        Err(Failure::Retry(failures::image_download(
            &self.image_id,
            last,
        )))
    }

    /// Reads the next body chunk with the stall timeout and the total deadline.
    pub async fn next_chunk(
        &self,
        response: &mut Response,
    ) -> Result<Option<bytes::Bytes>, Failure> {
        match tokio::time::timeout_at(self.stall_limit(), response.chunk()).await {
            Err(_) => {
                self.check_deadline()?;
                Err(Failure::Retry(failures::image_download(
                    &self.image_id,
                    format!(
                        "no data received for {} seconds (image_download_connection_timeout)",
                        self.stall.as_secs()
                    ),
                )))
            }
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(err)) => Err(Failure::Retry(failures::image_download(
                &self.image_id,
                format!("reading the body failed: {}", describe(&err)),
            ))),
        }
    }

    /// Fetches a small text file (a checksum file), with the same retries and auth.
    pub async fn fetch_text(&self, url: &str) -> Result<String, AgentError> {
        let (mut response, _) = self
            .open(&[url.to_string()])
            .await
            .map_err(Failure::into_error)?;
        let mut text = Vec::new();
        while let Some(chunk) = self
            .next_chunk(&mut response)
            .await
            .map_err(Failure::into_error)?
        {
            text.extend_from_slice(&chunk);
            if text.len() > 16 * 1024 * 1024 {
                return Err(failures::image_download(
                    &self.image_id,
                    "checksum file too large",
                ));
            }
        }
        Ok(String::from_utf8_lossy(&text).into_owned())
    }
}

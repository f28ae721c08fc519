//! Proxies for image and checksum downloads (`image_info.proxies` and `no_proxy`, which
//! Ironic fills from the node's `image_http_proxy`, `image_https_proxy` and
//! `image_no_proxy`).
//!
//! As IPA (python-requests), a scheme `image_info` names no proxy for falls back to the
//! agent's environment (`https_proxy`, `http_proxy`, `all_proxy`, lower case first).
//! Unlike python-requests, `no_proxy` also applies to the proxies `image_info` names:
//! Ironic documents `image_no_proxy` as the hosts that are never proxied.

use serde_json::Value;
use url::Url;

use crate::errors::AgentError;

/// The proxy settings of one image, validated.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ProxySettings {
    /// Proxy for `http://` image URLs.
    pub http: Option<Url>,
    /// Proxy for `https://` image URLs (reached with CONNECT).
    pub https: Option<Url>,
    /// Comma-separated hosts, domains, IP addresses and CIDR blocks reached directly.
    pub no_proxy: Option<String>,
}

impl std::fmt::Debug for ProxySettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Proxy URLs may carry credentials: only their host and port are printed.
        f.debug_struct("ProxySettings")
            .field("http", &self.http.as_ref().map(redacted))
            .field("https", &self.https.as_ref().map(redacted))
            .field("no_proxy", &self.no_proxy)
            .finish()
    }
}

/// `scheme://host:port` of a proxy URL, without credentials or path.
pub fn redacted(url: &Url) -> String {
    format!(
        "{}://{}:{}",
        url.scheme(),
        url.host_str().unwrap_or(""),
        url.port_or_known_default().unwrap_or(0)
    )
}

/// Parses one proxy URL; only `http` and `https` proxies are supported.
fn proxy_url(key: &str, value: &str) -> Result<Url, AgentError> {
    let invalid =
        |why: &str| AgentError::invalid_params(format!("Image 'proxies' entry '{key}' {why}."));
    let url = Url::parse(value.trim()).map_err(|_| invalid("is not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid("must be an http:// or https:// proxy URL"));
    }
    if url.host_str().unwrap_or("").is_empty() {
        return Err(invalid("has no host"));
    }
    Ok(url)
}

impl ProxySettings {
    /// Reads `image_info.proxies` and `image_info.no_proxy` (400 on malformed values).
    pub fn from_image_info(
        proxies: Option<&Value>,
        no_proxy: Option<&Value>,
    ) -> Result<Self, AgentError> {
        let mut settings = Self::default();
        match proxies {
            None | Some(Value::Null) => {}
            Some(Value::Object(map)) => {
                for (key, value) in map {
                    let Some(text) = value.as_str() else {
                        if value.is_null() {
                            continue;
                        }
                        return Err(AgentError::invalid_params(format!(
                            "Image 'proxies' entry '{key}' must be a string."
                        )));
                    };
                    if text.trim().is_empty() {
                        continue;
                    }
                    match key.as_str() {
                        "http" => settings.http = Some(proxy_url(key, text)?),
                        "https" => settings.https = Some(proxy_url(key, text)?),
                        other => {
                            tracing::warn!(key = %other, "ignoring an image_info proxies entry that is neither http nor https")
                        }
                    }
                }
            }
            Some(_) => {
                return Err(AgentError::invalid_params(
                    "Image 'proxies' must be a dictionary of scheme to proxy URL.",
                ))
            }
        }
        settings.no_proxy = match no_proxy {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()).filter(|s| !s.trim().is_empty()),
            Some(_) => {
                return Err(AgentError::invalid_params(
                    "Image 'no_proxy' must be a comma-separated string.",
                ))
            }
        };
        Ok(settings)
    }

    /// Fills what `image_info` left unset from the agent's environment, as
    /// python-requests does: `https_proxy`/`http_proxy`, then `all_proxy`, then
    /// `no_proxy`. Lower-case names win. Unusable environment values are ignored
    /// with a warning (they are not the conductor's input).
    pub fn with_environment(mut self, env: impl Fn(&str) -> Option<String>) -> Self {
        let read = |name: &str| {
            env(name)
                .or_else(|| env(&name.to_ascii_uppercase()))
                .filter(|v| !v.trim().is_empty())
        };
        for (scheme, slot) in [("http", &mut self.http), ("https", &mut self.https)] {
            if slot.is_some() {
                continue;
            }
            let name = format!("{scheme}_proxy");
            if let Some(value) = read(&name).or_else(|| read("all_proxy")) {
                match proxy_url(&name, &value) {
                    Ok(url) => *slot = Some(url),
                    Err(err) => {
                        tracing::warn!(variable = %name, error = %err.details, "ignoring the environment's proxy")
                    }
                }
            }
        }
        if self.no_proxy.is_none() {
            self.no_proxy = read("no_proxy");
        }
        self
    }

    /// Whether any proxy is set.
    pub fn any(&self) -> bool {
        self.http.is_some() || self.https.is_some()
    }

    /// The reqwest proxies for these settings, each with `no_proxy` applied.
    pub fn to_reqwest(&self) -> Result<Vec<reqwest::Proxy>, reqwest::Error> {
        let no_proxy = || {
            self.no_proxy
                .as_deref()
                .and_then(reqwest::NoProxy::from_string)
        };
        let mut proxies = Vec::new();
        if let Some(url) = &self.http {
            proxies.push(reqwest::Proxy::http(url.as_str())?.no_proxy(no_proxy()));
        }
        if let Some(url) = &self.https {
            proxies.push(reqwest::Proxy::https(url.as_str())?.no_proxy(no_proxy()));
        }
        Ok(proxies)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(proxies: Value, no_proxy: Value) -> Result<ProxySettings, AgentError> {
        ProxySettings::from_image_info(Some(&proxies), Some(&no_proxy))
    }

    #[test]
    fn reads_ironic_proxies_and_no_proxy() {
        let s = parse(
            json!({"http": "http://proxy:3128", "https": "https://u:p@proxy:3129/"}),
            json!(".example.com,10.0.0.0/8"),
        )
        .unwrap();
        assert_eq!(s.http.as_ref().unwrap().as_str(), "http://proxy:3128/");
        assert_eq!(s.https.as_ref().unwrap().password(), Some("p"));
        assert_eq!(s.no_proxy.as_deref(), Some(".example.com,10.0.0.0/8"));
        assert!(s.any());
        assert_eq!(s.to_reqwest().unwrap().len(), 2);
    }

    #[test]
    fn absent_or_empty_values_mean_no_proxy() {
        let s = parse(json!({"http": "", "https": null}), json!("")).unwrap();
        assert_eq!(s, ProxySettings::default());
        let s = ProxySettings::from_image_info(None, None).unwrap();
        assert!(!s.any());
    }

    #[test]
    fn malformed_proxies_are_400_with_the_offending_key() {
        for (proxies, no_proxy, needle) in [
            (json!(["http://p:1"]), json!(null), "dictionary"),
            (
                json!({"http": 3128}),
                json!(null),
                "'http' must be a string",
            ),
            (
                json!({"http": "not a url"}),
                json!(null),
                "'http' is not a URL",
            ),
            (
                json!({"https": "socks5://p:1080"}),
                json!(null),
                "http:// or https://",
            ),
            (json!({"http": "http://p:1"}), json!(["a"]), "no_proxy"),
        ] {
            let err = parse(proxies, no_proxy).unwrap_err();
            assert_eq!(err.code, 400);
            assert!(err.details.contains(needle), "{needle}: {}", err.details);
        }
    }

    #[test]
    fn debug_output_never_shows_proxy_credentials() {
        let s = parse(
            json!({"https": "http://user:s3cret@proxy:3128"}),
            json!(null),
        )
        .unwrap();
        let shown = format!("{s:?}");
        assert!(
            !shown.contains("s3cret") && !shown.contains("user"),
            "{shown}"
        );
        assert!(shown.contains("http://proxy:3128"), "{shown}");
    }

    #[test]
    fn environment_fills_only_what_image_info_left_unset() {
        let env = |name: &str| match name {
            "https_proxy" => Some("http://env-https:1".to_string()),
            "HTTP_PROXY" => Some("http://env-http:2".to_string()),
            "http_proxy" => None,
            "NO_PROXY" => Some("internal".to_string()),
            _ => None,
        };
        let s = parse(json!({"http": "http://given:3"}), json!(null))
            .unwrap()
            .with_environment(env);
        assert_eq!(s.http.unwrap().host_str(), Some("given"));
        assert_eq!(s.https.unwrap().host_str(), Some("env-https"));
        assert_eq!(s.no_proxy.as_deref(), Some("internal"));

        let s = ProxySettings::default().with_environment(env);
        assert_eq!(
            s.http.unwrap().host_str(),
            Some("env-http"),
            "upper case is the fallback"
        );
    }

    #[test]
    fn all_proxy_is_the_last_fallback_and_bad_environment_values_are_ignored() {
        let env = |name: &str| match name {
            "all_proxy" => Some("http://everything:9".to_string()),
            "https_proxy" => Some("ftp://nope".to_string()),
            "no_proxy" => Some("a".to_string()),
            _ => None,
        };
        let s = parse(json!(null), json!("given"))
            .unwrap()
            .with_environment(env);
        assert_eq!(s.http.unwrap().host_str(), Some("everything"));
        assert!(
            s.https.is_none(),
            "an unusable https_proxy is ignored, not replaced"
        );
        assert_eq!(s.no_proxy.as_deref(), Some("given"));
    }
}

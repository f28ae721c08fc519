//! Proxies for image and checksum downloads (`image_info.proxies` and `no_proxy`, which
//! Ironic fills from the node's `image_http_proxy`, `image_https_proxy` and
//! `image_no_proxy`).
//!
//! - `http://` URLs use the `http` proxy (absolute-form requests), `https://` URLs the
//!   `https` proxy (a CONNECT tunnel); a proxy URL may carry basic-auth credentials and
//!   may omit its scheme (`proxy:3128` is `http://proxy:3128`), as Ironic allows.
//! - As IPA (python-requests), a scheme `image_info` names no proxy for falls back to the
//!   agent's environment (`https_proxy`, `http_proxy`, `all_proxy`, lower case first).
//! - `no_proxy` entries are `*`, host names, domains (`.example.com` or `example.com`,
//!   both covering subdomains), IP addresses and CIDR blocks, each with an optional
//!   `:port`. Unlike python-requests, they also bypass the proxies `image_info` names:
//!   Ironic documents `image_no_proxy` as the hosts that are never proxied.

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
    // Ironic accepts a proxy without a scheme ("proxy:3128"); like python-requests,
    // that means http://.
    let value = value.trim();
    let url = if value.contains("://") {
        Url::parse(value)
    } else {
        Url::parse(&format!("http://{value}"))
    }
    .map_err(|_| invalid("is not a URL"))?;
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

    /// The proxy for one request URL: the one of its scheme, unless `no_proxy` names
    /// its host.
    pub fn proxy_for(&self, url: &Url) -> Option<&Url> {
        let proxy = match url.scheme() {
            "http" => self.http.as_ref(),
            "https" => self.https.as_ref(),
            _ => None,
        }?;
        let bypass = self
            .no_proxy
            .as_deref()
            .is_some_and(|list| list.split(',').any(|entry| no_proxy_matches(entry, url)));
        (!bypass).then_some(proxy)
    }

    /// The reqwest proxy for these settings ([`Self::proxy_for`] per request).
    pub fn to_reqwest(&self) -> Option<reqwest::Proxy> {
        if !self.any() {
            return None;
        }
        let settings = self.clone();
        Some(reqwest::Proxy::custom(move |url| {
            settings.proxy_for(url).cloned()
        }))
    }
}

/// Whether one `no_proxy` entry names the host (and port) of `url`. Entries are `*`,
/// an IP address or CIDR block, or a host or domain name (`.example.com` and
/// `example.com` both cover the subdomains), each with an optional `:port`.
fn no_proxy_matches(entry: &str, url: &Url) -> bool {
    let entry = entry.trim();
    if entry.is_empty() {
        return false;
    }
    if entry == "*" {
        return true;
    }
    let Some(host) = url.host() else {
        return false;
    };
    let port = url.port_or_known_default();
    // A port: "host:port", "[v6]:port"; a bare IPv6 address has colons of its own.
    let (name, wanted_port) = match entry.rsplit_once(':') {
        Some((name, p)) if !name.contains(':') || name.ends_with(']') => match p.parse::<u16>() {
            Ok(p) => (name, Some(p)),
            Err(_) => (entry, None),
        },
        _ => (entry, None),
    };
    if wanted_port.is_some_and(|p| Some(p) != port) {
        return false;
    }
    let name = name.trim_start_matches('[').trim_end_matches(']');
    match host {
        url::Host::Ipv4(ip) => ip_matches(name, ip.into()),
        url::Host::Ipv6(ip) => ip_matches(name, ip.into()),
        url::Host::Domain(domain) => domain_matches(name, domain),
    }
}

/// Whether a `no_proxy` name (an address or a CIDR block) covers `ip`.
fn ip_matches(name: &str, ip: std::net::IpAddr) -> bool {
    match name.parse::<ipnet::IpNet>() {
        Ok(net) => net.contains(&ip),
        Err(_) => name.parse::<std::net::IpAddr>().is_ok_and(|n| n == ip),
    }
}

/// Whether a `no_proxy` host or domain name covers `domain` (itself or a subdomain,
/// at a label boundary; a leading `.` or `*.` means the same).
fn domain_matches(name: &str, domain: &str) -> bool {
    let domain = domain.trim_end_matches('.').to_ascii_lowercase();
    let name = name
        .trim_start_matches("*.")
        .trim_start_matches('.')
        .trim_end_matches('.')
        .to_ascii_lowercase();
    !name.is_empty()
        && (domain == name
            || domain
                .strip_suffix(name.as_str())
                .is_some_and(|rest| rest.ends_with('.')))
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
        assert!(s.to_reqwest().is_some());
        assert!(ProxySettings::default().to_reqwest().is_none());
    }

    fn proxy_for<'a>(s: &'a ProxySettings, url: &str) -> Option<&'a str> {
        let url = Url::parse(url).unwrap();
        s.proxy_for(&url).map(|p| p.host_str().unwrap_or(""))
    }

    #[test]
    fn each_scheme_uses_its_own_proxy() {
        let s = parse(
            json!({"http": "http://web:1", "https": "http://tls:2"}),
            json!(null),
        )
        .unwrap();
        assert_eq!(proxy_for(&s, "http://images/a.raw"), Some("web"));
        assert_eq!(proxy_for(&s, "https://images/a.raw"), Some("tls"));
        let only_http = parse(json!({"http": "http://web:1"}), json!(null)).unwrap();
        assert_eq!(proxy_for(&only_http, "https://images/a.raw"), None);
    }

    #[test]
    fn scheme_less_proxies_are_http_as_ironic_allows() {
        let s = parse(
            json!({"https": "10.0.0.1:3128", "http": "proxy.lab:8080"}),
            json!(null),
        )
        .unwrap();
        assert_eq!(s.https.as_ref().unwrap().as_str(), "http://10.0.0.1:3128/");
        assert_eq!(s.http.as_ref().unwrap().port(), Some(8080));
    }

    #[test]
    fn no_proxy_matches_hosts_domains_addresses_blocks_and_ports() {
        let s = parse(
            json!({"http": "http://p:1", "https": "http://p:1"}),
            json!(
                " .lab.example, exact.host ,10.1.0.0/16,192.0.2.7, images.local:8080,[fd00::1]:443"
            ),
        )
        .unwrap();
        for direct in [
            "http://a.lab.example/x",
            "http://lab.example/x",
            "http://EXACT.host/x",
            "http://sub.exact.host/x",
            "http://10.1.200.3/x",
            "http://192.0.2.7:81/x",
            "http://images.local:8080/x",
            "https://[fd00::1]/x",
        ] {
            assert_eq!(
                proxy_for(&s, direct),
                None,
                "{direct} must bypass the proxy"
            );
        }
        for proxied in [
            "http://notlab.example/x",
            "http://exact.host.evil/x",
            "http://10.2.0.1/x",
            "http://192.0.2.70/x",
            "http://images.local/x",
            "http://images.local:8081/x",
            "http://[fd00::1]:8443/x",
            "http://other/x",
        ] {
            assert_eq!(
                proxy_for(&s, proxied),
                Some("p"),
                "{proxied} must use the proxy"
            );
        }
        let all = parse(json!({"http": "http://p:1"}), json!("*")).unwrap();
        assert_eq!(proxy_for(&all, "http://anything/x"), None);
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

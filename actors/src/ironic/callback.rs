//! The callback URL sent in heartbeats and how the advertise address is found
//! (`ipa-protocol.md` §6.3).

use std::net::{IpAddr, SocketAddr, UdpSocket};

/// `<protocol>://<host>:<port>`, an IPv6 host in brackets, no path, no trailing `/`.
pub fn callback_url(protocol: &str, host: &str, port: u16) -> String {
    format!("{protocol}://{}:{port}", bracket_host(host))
}

/// `host` as it goes into a URL: an IPv6 literal gets brackets (once).
pub fn bracket_host(host: &str) -> String {
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    if bare.parse::<std::net::Ipv6Addr>().is_ok() {
        format!("[{bare}]")
    } else {
        host.to_string()
    }
}

/// Whether `ip` can be advertised: not link-local, loopback-or-routable, specified.
pub fn is_advertisable(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => !v4.is_unspecified() && !v4.is_link_local(),
        IpAddr::V6(v6) => !v6.is_unspecified() && (v6.segments()[0] & 0xffc0) != 0xfe80,
    }
}

/// The host and port of an `http(s)://` URL (default ports 80/443).
pub fn url_host_port(url: &str) -> Option<(String, u16)> {
    let parsed = url::Url::parse(url).ok()?;
    let host = match parsed.host()? {
        url::Host::Domain(name) => name.to_string(),
        url::Host::Ipv4(ip) => ip.to_string(),
        url::Host::Ipv6(ip) => ip.to_string(),
    };
    Some((host, parsed.port_or_known_default()?))
}

/// The source address the kernel routes from towards `target` (what `ip route get`
/// prints as `src`): a connected UDP socket sends nothing but has a local address.
pub fn route_source(target: SocketAddr) -> std::io::Result<IpAddr> {
    let bind: SocketAddr = match target {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(bind)?;
    socket.connect(target)?;
    Ok(socket.local_addr()?.ip())
}

/// The advertisable source address towards the first API URL that resolves, or `None`.
/// Resolves names with the system resolver (blocking: call it off the actor threads or
/// accept a short block during start-up).
pub async fn detect_advertise_ip(api_urls: &[String]) -> Option<IpAddr> {
    for url in api_urls {
        let Some((host, port)) = url_host_port(url) else {
            continue;
        };
        let Ok(addrs) = tokio::net::lookup_host((host.as_str(), port)).await else {
            tracing::debug!(%url, "cannot resolve the API host");
            continue;
        };
        for addr in addrs {
            match route_source(addr) {
                Ok(ip) if is_advertisable(ip) => return Some(ip),
                Ok(ip) => tracing::debug!(%ip, %url, "ignoring a non-advertisable source address"),
                Err(err) => tracing::debug!(%url, error = %err, "no route to the API host"),
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_url_brackets_ipv6_only() {
        assert_eq!(
            callback_url("http", "192.0.2.10", 9999),
            "http://192.0.2.10:9999"
        );
        assert_eq!(
            callback_url("https", "fd00::5", 9999),
            "https://[fd00::5]:9999"
        );
        assert_eq!(
            callback_url("https", "[fd00::5]", 9998),
            "https://[fd00::5]:9998"
        );
        assert_eq!(
            callback_url("http", "agent.example.org", 80),
            "http://agent.example.org:80"
        );
    }

    #[test]
    fn link_local_and_unspecified_are_not_advertised() {
        assert!(!is_advertisable("169.254.1.2".parse().expect("ip")));
        assert!(!is_advertisable("fe80::1".parse().expect("ip")));
        assert!(!is_advertisable("0.0.0.0".parse().expect("ip")));
        assert!(!is_advertisable("::".parse().expect("ip")));
        assert!(is_advertisable("127.0.0.1".parse().expect("ip")));
        assert!(is_advertisable("fd00::5".parse().expect("ip")));
        assert!(is_advertisable("10.1.2.3".parse().expect("ip")));
    }

    #[test]
    fn url_host_port_handles_ipv6_and_default_ports() {
        assert_eq!(
            url_host_port("http://[fd00::1]:6385"),
            Some(("fd00::1".into(), 6385))
        );
        assert_eq!(
            url_host_port("https://ironic.example"),
            Some(("ironic.example".into(), 443))
        );
        assert_eq!(url_host_port("mdns"), None);
    }

    #[actix_rt::test]
    async fn detects_loopback_source_towards_loopback_api() {
        let ip = detect_advertise_ip(&["http://127.0.0.1:6385".to_string()]).await;
        assert_eq!(ip, Some("127.0.0.1".parse().expect("ip")));
        assert_eq!(detect_advertise_ip(&["mdns".to_string()]).await, None);
    }
}

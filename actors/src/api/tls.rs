//! The API's TLS server configuration (spec §2.1): rustls with the ring provider, TLS 1.2
//! and 1.3 (or 1.3 only), and IPA's TLS 1.2 cipher list. rustls never speaks TLS 1.0 or
//! 1.1, so those handshakes fail.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{ring, CryptoProvider};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedCipherSuite};

use super::actor::TlsFiles;
use crate::config::{AgentConfig, TlsVersion};

/// IPA's default TLS 1.2 cipher list (OpenSSL names).
pub const IPA_TLS12_CIPHERS: &str = "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-ECDSA-AES128-GCM-SHA256:\
     ECDHE-RSA-AES256-GCM-SHA384:ECDHE-RSA-AES128-GCM-SHA256";

/// The static certificate files, when the configuration asks for static TLS: `listen_tls`,
/// or both `tls_cert_file` and `tls_key_file` set (IPA turns TLS on in either case).
pub fn static_tls_files(config: &AgentConfig) -> Result<Option<TlsFiles>, String> {
    match (&config.tls_cert_file, &config.tls_key_file) {
        (Some(cert), Some(key)) => Ok(Some(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })),
        _ if config.listen_tls => {
            Err("listen_tls is set but tls_cert_file and tls_key_file are not both set".into())
        }
        _ => Ok(None),
    }
}

/// The rustls suite for one cipher name (OpenSSL or IANA spelling); `None` if unknown.
/// TLS 1.3 suite names are accepted and mean nothing here: TLS 1.3 always offers all.
fn tls12_suite(name: &str) -> Option<Option<SupportedCipherSuite>> {
    use ring::cipher_suite as cs;
    let suite = match name {
        "ECDHE-ECDSA-AES256-GCM-SHA384" | "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        }
        "ECDHE-ECDSA-AES128-GCM-SHA256" | "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        }
        "ECDHE-RSA-AES256-GCM-SHA384" | "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => {
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
        }
        "ECDHE-RSA-AES128-GCM-SHA256" | "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
        }
        "ECDHE-ECDSA-CHACHA20-POLY1305" | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "ECDHE-RSA-CHACHA20-POLY1305" | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
        }
        "TLS_AES_256_GCM_SHA384" | "TLS_AES_128_GCM_SHA256" | "TLS_CHACHA20_POLY1305_SHA256" => {
            return Some(None)
        }
        _ => return None,
    };
    Some(Some(suite))
}

/// The TLS 1.2 suites of an OpenSSL-style cipher list (`:`, `,` or space separated), in
/// its order. Unknown names are skipped with a warning, as OpenSSL skips them; a list
/// with no usable suite is an error.
pub fn tls12_suites(list: &str) -> Result<Vec<SupportedCipherSuite>, String> {
    let mut suites = Vec::new();
    for name in list
        .split([':', ',', ' '])
        .map(str::trim)
        .filter(|name| !name.is_empty())
    {
        match tls12_suite(name) {
            Some(Some(suite)) if !suites.contains(&suite) => suites.push(suite),
            Some(_) => {}
            None => tracing::warn!(cipher = name, "ignoring unsupported TLS cipher"),
        }
    }
    if suites.is_empty() {
        return Err(format!("no supported TLS 1.2 cipher in {list:?}"));
    }
    Ok(suites)
}

/// The crypto provider: ring, TLS 1.3 suites, then the chosen TLS 1.2 suites.
fn provider(min_version: TlsVersion, cipher_list: Option<&str>) -> Result<CryptoProvider, String> {
    let base = ring::default_provider();
    let mut suites: Vec<SupportedCipherSuite> = base
        .cipher_suites
        .iter()
        .copied()
        .filter(|suite| suite.version() == &rustls::version::TLS13)
        .collect();
    if min_version == TlsVersion::V1_2 {
        suites.extend(tls12_suites(cipher_list.unwrap_or(IPA_TLS12_CIPHERS))?);
    }
    Ok(CryptoProvider {
        cipher_suites: suites,
        ..base
    })
}

fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    let certs = rustls_pemfile::certs(&mut pem.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| format!("parsing {}: {err}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", path.display()));
    }
    Ok(certs)
}

fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    let pem = std::fs::read(path).map_err(|err| format!("reading {}: {err}", path.display()))?;
    rustls_pemfile::private_key(&mut pem.as_slice())
        .map_err(|err| format!("parsing {}: {err}", path.display()))?
        .ok_or_else(|| format!("no private key in {}", path.display()))
}

/// Builds the server configuration from the PEM files.
pub fn server_config(
    files: &TlsFiles,
    min_version: TlsVersion,
    cipher_list: Option<&str>,
) -> Result<ServerConfig, String> {
    let certs = load_certs(&files.cert)?;
    let key = load_key(&files.key)?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = match min_version {
        TlsVersion::V1_2 => &[&rustls::version::TLS13, &rustls::version::TLS12],
        TlsVersion::V1_3 => &[&rustls::version::TLS13],
    };
    let mut config =
        ServerConfig::builder_with_provider(Arc::new(provider(min_version, cipher_list)?))
            .with_protocol_versions(versions)
            .map_err(|err| format!("TLS versions: {err}"))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|err| format!("TLS certificate/key: {err}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn ipa_cipher_list_maps_to_four_gcm_suites() {
        let suites = tls12_suites(IPA_TLS12_CIPHERS).expect("IPA's list is supported");
        let names: Vec<String> = suites
            .iter()
            .map(|suite| format!("{:?}", suite.suite()))
            .collect();
        assert_eq!(
            names,
            [
                "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384",
                "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
            ]
        );
    }

    #[test]
    fn unknown_ciphers_are_skipped_and_empty_lists_rejected() {
        let suites =
            tls12_suites("AES128-SHA:ECDHE-RSA-CHACHA20-POLY1305,RC4").expect("one usable");
        assert_eq!(suites.len(), 1);
        assert!(tls12_suites("AES128-SHA:DES-CBC3-SHA").is_err());
        assert!(tls12_suites("TLS_AES_128_GCM_SHA256").is_err());
        assert!(tls12_suites("").is_err());
    }

    #[test]
    fn provider_honours_min_version() {
        let only13 = provider(TlsVersion::V1_3, Some("garbage")).expect("1.3 ignores the list");
        assert!(only13
            .cipher_suites
            .iter()
            .all(|suite| suite.version() == &rustls::version::TLS13));
        let both = provider(TlsVersion::V1_2, None).expect("defaults");
        assert_eq!(
            both.cipher_suites
                .iter()
                .filter(|suite| suite.version() == &rustls::version::TLS12)
                .count(),
            4
        );
    }

    fn write_pair(dir: &Path) -> TlsFiles {
        let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string()])
            .expect("generate a certificate");
        let files = TlsFiles {
            cert: dir.join("agent.crt"),
            key: dir.join("agent.key"),
        };
        std::fs::write(&files.cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&files.key, certified.key_pair.serialize_pem()).expect("write key");
        files
    }

    #[test]
    fn server_config_loads_pem_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path());
        server_config(&files, TlsVersion::V1_2, None).expect("valid config");
        server_config(&files, TlsVersion::V1_3, None).expect("valid 1.3 config");
    }

    #[test]
    fn bad_files_give_clear_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = write_pair(dir.path());
        let missing = TlsFiles {
            cert: PathBuf::from("/nonexistent/agent.crt"),
            key: files.key.clone(),
        };
        let err = server_config(&missing, TlsVersion::V1_2, None).expect_err("missing cert");
        assert!(err.contains("/nonexistent/agent.crt"), "{err}");
        let swapped = TlsFiles {
            cert: files.key.clone(),
            key: files.cert.clone(),
        };
        assert!(server_config(&swapped, TlsVersion::V1_2, None).is_err());
    }

    #[test]
    fn static_tls_needs_both_files() {
        let mut config = AgentConfig::default();
        assert_eq!(static_tls_files(&config), Ok(None));
        config.listen_tls = true;
        assert!(static_tls_files(&config).is_err());
        config.tls_cert_file = Some(PathBuf::from("/c.pem"));
        config.tls_key_file = Some(PathBuf::from("/k.pem"));
        assert!(static_tls_files(&config).expect("both set").is_some());
        config.listen_tls = false;
        assert!(static_tls_files(&config).expect("both set").is_some());
    }
}

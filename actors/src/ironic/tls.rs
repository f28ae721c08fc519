//! Auto-TLS: the self-signed certificate the API serves when Ironic supports
//! `agent_verify_ca` (API ≥ 1.68; `ipa-protocol.md` §2.1).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{CertificateParams, CustomExtension, DistinguishedName, DnType, KeyPair};

use crate::api::TlsFiles;
use crate::config::TlsCurve;

/// The certificate's file name in the state directory.
pub const CERT_FILE: &str = "agent.crt";
/// The key's file name in the state directory.
pub const KEY_FILE: &str = "agent.key";
/// How long the certificate is valid after now.
pub const VALIDITY: Duration = Duration::from_secs(30 * 24 * 3600);

/// A generated certificate, PEM encoded.
#[derive(Clone)]
pub struct GeneratedCert {
    /// The certificate, PEM; sent as `agent_verify_ca`.
    pub cert_pem: String,
    /// The private key, PKCS#8 PEM.
    pub key_pem: String,
}

impl std::fmt::Debug for GeneratedCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedCert")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &"***")
            .finish()
    }
}

/// Why no certificate could be made or stored.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// rcgen refused.
    #[error("generating the TLS certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// Writing the files failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The DER of a SubjectAltName value holding one `iPAddress`.
fn san_ip_der(ip: IpAddr) -> Vec<u8> {
    let octets = match ip {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    // GeneralNames ::= SEQUENCE { [7] IMPLICIT OCTET STRING }
    let mut inner = vec![0x87, octets.len() as u8];
    inner.extend_from_slice(&octets);
    let mut der = vec![0x30, inner.len() as u8];
    der.extend_from_slice(&inner);
    der
}

fn algorithm(curve: TlsCurve) -> &'static rcgen::SignatureAlgorithm {
    match curve {
        TlsCurve::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
        TlsCurve::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        TlsCurve::P521 => {
            // ring cannot sign with P-521; P-384 is IPA's default anyway.
            tracing::warn!("tls_certificate_curve p521 is not supported, using p384");
            &rcgen::PKCS_ECDSA_P384_SHA384
        }
    }
}

/// A self-signed ECDSA certificate: CN = `hostname`, a critical SAN with `ip`, valid
/// from now − `clock_skew` to now + 30 days.
pub fn generate(
    hostname: &str,
    ip: IpAddr,
    curve: TlsCurve,
    clock_skew: Duration,
) -> Result<GeneratedCert, TlsError> {
    let key = KeyPair::generate_for(algorithm(curve))?;
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, hostname);
    params.distinguished_name = name;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::seconds(clock_skew.as_secs() as i64);
    params.not_after = now + time::Duration::seconds(VALIDITY.as_secs() as i64);
    let mut san = CustomExtension::from_oid_content(&[2, 5, 29, 17], san_ip_der(ip));
    san.set_criticality(true);
    params.custom_extensions.push(san);
    let cert = params.self_signed(&key)?;
    Ok(GeneratedCert {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    })
}

fn write_private(path: &Path, contents: &str) -> Result<(), TlsError> {
    let wrap = |source| TlsError::Write {
        path: path.to_path_buf(),
        source,
    };
    // Replace, never append to, an older file; keep the mode 0600 from the start.
    let _ = std::fs::remove_file(path);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(wrap)?;
    file.write_all(contents.as_bytes()).map_err(wrap)?;
    file.sync_all().map_err(wrap)
}

/// Writes `agent.crt` and `agent.key` (mode 0600) into `state_dir`, creating it.
pub fn write_files(state_dir: &Path, cert: &GeneratedCert) -> Result<TlsFiles, TlsError> {
    std::fs::create_dir_all(state_dir).map_err(|source| TlsError::Write {
        path: state_dir.to_path_buf(),
        source,
    })?;
    let files = TlsFiles {
        cert: state_dir.join(CERT_FILE),
        key: state_dir.join(KEY_FILE),
    };
    write_private(&files.key, &cert.key_pem)?;
    write_private(&files.cert, &cert.cert_pem)?;
    Ok(files)
}

/// This machine's host name (`<proc_root>/sys/kernel/hostname`), or `localhost`.
pub fn hostname(proc_root: &Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/hostname"))
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use x509_parser::prelude::*;

    fn parse(pem: &str) -> Vec<u8> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(pem.as_bytes()).expect("pem");
        pem.contents
    }

    #[test]
    fn certificate_is_p384_with_critical_ip_san_and_ipa_validity() {
        let ip: IpAddr = "192.0.2.10".parse().expect("ip");
        let before = ::time::OffsetDateTime::now_utc();
        let generated =
            generate("agent-host", ip, TlsCurve::P384, Duration::from_secs(3600)).expect("cert");
        let der = parse(&generated.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).expect("der");

        let cn: Vec<&str> = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .collect();
        assert_eq!(cn, ["agent-host"]);
        assert_eq!(cert.subject(), cert.issuer(), "self-signed");

        let spki = cert.public_key();
        assert_eq!(
            spki.algorithm.algorithm,
            x509_parser::oid_registry::OID_KEY_TYPE_EC_PUBLIC_KEY
        );
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .expect("curve oid");
        assert_eq!(curve, x509_parser::oid_registry::OID_NIST_EC_P384);

        let san = cert
            .get_extension_unique(&x509_parser::oid_registry::OID_X509_EXT_SUBJECT_ALT_NAME)
            .expect("unique")
            .expect("SAN present");
        assert!(san.critical, "SAN must be critical");
        let ParsedExtension::SubjectAlternativeName(names) = san.parsed_extension() else {
            panic!("SAN not parsed");
        };
        assert_eq!(
            names.general_names,
            vec![GeneralName::IPAddress(&[192, 0, 2, 10])]
        );

        let not_before = cert.validity().not_before.timestamp();
        let not_after = cert.validity().not_after.timestamp();
        let now = before.unix_timestamp();
        assert!(
            (not_before - (now - 3600)).abs() <= 5,
            "{not_before} vs {now}"
        );
        assert!(
            (not_after - (now + 30 * 24 * 3600)).abs() <= 5,
            "{not_after} vs {now}"
        );

        // The key parses and belongs to the certificate.
        let key = KeyPair::from_pem(&generated.key_pem).expect("key pem");
        assert_eq!(key.public_key_raw(), spki.subject_public_key.data.as_ref());
    }

    #[test]
    fn ipv6_san_and_p256_curve() {
        let ip: IpAddr = "fd00::5".parse().expect("ip");
        let generated = generate("h", ip, TlsCurve::P256, Duration::ZERO).expect("cert");
        let der = parse(&generated.cert_pem);
        let (_, cert) = X509Certificate::from_der(&der).expect("der");
        let curve = cert
            .public_key()
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok())
            .expect("curve oid");
        assert_eq!(curve, x509_parser::oid_registry::OID_EC_P256);
        let san = cert
            .subject_alternative_name()
            .expect("unique")
            .expect("SAN");
        let octets = match ip {
            IpAddr::V6(v6) => v6.octets(),
            IpAddr::V4(_) => unreachable!(),
        };
        assert_eq!(
            san.value.general_names,
            vec![GeneralName::IPAddress(&octets)]
        );
    }

    #[test]
    fn files_are_written_0600_into_the_state_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("run/ironic-agent");
        let generated = generate(
            "h",
            "127.0.0.1".parse().expect("ip"),
            TlsCurve::P384,
            Duration::ZERO,
        )
        .expect("cert");
        let files = write_files(&state, &generated).expect("written");
        assert_eq!(files.cert, state.join("agent.crt"));
        assert_eq!(files.key, state.join("agent.key"));
        for path in [&files.cert, &files.key] {
            let mode = std::fs::metadata(path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{}", path.display());
        }
        assert_eq!(
            std::fs::read_to_string(&files.cert).expect("read"),
            generated.cert_pem
        );
        // Rewriting replaces the files.
        let again = write_files(&state, &generated).expect("rewritten");
        assert_eq!(again, files);
    }

    #[test]
    fn hostname_falls_back_to_localhost() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert_eq!(hostname(dir.path()), "localhost");
        std::fs::create_dir_all(dir.path().join("sys/kernel")).expect("mkdir");
        std::fs::write(dir.path().join("sys/kernel/hostname"), "node-1\n").expect("write");
        assert_eq!(hostname(dir.path()), "node-1");
    }
}

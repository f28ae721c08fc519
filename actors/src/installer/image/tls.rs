//! TLS for image downloads: the system CA bundle plus `cafile`, or no
//! verification at all when `insecure` is set (IPA's `insecure` option).

use std::path::Path;
use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

use crate::tls_client::{system_ca_bundle, AcceptAnyServerCert};

/// Adds the certificates of a PEM file; unparsable entries are skipped.
fn add_pem(roots: &mut RootCertStore, path: &Path) -> Result<(), String> {
    let pem = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    for cert in rustls_pemfile::certs(&mut pem.as_slice()).flatten() {
        let _ = roots.add(cert);
    }
    Ok(())
}

/// The client configuration for image and checksum downloads.
pub fn client_config(cafile: Option<&Path>, insecure: bool) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let mut config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyServerCert(provider)))
            .with_no_client_auth()
    } else {
        let mut roots = RootCertStore::empty();
        if let Some(bundle) = system_ca_bundle() {
            add_pem(&mut roots, bundle)?;
        }
        if let Some(cafile) = cafile {
            add_pem(&mut roots, cafile)?;
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_verifying_and_insecure_configs() {
        assert!(client_config(None, false).is_ok());
        assert!(client_config(None, true).is_ok());
        assert!(client_config(Some(Path::new("/nonexistent/ca.pem")), false).is_err());
    }
}

//! TLS client settings for the QUIC link to the edge, and the trust-root loading that upstream
//! verification shares.

use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

/// Why the trust roots could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A CA file (`--edge-ca`, `--upstream-tls-verify-cas`) could not be read.
    #[error("CA file {path}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file held no certificate.
    #[error("CA file {0}: no PEM certificate found")]
    Empty(String),
    /// rustls refused the configuration.
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Trust roots: the PEM certificates in `ca_file`, or the system's roots when `None`.
pub(crate) fn roots(ca_file: Option<&Path>) -> Result<rustls::RootCertStore, TlsError> {
    let mut store = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let shown = path.display().to_string();
            let pem = std::fs::read(path).map_err(|source| TlsError::Read {
                path: shown.clone(),
                source,
            })?;
            let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
                .collect::<Result<_, _>>()
                .map_err(|source| TlsError::Read {
                    path: shown.clone(),
                    source,
                })?;
            if certs.is_empty() {
                return Err(TlsError::Empty(shown));
            }
            for cert in certs {
                store.add(cert)?;
            }
        }
        None => {
            // Unreadable system certificates are skipped; an empty store fails the handshake
            // with a clear "unknown issuer" error.
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = store.add(cert);
            }
        }
    }
    Ok(store)
}

/// rustls client config for the edge link: TLS 1.3, Sluice's ALPN, trusting `edge_ca` or the
/// system roots. 0-RTT stays off so the authtoken is never sent in replayable early data.
pub fn client_config(edge_ca: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(roots(edge_ca)?)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![sluice_proto::ALPN.to_vec()];
    cfg.enable_early_data = false;
    Ok(Arc::new(cfg))
}

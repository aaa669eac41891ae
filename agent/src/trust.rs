//! Trust roots for the agent's TLS clients — a PEM CA file, or the system's roots — shared by
//! the link to the edge (`link/tls.rs`) and verified `https://` upstreams
//! (`forward/upstream_tls.rs`).

use rustls::pki_types::CertificateDer;
use std::path::Path;

/// Why a TLS client could not be set up: its trust roots, or rustls refusing the settings.
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

//! terminate-tls on a TLS endpoint: the rustls settings a policy's action asks for (versions,
//! its own certificate or the edge's, mutual TLS), and the facts of the handshake they made.

use super::client_auth::ClientAuthError;
use crate::tls::resolver::CertResolver;
use rustls::server::ServerConnection;
use rustls::sign::SingleCertAndKey;
use rustls::{ServerConfig, SupportedProtocolVersion};
use sluice_policy::{ClientCertificate, TerminateTls, TlsInfo, TlsVersion};
use std::sync::Arc;
use tracing::debug;

/// Why terminate-tls's settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The edge has no certificates (no HTTPS listener) and the action names none.
    #[error("no server_certificate, and the edge has no certificates of its own")]
    NoCertificate,
    /// A `mutual_tls_certificate_authorities` entry rustls refuses, or no authority for a
    /// strategy that verifies.
    #[error("mutual TLS: {0}")]
    ClientAuth(#[from] ClientAuthError),
    /// rustls refused the versions.
    #[error(transparent)]
    Rustls(#[from] rustls::Error),
}

/// The server settings `settings` describe; the edge's own certificates (by SNI) unless the
/// action names one. No ALPN: a TLS endpoint's agent speaks what it likes (HTTPS endpoints
/// add theirs).
pub fn server_config(
    settings: &TerminateTls,
    edge_certs: Option<Arc<CertResolver>>,
) -> Result<ServerConfig, SettingsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static SupportedProtocolVersion> = settings
        .versions()
        .into_iter()
        .map(|v| match v {
            TlsVersion::Tls12 => &rustls::version::TLS12,
            TlsVersion::Tls13 => &rustls::version::TLS13,
        })
        .collect();
    let builder =
        ServerConfig::builder_with_provider(provider.clone()).with_protocol_versions(&versions)?;
    let builder = match settings.mutual_tls() {
        None => builder.with_no_client_auth(),
        Some(mtls) => {
            let verifier = super::client_auth::verifier(mtls, provider)?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = match (settings.server_identity(), edge_certs) {
        (Some(identity), _) => {
            builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(identity.certified_key())))
        }
        (None, Some(edge)) => builder.with_cert_resolver(edge),
        (None, None) => return Err(SettingsError::NoCertificate),
    };
    Ok(config)
}

/// What a finished handshake tells policies (`conn.tls.*`) and events.
pub fn facts(conn: &ServerConnection) -> TlsInfo {
    let client_certificate = conn
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| match ClientCertificate::from_der(leaf) {
            Ok(cert) => Some(Arc::new(cert)),
            Err(e) => {
                debug!("client certificate not readable for conn.tls.client.*: {e}");
                None
            }
        });
    TlsInfo {
        version: conn.protocol_version().map(|v| match v {
            rustls::ProtocolVersion::TLSv1_3 => "1.3".to_string(),
            _ => "1.2".to_string(),
        }),
        sni: conn.server_name().map(str::to_string),
        cipher_suite: conn
            .negotiated_cipher_suite()
            .and_then(|s| s.suite().as_str())
            .map(str::to_string),
        negotiated_alpn: conn
            .alpn_protocol()
            .map(|p| String::from_utf8_lossy(p).into_owned()),
        client_certificate,
    }
}

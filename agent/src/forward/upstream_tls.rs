//! TLS to `https://` upstreams. As with ngrok, the upstream's certificate is not verified by
//! default: local apps usually run with self-signed certificates, and the traffic never leaves
//! the machine or the user's network. The handshake signature is still checked, so the session
//! is bound to the key the upstream presented. `--upstream-tls-verify` checks the chain and the
//! name against the system roots, or only against `--upstream-tls-verify-cas`.
//! (Unverified certificates go through [`AnyServerCertificate`].)

use crate::config::endpoint::UpstreamTlsVerify;
use crate::trust::{self, TlsError};
use sluice_proto::key_proof::{AnyServerCertificate, KeyProof};
use std::sync::Arc;

/// rustls client settings for upstream connections: TLS 1.2 and 1.3, the certificate checked
/// as `verify` says. ALPN is left to the connector builder, which offers what it is enabled for.
pub fn client_config(verify: &UpstreamTlsVerify) -> Result<rustls::ClientConfig, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let config = match verify {
        UpstreamTlsVerify::Off => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyServerCertificate(KeyProof::new(
                &provider,
            )))),
        UpstreamTlsVerify::SystemRoots => builder.with_root_certificates(trust::roots(None)?),
        UpstreamTlsVerify::CaFile(path) => {
            builder.with_root_certificates(trust::roots(Some(path))?)
        }
    };
    Ok(config.with_no_client_auth())
}

//! TLS client settings for the link to the edge (QUIC, or TLS over TCP).

use crate::trust::{self, TlsError};
use std::path::Path;
use std::sync::Arc;

/// rustls client config for the edge link: TLS 1.3 only, ALPN `alpn` (QUIC's
/// [`sluice_proto::ALPN`] or TCP's [`sluice_proto::ALPN_TCP`]), trusting `edge_ca` or the
/// system roots. 0-RTT stays off so the authtoken is never sent in replayable early data.
pub fn client_config(
    edge_ca: Option<&Path>,
    alpn: &[u8],
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_root_certificates(trust::roots(edge_ca)?)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![alpn.to_vec()];
    cfg.enable_early_data = false;
    Ok(Arc::new(cfg))
}

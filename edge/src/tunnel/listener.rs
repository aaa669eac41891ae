//! The QUIC listener agents dial: endpoint setup and the accept loop.

use super::session;
use super::state::TunnelState;
use super::unreachable::{ErrorQueue, UnreachableAware};
use crate::certs::TunnelIdentity;
use quinn::crypto::rustls::QuicServerConfig;
use sluice_proto::transport::{transport_config, udp_socket};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch};
use tracing::info;

/// Why the QUIC listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// TLS setup failed (bad key, …).
    #[error("tunnel TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The rustls config is unusable for QUIC.
    #[error("tunnel TLS for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// Binding the UDP socket failed.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Binds the QUIC endpoint with `identity` on `addr`; `endpoint` carries the reset key
/// ([`crate::tunnel::reset_key`]). Agent addresses that become unreachable are sent to
/// `unreachable` by the returned [`ErrorQueue`], once it runs.
pub fn bind(
    addr: SocketAddr,
    identity: &TunnelIdentity,
    endpoint: quinn::EndpointConfig,
    unreachable: mpsc::UnboundedSender<SocketAddr>,
) -> Result<(quinn::Endpoint, ErrorQueue), ListenError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![sluice_proto::ALPN.to_vec()];
    // No 0-RTT: the authtoken travels in the first control message and must never be replayable.
    tls.max_early_data_size = 0;
    let mut server = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    // The agent may open only its control stream (the edge opens the request streams), so a
    // rogue agent cannot park data in streams the edge never reads.
    server.transport_config(Arc::new(transport_config(1)));
    let bind_err = |source| ListenError::Bind { addr, source };
    let (socket, errors) = UnreachableAware::new(udp_socket(addr).map_err(bind_err)?, unreachable)
        .map_err(bind_err)?;
    let endpoint = quinn::Endpoint::new_with_abstract_socket(
        endpoint,
        Some(server),
        Arc::new(socket),
        Arc::new(quinn::TokioRuntime),
    )
    .map_err(bind_err)?;
    Ok((endpoint, errors))
}

/// Accepts agent connections until `shutdown` turns true; each gets its own session task.
pub async fn accept_loop(
    endpoint: quinn::Endpoint,
    state: Arc<TunnelState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    tokio::spawn(session::serve(incoming, state.clone()));
                }
                None => break,
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    info!("agent listener stopped accepting");
}

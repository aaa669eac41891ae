//! The listeners agents dial: QUIC on UDP, and TLS over TCP (HTTP/2 inside) for networks that
//! block UDP; endpoint setup and the accept loops. Both hand each connection to
//! [`session::serve`] as a [`Link`].

use super::session;
use super::state::TunnelState;
use super::unreachable::{ErrorQueue, UnreachableAware};
use crate::certs::TunnelIdentity;
use crate::tls::front::{PassthroughTarget, RawTlsConn};
use futures_util::future::BoxFuture;
use quinn::crypto::rustls::QuicServerConfig;
use sluice_proto::link::tcp::TcpLink;
use sluice_proto::link::{Link, Transport};
use sluice_proto::transport::{transport_config, udp_socket};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;
use tracing::info;

/// Why an agent listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// TLS setup failed (bad key, …).
    #[error("tunnel TLS: {0}")]
    Tls(#[from] rustls::Error),
    /// The rustls config is unusable for QUIC.
    #[error("tunnel TLS for QUIC: {0}")]
    Quic(#[from] quinn::crypto::rustls::NoInitialCipherSuite),
    /// Binding a socket failed.
    #[error("binding {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The tunnel's TLS settings for `alpn`: the tunnel certificate, TLS 1.3 only (both
/// transports; agents pin the same certificate with `--edge-ca`), no 0-RTT: the authtoken
/// travels in the first control message and must never be replayable.
fn tunnel_tls(
    identity: &TunnelIdentity,
    alpn: &[u8],
) -> Result<rustls::ServerConfig, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(identity.chain.clone(), identity.key.clone_key())?;
    tls.alpn_protocols = vec![alpn.to_vec()];
    tls.max_early_data_size = 0;
    Ok(tls)
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
    let tls = tunnel_tls(identity, sluice_proto::ALPN)?;
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

/// The TLS acceptor of agents' TCP links (ALPN [`sluice_proto::ALPN_TCP`]).
pub fn tcp_tls(identity: &TunnelIdentity) -> Result<TlsAcceptor, ListenError> {
    let tls = tunnel_tls(identity, sluice_proto::ALPN_TCP)?;
    Ok(TlsAcceptor::from(Arc::new(tls)))
}

/// The TCP listener's socket on `addr` and its TLS acceptor. Call from within the runtime.
pub fn bind_tcp(
    addr: SocketAddr,
    identity: &TunnelIdentity,
) -> Result<(TcpListener, TlsAcceptor), ListenError> {
    let bind_err = |source| ListenError::Bind { addr, source };
    let socket = std::net::TcpListener::bind(addr).map_err(bind_err)?;
    socket.set_nonblocking(true).map_err(bind_err)?;
    let listener = TcpListener::from_std(socket).map_err(bind_err)?;
    Ok((listener, tcp_tls(identity)?))
}

/// Accepts QUIC agent connections until `shutdown` turns true; each gets its own session task.
pub async fn accept_loop(
    endpoint: quinn::Endpoint,
    state: Arc<TunnelState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            incoming = endpoint.accept() => match incoming {
                Some(incoming) => {
                    let remote = incoming.remote_address();
                    let connecting = async move {
                        incoming.await.map(Link::Quic).map_err(|e| e.to_string())
                    };
                    tokio::spawn(session::serve(connecting, Transport::Quic, remote, state.clone()));
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

/// Accepts agents' TCP connections until `shutdown` turns true; each gets its own session
/// task, which finishes the TLS and HTTP/2 handshakes within the edge's handshake timeout.
pub async fn accept_tcp_loop(
    listener: TcpListener,
    tls: TlsAcceptor,
    state: Arc<TunnelState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, remote)) => {
                    // Request frames are small and latency-bound; the link batches bulk data.
                    let _ = stream.set_nodelay(true);
                    let connecting = tcp_handshake(stream, remote, tls.clone(), state.handshake_timeout);
                    tokio::spawn(session::serve(connecting, Transport::Tcp, remote, state.clone()));
                }
                // Out of file descriptors and the like: wait a moment rather than spin.
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            },
            _ = shutdown.changed() => {
                if *shutdown.borrow() {
                    break;
                }
            }
        }
    }
    info!("agent TCP listener stopped accepting");
}

/// TLS, then HTTP/2 with the edge as the client, on an agent's TCP connection.
async fn tcp_handshake<S>(
    stream: S,
    remote: SocketAddr,
    tls: TlsAcceptor,
    limit: Duration,
) -> Result<Link, String>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handshake = async {
        let tls = tls.accept(stream).await.map_err(|e| format!("TLS: {e}"))?;
        TcpLink::edge(tls, remote).await.map_err(|e| e.to_string())
    };
    match tokio::time::timeout(limit, handshake).await {
        Ok(link) => link.map(Link::Tcp),
        Err(_) => Err(format!("no handshake within {limit:?}")),
    }
}

/// Agents' TCP links that arrive on the HTTPS port (their ALPN picked them out, the ClientHello
/// rewound): the same handshake and session as on the tunnel's own TCP listener.
pub struct TunnelOverHttps {
    tls: TlsAcceptor,
    state: Arc<TunnelState>,
}

impl TunnelOverHttps {
    /// Links through `tls` (the tunnel's certificate) into sessions of `state`.
    pub fn new(tls: TlsAcceptor, state: Arc<TunnelState>) -> Self {
        Self { tls, state }
    }
}

impl PassthroughTarget for TunnelOverHttps {
    fn serve(&self, conn: RawTlsConn) -> BoxFuture<'static, ()> {
        let remote = conn
            .client
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
        let connecting = tcp_handshake(
            conn.stream,
            remote,
            self.tls.clone(),
            self.state.handshake_timeout,
        );
        Box::pin(session::serve(
            connecting,
            Transport::Tcp,
            remote,
            self.state.clone(),
        ))
    }
}

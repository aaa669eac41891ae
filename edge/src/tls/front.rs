//! [`TlsFront`]: the HTTPS listener's TLS, done by the edge instead of pingora. It reads the
//! ClientHello first, asks [`SniRoutes`] what the SNI name is, then either hands the raw
//! connection (hello included, rewound) to a TLS passthrough target, or terminates TLS with
//! rustls using the shared configuration or one chosen for that name. See docs/tls.md.

use super::client_hello::{Hello, HelloReader, Step};
use super::resolver::CertResolver;
use super::stream::TerminatedStream;
use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::{GetSocketDigest, Stream};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::StartHandshake;

/// How long a client has from connecting to a finished TLS handshake (hello included). One
/// or two round trips are needed; a client silent this long is dropped, so an idle connection
/// holds a task for at most this. pingora allows 60 s.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// What the edge knows about a TLS connection when it decides where it goes.
#[derive(Debug, Clone, Copy)]
pub struct TlsOpening<'a> {
    /// The SNI name, lowercase; `None` when the client sent none (then TLS is terminated with
    /// the shared configuration, whatever the routes say).
    pub sni: Option<&'a str>,
    /// ALPN protocols the client offered, in its order.
    pub alpn: &'a [Vec<u8>],
    /// The client's address.
    pub client: Option<SocketAddr>,
}

/// A client connection handed over untouched: its first bytes are the ClientHello.
pub struct RawTlsConn {
    /// The TCP connection, rewound to its first byte.
    pub stream: Stream,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The SNI name the connection was routed by (lowercase).
    pub sni: String,
    /// ALPN protocols the client offered.
    pub alpn: Vec<Vec<u8>>,
}

impl std::fmt::Debug for RawTlsConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawTlsConn")
            .field("client", &self.client)
            .field("sni", &self.sni)
            .finish_non_exhaustive()
    }
}

/// Takes raw TLS connections for a passthrough endpoint (the agent's upstream does TLS).
pub trait PassthroughTarget: Send + Sync {
    /// Serves one connection to its end; the edge does nothing more with it.
    fn serve(&self, conn: RawTlsConn) -> BoxFuture<'static, ()>;
}

/// Where a TLS connection goes.
#[derive(Clone)]
pub enum SniDecision {
    /// The edge terminates TLS: with this configuration, or the shared one (`None`: the
    /// edge's certificates by SNI, TLS 1.2 and 1.3, ALPN h2 then http/1.1).
    Terminate(Option<Arc<ServerConfig>>),
    /// The raw connection goes to this target.
    Passthrough(Arc<dyn PassthroughTarget>),
}

impl std::fmt::Debug for SniDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Terminate(c) => write!(f, "Terminate(custom: {})", c.is_some()),
            Self::Passthrough(_) => f.write_str("Passthrough"),
        }
    }
}

/// The decision by SNI, asked once per connection with a name, after the ClientHello.
pub trait SniRoutes: Send + Sync {
    /// Where the connection described by `opening` goes.
    fn decide(&self, opening: &TlsOpening<'_>) -> SniDecision;
}

/// [`SniRoutes`] as a table of exact names (lowercase): what the edge installs by default, and
/// what endpoints register into (`EdgeHandle::sni_routes`). Names not in it terminate TLS with
/// the shared configuration.
#[derive(Default)]
pub struct SniTable {
    names: RwLock<HashMap<String, SniDecision>>,
}

impl std::fmt::Debug for SniTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.names.read().iter()).finish()
    }
}

impl SniTable {
    /// Routes `name` (any case) to `decision`, replacing what it had.
    pub fn insert(&self, name: &str, decision: SniDecision) {
        self.names
            .write()
            .insert(name.to_ascii_lowercase(), decision);
    }

    /// Gives `name` back to the shared configuration.
    pub fn remove(&self, name: &str) {
        self.names.write().remove(&name.to_ascii_lowercase());
    }
}

impl SniRoutes for SniTable {
    fn decide(&self, opening: &TlsOpening<'_>) -> SniDecision {
        opening
            .sni
            .and_then(|name| self.names.read().get(name).cloned())
            .unwrap_or(SniDecision::Terminate(None))
    }
}

/// What became of a connection.
pub enum Accepted {
    /// TLS terminated here: a pingora stream reporting the TLS version and ALPN.
    Terminated(Stream),
    /// For a passthrough target: the caller runs `target.serve(conn)` (outside any handshake
    /// bound; the connection is the target's from here).
    Passthrough(Arc<dyn PassthroughTarget>, RawTlsConn),
}

/// Why a connection ended before TLS was established.
#[derive(Debug, thiserror::Error)]
pub enum FrontError {
    /// The listener handed over something other than pingora's TCP stream.
    #[error("not a TCP connection")]
    NotTcp,
    /// Reading the hello or the handshake failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The client closed before a whole ClientHello.
    #[error("closed before a whole ClientHello")]
    Closed,
    /// Not a ClientHello rustls accepts (the alert was sent).
    #[error("not a TLS ClientHello: {0}")]
    NotTls(rustls::Error),
    /// No finished handshake within [`HANDSHAKE_TIMEOUT`].
    #[error("no TLS handshake within {HANDSHAKE_TIMEOUT:?}")]
    Timeout,
}

/// The HTTPS listener's TLS: built once at start, shared by every connection.
pub struct TlsFront {
    shared: Arc<ServerConfig>,
    routes: Arc<dyn SniRoutes>,
}

impl std::fmt::Debug for TlsFront {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsFront").finish_non_exhaustive()
    }
}

impl TlsFront {
    /// The front with the shared configuration over `resolver` and `routes` deciding by SNI.
    pub fn new(
        resolver: Arc<CertResolver>,
        routes: Arc<dyn SniRoutes>,
    ) -> Result<Self, rustls::Error> {
        Ok(Self {
            shared: super::server_config(resolver)?,
            routes,
        })
    }

    /// Reads the ClientHello and routes the connection: to a passthrough target (returned
    /// with the rewound connection), otherwise the handshake is finished here. Everything before the handshake's end
    /// is bounded by [`HANDSHAKE_TIMEOUT`].
    pub async fn accept(&self, stream: Stream) -> Result<Accepted, FrontError> {
        let mut tcp = stream
            .into_any()
            .downcast::<TcpStream>()
            .map_err(|_| FrontError::NotTcp)?;
        let deadline = Instant::now() + HANDSHAKE_TIMEOUT;
        let (hello, read) = timeout_at(deadline, read_hello(&mut tcp))
            .await
            .map_err(|_| FrontError::Timeout)??;
        let client = tcp
            .get_socket_digest()
            .and_then(|d| d.peer_addr().and_then(|a| a.as_inet()).copied());
        let sni = hello.sni.as_deref().map(str::to_ascii_lowercase);
        let opening = TlsOpening {
            sni: sni.as_deref(),
            alpn: &hello.alpn,
            client,
        };
        let config = match (self.routes.decide(&opening), sni) {
            (SniDecision::Passthrough(target), Some(sni)) => {
                tcp.rewind(&read);
                let conn = RawTlsConn {
                    stream: tcp,
                    client,
                    sni,
                    alpn: hello.alpn,
                };
                return Ok(Accepted::Passthrough(target, conn));
            }
            (SniDecision::Terminate(Some(config)), Some(_)) => config,
            _ => self.shared.clone(),
        };
        let stream: Stream = tcp;
        let handshake = StartHandshake::from_parts(hello.accepted, stream).into_stream(config);
        let tls = timeout_at(deadline, handshake)
            .await
            .map_err(|_| FrontError::Timeout)??;
        Ok(Accepted::Terminated(Box::new(TerminatedStream::new(tls))))
    }
}

/// Reads until a whole ClientHello; returns it with every byte read (for a rewind). A refused
/// opening gets rustls' alert before the error.
async fn read_hello(tcp: &mut TcpStream) -> Result<(Hello, Vec<u8>), FrontError> {
    let mut reader = HelloReader::default();
    let mut read = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tcp.read(&mut chunk).await?;
        if n == 0 {
            return Err(FrontError::Closed);
        }
        read.extend_from_slice(&chunk[..n]);
        match reader.feed(&chunk[..n]) {
            Step::More => {}
            Step::Hello(hello) => return Ok((*hello, read)),
            Step::Refused(refusal) => {
                if !refusal.alert.is_empty() {
                    // Best effort: the client may already be gone.
                    let _ = tcp.write_all(&refusal.alert).await;
                    let _ = tcp.flush().await;
                }
                return Err(FrontError::NotTls(refusal.error));
            }
        }
    }
}

//! [`TlsFront`]: the HTTPS listener's TLS, done by the edge instead of pingora. It reads the
//! ClientHello first, asks [`SniRoutes`] what the SNI name is, then either hands the raw
//! connection (hello included, rewound) to a TLS passthrough target, or terminates TLS with
//! rustls using the shared configuration or one chosen for that name. See docs/tls.md.

use super::client_hello::{Hello, HelloReader, Step};
use super::resolver::CertResolver;
use super::stream::{Keep, TerminatedStream};
use crate::addrs::inet;
use futures_util::future::BoxFuture;
use parking_lot::RwLock;
use pingora::protocols::l4::stream::Stream as TcpStream;
use pingora::protocols::{GetSocketDigest, Stream};
use rustls::server::{Accepted as RustlsHello, ServerConnection};
use rustls::ServerConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::{timeout_at, Instant};
use tokio_rustls::server::TlsStream;
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
    /// The edge's address the client connected to.
    pub local: Option<SocketAddr>,
}

/// A client connection handed over untouched: its first bytes are the ClientHello.
pub struct RawTlsConn {
    /// The TCP connection, rewound to its first byte.
    pub stream: Stream,
    /// The client's address.
    pub client: Option<SocketAddr>,
    /// The edge's address the client connected to.
    pub local: Option<SocketAddr>,
    /// The SNI name the connection was routed by (lowercase); empty for an agent's link,
    /// which its ALPN routed.
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

/// Rules that run on a connection before the edge's handshake (an HTTPS endpoint's
/// on_tcp_connect): they may finish the handshake themselves, with settings of their own.
pub trait ConnectRules: Send + Sync {
    /// Runs the rules on the connection `opening` describes. `Some(keep)`: it goes on (the
    /// front finishes the handshake with the shared configuration if the rules did not), and
    /// `keep` lives as long as the connection; `None`: it is closed.
    fn run<'a>(
        &'a self,
        opening: TlsOpening<'a>,
        handshake: &'a mut FrontHandshake,
    ) -> BoxFuture<'a, Option<Keep>>;
}

/// Where a TLS connection goes.
#[derive(Clone)]
pub enum SniDecision {
    /// The edge terminates TLS: with this configuration, or the shared one (`None`: the
    /// edge's certificates by SNI, TLS 1.2 and 1.3, ALPN h2 then http/1.1).
    Terminate(Option<Arc<ServerConfig>>),
    /// These rules run first; the edge terminates TLS as they say.
    Connect(Arc<dyn ConnectRules>),
    /// The raw connection goes to this target.
    Passthrough(Arc<dyn PassthroughTarget>),
}

impl std::fmt::Debug for SniDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Terminate(c) => write!(f, "Terminate(custom: {})", c.is_some()),
            Self::Connect(_) => f.write_str("Connect"),
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
    /// The name's [`ConnectRules`] closed the connection.
    #[error("closed by the endpoint's on_tcp_connect rules")]
    Refused,
    /// [`FrontHandshake::finish`] was called again after a failed handshake.
    #[error("the handshake already failed")]
    HandshakeGone,
}

/// The handshake of a connection whose [`ConnectRules`] run before it: they finish it with
/// their own configuration, or the front does with the shared one afterwards.
pub struct FrontHandshake {
    /// The hello and the connection, until the handshake is made.
    start: Option<(RustlsHello, Stream)>,
    done: Option<TlsStream<Stream>>,
    shared: Arc<ServerConfig>,
    deadline: Instant,
}

impl FrontHandshake {
    /// Whether the handshake was made.
    pub fn finished(&self) -> bool {
        self.done.is_some()
    }

    /// Finishes the handshake with `config` (`None`: the shared configuration), within the
    /// connection's handshake bound. Returns the TLS state to read its facts from; a second
    /// call returns the first handshake's.
    pub async fn finish(
        &mut self,
        config: Option<Arc<ServerConfig>>,
    ) -> Result<&ServerConnection, FrontError> {
        if self.done.is_none() {
            let (hello, stream) = self.start.take().ok_or(FrontError::HandshakeGone)?;
            let config = config.unwrap_or_else(|| self.shared.clone());
            let handshake = StartHandshake::from_parts(hello, stream).into_stream(config);
            let tls = timeout_at(self.deadline, handshake)
                .await
                .map_err(|_| FrontError::Timeout)??;
            self.done = Some(tls);
        }
        match &self.done {
            Some(tls) => Ok(tls.get_ref().1),
            None => Err(FrontError::HandshakeGone),
        }
    }
}

/// The HTTPS listener's TLS: built once at start, shared by every connection.
pub struct TlsFront {
    shared: Arc<ServerConfig>,
    routes: Arc<dyn SniRoutes>,
    /// Where agents' TLS-over-TCP links go when they share this port (by their ALPN).
    tunnel: Option<Arc<dyn PassthroughTarget>>,
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
            tunnel: None,
        })
    }

    /// Hands connections that offer the agents' TCP link ALPN ([`sluice_proto::ALPN_TCP`])
    /// to `tunnel`, before any SNI route: agents on networks that allow only port 443 share
    /// the HTTPS port (`--tunnel-tcp-on-https`).
    pub fn with_tunnel(mut self, tunnel: Arc<dyn PassthroughTarget>) -> Self {
        self.tunnel = Some(tunnel);
        self
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
        let digest = tcp.get_socket_digest();
        let client = digest.as_ref().and_then(|d| inet(d.peer_addr()));
        let local = digest.as_ref().and_then(|d| inet(d.local_addr()));
        let sni = hello.sni.as_deref().map(str::to_ascii_lowercase);
        let opening = TlsOpening {
            sni: sni.as_deref(),
            alpn: &hello.alpn,
            client,
            local,
        };
        let decision = match &self.tunnel {
            // Agents' TCP links, told apart by their ALPN, before any name's route.
            Some(tunnel) if hello.alpn.iter().any(|p| p == sluice_proto::ALPN_TCP) => {
                SniDecision::Passthrough(tunnel.clone())
            }
            _ => self.routes.decide(&opening),
        };
        if let SniDecision::Passthrough(target) = &decision {
            tcp.rewind(&read);
            let conn = RawTlsConn {
                sni: sni.unwrap_or_default(),
                stream: tcp,
                client,
                local,
                alpn: hello.alpn,
            };
            return Ok(Accepted::Passthrough(target.clone(), conn));
        }
        let mut handshake = FrontHandshake {
            start: Some((hello.accepted, tcp as Stream)),
            done: None,
            shared: self.shared.clone(),
            deadline,
        };
        // Without a name the shared configuration serves, whatever the routes say.
        let (config, keep) = match (decision, opening.sni) {
            (SniDecision::Terminate(config), Some(_)) => (config, None),
            (SniDecision::Connect(rules), Some(_)) => {
                let keep = timeout_at(deadline, rules.run(opening, &mut handshake))
                    .await
                    .map_err(|_| FrontError::Timeout)?
                    .ok_or(FrontError::Refused)?;
                (None, Some(keep))
            }
            _ => (None, None),
        };
        handshake.finish(config).await?;
        let tls = handshake.done.ok_or(FrontError::HandshakeGone)?;
        Ok(Accepted::Terminated(Box::new(
            TerminatedStream::new(tls).keeping(keep),
        )))
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

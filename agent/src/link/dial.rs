//! [`Dialer`]: a link to the edge over QUIC or over TLS on TCP, and `auto`'s race between
//! them: QUIC first, TCP too when QUIC has not answered within [`RACE_AFTER`] or the UDP
//! socket refuses to send, the first link up taken.

use super::tls;
use crate::config::agent::{AgentConfig, TransportChoice};
use crate::trust::TlsError;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::ConnectionError;
use sluice_proto::link::tcp::TcpLink;
use sluice_proto::link::{Link, Transport};
use sluice_proto::transport::transport_config;
use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::error::{AgentError, Attempt};

/// How long QUIC has alone before TCP joins the race (`auto`).
pub(crate) const RACE_AFTER: Duration = Duration::from_millis(1500);

/// Longest a transport's handshake may take.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// What dials the edge: the transports the agent's choice allows, set up once per run.
pub(crate) struct Dialer {
    quic: Option<QuicDialer>,
    tcp: Option<TcpDialer>,
    choice: TransportChoice,
}

struct QuicDialer {
    /// The name the edge's certificate is checked against.
    host: String,
    endpoint: quinn::Endpoint,
    config: quinn::ClientConfig,
    addr: SocketAddr,
    /// A second handle on the endpoint's socket, to learn whether it may send at all.
    probe: UdpSocket,
}

struct TcpDialer {
    tls: TlsConnector,
    addr: String,
    /// The name its certificate is checked against: `edge_tcp`'s host, else `edge`'s.
    host: String,
    max_streams: u32,
}

impl Dialer {
    /// Resolves the edge and sets up the transports `config` allows (no UDP socket at all
    /// for `tcp`).
    pub(crate) async fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let quic = match config.transport {
            TransportChoice::Tcp => None,
            _ => Some(QuicDialer::new(config).await?),
        };
        let tcp = match config.transport {
            TransportChoice::Quic => None,
            _ => Some(TcpDialer::new(config)?),
        };
        Ok(Self {
            quic,
            tcp,
            choice: config.transport,
        })
    }

    /// A link over `transport` alone, if the choice allows it.
    pub(crate) async fn dial(&self, transport: Transport) -> Result<Link, Attempt> {
        match (transport, &self.quic, &self.tcp) {
            (Transport::Quic, Some(quic), _) => quic.dial().await,
            (Transport::Tcp, _, Some(tcp)) => tcp.dial().await,
            _ => Err(Attempt::Transient(format!(
                "--transport {:?} does not use {transport}",
                self.choice
            ))),
        }
    }

    /// A link by the agent's choice: one transport for `quic` and `tcp`; for `auto`, QUIC
    /// unless `prefer_tcp` (it kept dying), with TCP raced in when QUIC is slow or refused.
    pub(crate) async fn dial_any(&self, prefer_tcp: bool) -> Result<Link, Attempt> {
        match self.choice {
            TransportChoice::Quic => self.dial(Transport::Quic).await,
            TransportChoice::Tcp => self.dial(Transport::Tcp).await,
            TransportChoice::Auto if prefer_tcp => self.dial(Transport::Tcp).await,
            TransportChoice::Auto => self.race().await,
        }
    }

    /// QUIC, joined by TCP after [`RACE_AFTER`] or at once when UDP cannot be sent; the
    /// first link up wins (the other attempt is dropped before any handshake message, so only
    /// one session is ever admitted). QUIC failing first leaves TCP alone; both failing gives
    /// both reasons.
    async fn race(&self) -> Result<Link, Attempt> {
        let (Some(quic), Some(tcp)) = (&self.quic, &self.tcp) else {
            return Err(Attempt::Transient("no transport to race".into()));
        };
        let refused = quic.send_refused();
        let quic_attempt = async {
            match &refused {
                Some(why) => Err(Attempt::Transient(format!("UDP refused: {why}"))),
                None => quic.dial().await,
            }
        };
        tokio::pin!(quic_attempt);
        // QUIC alone until it answers, fails, or its head start is over.
        let head_start = tokio::time::sleep(if refused.is_some() {
            Duration::ZERO
        } else {
            RACE_AFTER
        });
        tokio::select! {
            q = &mut quic_attempt => return match q {
                Err(Attempt::Transient(quic_why)) => tcp.dial().await.map_err(|e| both(quic_why, e)),
                done => done,
            },
            () = head_start => {}
        }
        debug!(refused = ?refused, "QUIC is slow or refused; racing TCP");
        let tcp_attempt = tcp.dial();
        tokio::pin!(tcp_attempt);
        tokio::select! {
            q = &mut quic_attempt => match q {
                Err(Attempt::Transient(quic_why)) => tcp_attempt.await.map_err(|e| both(quic_why, e)),
                done => done,
            },
            t = &mut tcp_attempt => match t {
                Err(Attempt::Transient(tcp_why)) => quic_attempt.await.map_err(|e| both(tcp_why, e)),
                done => done,
            },
        }
    }

    /// Waits until the QUIC endpoint has sent its last packets (a clean close reaching the edge).
    pub(crate) async fn wait_idle(&self) {
        if let Some(quic) = &self.quic {
            let _ = tokio::time::timeout(Duration::from_secs(2), quic.endpoint.wait_idle()).await;
        }
    }
}

/// Both attempts' reasons in one.
fn both(first: String, second: Attempt) -> Attempt {
    match second {
        Attempt::Transient(why) => Attempt::Transient(format!("{first}; {why}")),
        fatal => fatal,
    }
}

impl QuicDialer {
    async fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let (host, edge) = resolve_edge(&config.edge).await?;
        let tls = tls::client_config(config.edge_ca.as_deref(), sluice_proto::ALPN)?;
        let quic = QuicClientConfig::try_from((*tls).clone()).map_err(|e| {
            AgentError::Tls(TlsError::Rustls(rustls::Error::General(e.to_string())))
        })?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        client.transport_config(Arc::new(transport_config(config.max_concurrent_requests)));
        let local: SocketAddr = if edge.is_ipv4() {
            SocketAddr::from(([0, 0, 0, 0], 0))
        } else {
            SocketAddr::from(([0u16; 8], 0))
        };
        let socket = sluice_proto::transport::udp_socket(local)?;
        let probe = socket.try_clone()?;
        let endpoint = quinn::Endpoint::new(
            quinn::EndpointConfig::default(),
            None,
            socket,
            Arc::new(quinn::TokioRuntime),
        )?;
        Ok(Self {
            host,
            endpoint,
            config: client,
            addr: edge,
            probe,
        })
    }

    /// Why UDP cannot be sent to the edge, if the socket says so at once (a local firewall
    /// rule answers `sendto` with "operation not permitted"; quinn would only log it and wait).
    /// An empty datagram: the edge drops it unread.
    fn send_refused(&self) -> Option<String> {
        match self.probe.send_to(&[], self.addr) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => Some(e.to_string()),
            _ => None,
        }
    }

    async fn dial(&self) -> Result<Link, Attempt> {
        let host = self.host.as_str();
        let connecting = self
            .endpoint
            .connect_with(self.config.clone(), self.addr, host)
            .map_err(|e| {
                Attempt::Fatal(AgentError::EdgeAddress(host.to_string(), e.to_string()))
            })?;
        match tokio::time::timeout(HANDSHAKE_LIMIT, connecting).await {
            Err(_) => Err(Attempt::Transient(
                "timed out connecting to the edge over QUIC".into(),
            )),
            Ok(Err(e)) if is_tls_failure(&e) => {
                Err(Attempt::Fatal(AgentError::Untrusted(e.to_string())))
            }
            Ok(Err(e)) => Err(Attempt::Transient(format!("QUIC: {e}"))),
            Ok(Ok(conn)) => Ok(Link::Quic(conn)),
        }
    }
}

/// TLS alerts are QUIC transport errors 0x100–0x1ff; a certificate problem will not fix itself.
fn is_tls_failure(e: &ConnectionError) -> bool {
    matches!(e, ConnectionError::TransportError(t) if (0x100..0x200).contains(&u64::from(t.code)))
}

impl TcpDialer {
    fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let addr = config
            .edge_tcp
            .clone()
            .unwrap_or_else(|| config.edge.clone());
        Ok(Self {
            tls: TlsConnector::from(tls::client_config(
                config.edge_ca.as_deref(),
                sluice_proto::ALPN_TCP,
            )?),
            host: host_of(&addr)?,
            addr,
            max_streams: config.max_concurrent_requests,
        })
    }

    async fn dial(&self) -> Result<Link, Attempt> {
        let host = &self.host;
        let transient = |e: &dyn std::fmt::Display| Attempt::Transient(format!("TCP: {e}"));
        let setup = async {
            let stream = tokio::net::TcpStream::connect(&self.addr)
                .await
                .map_err(|e| transient(&e))?;
            let _ = stream.set_nodelay(true);
            let remote = stream.peer_addr().map_err(|e| transient(&e))?;
            let name = rustls::pki_types::ServerName::try_from(host.to_string()).map_err(|e| {
                Attempt::Fatal(AgentError::EdgeAddress(host.to_string(), e.to_string()))
            })?;
            let tls = self.tls.connect(name, stream).await.map_err(|e| {
                // A refused certificate will not fix itself; a broken connection may.
                if e.get_ref().is_some_and(|inner| inner.is::<rustls::Error>()) {
                    Attempt::Fatal(AgentError::Untrusted(e.to_string()))
                } else {
                    transient(&e)
                }
            })?;
            TcpLink::agent(tls, remote, self.max_streams)
                .await
                .map(Link::Tcp)
                .map_err(|e| transient(&e))
        };
        tokio::time::timeout(HANDSHAKE_LIMIT, setup)
            .await
            .unwrap_or_else(|_| {
                Err(Attempt::Transient(
                    "timed out connecting to the edge over TCP".into(),
                ))
            })
    }
}

/// The host of `HOST:PORT` (brackets of an IPv6 literal removed), for SNI and certificate
/// checks.
fn host_of(edge: &str) -> Result<String, AgentError> {
    let (host, _) = edge
        .rsplit_once(':')
        .ok_or_else(|| AgentError::EdgeAddress(edge.to_string(), "expected HOST:PORT".into()))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

/// The edge's host name and its first address.
async fn resolve_edge(edge: &str) -> Result<(String, SocketAddr), AgentError> {
    let bad = |why: String| AgentError::EdgeAddress(edge.to_string(), why);
    let host = host_of(edge)?;
    let addr = tokio::net::lookup_host(edge)
        .await
        .map_err(|e| bad(e.to_string()))?
        .next()
        .ok_or_else(|| bad("no address found".into()))?;
    Ok((host, addr))
}

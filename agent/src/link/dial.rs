//! [`Dialer`]: a link to one of the edges' addresses over QUIC or over TLS on TCP, and
//! `auto`'s race between them: QUIC first, TCP too when QUIC has not answered within
//! [`RACE_AFTER`] or the UDP socket refuses to send, the first link up taken.

use super::targets::{host_of, Target};
use super::tls;
use crate::config::agent::{AgentConfig, TransportChoice};
use crate::trust::TlsError;
use quinn::crypto::rustls::QuicClientConfig;
use quinn::ConnectionError;
use sluice_proto::link::tcp::TcpLink;
use sluice_proto::link::{Link, Transport};
use sluice_proto::transport::transport_config;
use std::net::{SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_rustls::TlsConnector;
use tracing::debug;

use super::error::{AgentError, Attempt};

/// How long QUIC has alone before TCP joins the race (`auto`).
pub(crate) const RACE_AFTER: Duration = Duration::from_millis(1500);

/// Longest a transport's handshake may take.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// What dials the edges: the transports the agent's choice allows, set up once per run and
/// shared by every link.
pub(crate) struct Dialer {
    quic: Option<QuicDialer>,
    tcp: Option<TcpDialer>,
    choice: TransportChoice,
}

struct QuicDialer {
    config: quinn::ClientConfig,
    /// One endpoint per address family, made on first use and shared by every QUIC link.
    sockets: Mutex<Vec<Arc<QuicSocket>>>,
}

/// A quinn endpoint on one UDP socket.
struct QuicSocket {
    v6: bool,
    endpoint: quinn::Endpoint,
    /// A second handle on the endpoint's socket, to learn whether it may send at all.
    probe: UdpSocket,
}

struct TcpDialer {
    tls: TlsConnector,
    /// `edge_tcp`: the TLS-over-TCP address, when not the target's, and its certificate name.
    addr: Option<(String, String)>,
    max_streams: u32,
}

impl Dialer {
    /// Sets up the transports `config` allows (no UDP socket at all for `tcp`).
    pub(crate) fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let quic = match config.transport {
            TransportChoice::Tcp => None,
            _ => Some(QuicDialer::new(config)?),
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

    /// A link to `target` over `transport` alone, if the choice allows it.
    pub(crate) async fn dial(
        &self,
        target: &Target,
        transport: Transport,
    ) -> Result<Link, Attempt> {
        match (transport, &self.quic, &self.tcp) {
            (Transport::Quic, Some(quic), _) => quic.dial(target).await,
            (Transport::Tcp, _, Some(tcp)) => tcp.dial(target).await,
            _ => Err(Attempt::Transient(format!(
                "--transport {:?} does not use {transport}",
                self.choice
            ))),
        }
    }

    /// A link to `target` by the agent's choice: one transport for `quic` and `tcp`; for
    /// `auto`, QUIC unless `prefer_tcp` (it kept dying), with TCP raced in when QUIC is slow or
    /// refused.
    pub(crate) async fn dial_any(
        &self,
        target: &Target,
        prefer_tcp: bool,
    ) -> Result<Link, Attempt> {
        match self.choice {
            TransportChoice::Quic => self.dial(target, Transport::Quic).await,
            TransportChoice::Tcp => self.dial(target, Transport::Tcp).await,
            TransportChoice::Auto if prefer_tcp => self.dial(target, Transport::Tcp).await,
            TransportChoice::Auto => self.race(target).await,
        }
    }

    /// QUIC, joined by TCP after [`RACE_AFTER`] or at once when UDP cannot be sent; the
    /// first link up wins (the other attempt is dropped before any handshake message, so only
    /// one session is ever admitted). QUIC failing first leaves TCP alone; both failing gives
    /// both reasons.
    async fn race(&self, target: &Target) -> Result<Link, Attempt> {
        let (Some(quic), Some(tcp)) = (&self.quic, &self.tcp) else {
            return Err(Attempt::Transient("no transport to race".into()));
        };
        let refused = quic.send_refused(target.addr);
        let quic_attempt = async {
            match &refused {
                Some(why) => Err(Attempt::Transient(format!("UDP refused: {why}"))),
                None => quic.dial(target).await,
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
                Err(Attempt::Transient(quic_why)) => tcp.dial(target).await.map_err(|e| both(quic_why, e)),
                done => done,
            },
            () = head_start => {}
        }
        debug!(refused = ?refused, "QUIC is slow or refused; racing TCP");
        let tcp_attempt = tcp.dial(target);
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

    /// Waits until the QUIC endpoints have sent their last packets (clean closes reaching
    /// the edges).
    pub(crate) async fn wait_idle(&self) {
        let Some(quic) = &self.quic else { return };
        let sockets = quic
            .sockets
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for socket in sockets {
            let _ = tokio::time::timeout(Duration::from_secs(2), socket.endpoint.wait_idle()).await;
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
    fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let tls = tls::client_config(config.edge_ca.as_deref(), sluice_proto::ALPN)?;
        let quic = QuicClientConfig::try_from((*tls).clone()).map_err(|e| {
            AgentError::Tls(TlsError::Rustls(rustls::Error::General(e.to_string())))
        })?;
        let mut client = quinn::ClientConfig::new(Arc::new(quic));
        client.transport_config(Arc::new(transport_config(config.max_concurrent_requests)));
        Ok(Self {
            config: client,
            sockets: Mutex::default(),
        })
    }

    /// The endpoint for `addr`'s family, bound on first use.
    fn socket(&self, addr: SocketAddr) -> Result<Arc<QuicSocket>, AgentError> {
        let mut sockets = self.sockets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sockets.iter().find(|s| s.v6 == addr.is_ipv6()) {
            return Ok(s.clone());
        }
        let local: SocketAddr = if addr.is_ipv4() {
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
        let made = Arc::new(QuicSocket {
            v6: addr.is_ipv6(),
            endpoint,
            probe,
        });
        sockets.push(made.clone());
        Ok(made)
    }

    /// Why UDP cannot be sent to `addr`, if the socket says so at once (a local firewall
    /// rule answers `sendto` with "operation not permitted"; quinn would only log it and wait).
    /// An empty datagram: the edge drops it unread.
    fn send_refused(&self, addr: SocketAddr) -> Option<String> {
        let socket = match self.socket(addr) {
            Ok(socket) => socket,
            Err(e) => return Some(e.to_string()),
        };
        match socket.probe.send_to(&[], addr) {
            Err(e) if e.kind() != std::io::ErrorKind::WouldBlock => Some(e.to_string()),
            _ => None,
        }
    }

    async fn dial(&self, target: &Target) -> Result<Link, Attempt> {
        let host = target.host.as_str();
        let socket = self.socket(target.addr).map_err(Attempt::Fatal)?;
        let connecting = socket
            .endpoint
            .connect_with(self.config.clone(), target.addr, host)
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
        let addr = match &config.edge_tcp {
            Some(addr) => Some((addr.clone(), host_of(addr)?)),
            None => None,
        };
        Ok(Self {
            tls: TlsConnector::from(tls::client_config(
                config.edge_ca.as_deref(),
                sluice_proto::ALPN_TCP,
            )?),
            addr,
            max_streams: config.max_concurrent_requests,
        })
    }

    /// TLS over TCP to `target`'s address, or to `edge_tcp` (every address it resolves to, in
    /// turn) when set.
    async fn dial(&self, target: &Target) -> Result<Link, Attempt> {
        let host = self.addr.as_ref().map_or(&target.host, |(_, host)| host);
        let transient = |e: &dyn std::fmt::Display| Attempt::Transient(format!("TCP: {e}"));
        let setup = async {
            let stream = match &self.addr {
                Some((addr, _)) => tokio::net::TcpStream::connect(addr.as_str()).await,
                None => tokio::net::TcpStream::connect(target.addr).await,
            }
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

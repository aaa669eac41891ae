//! The link's transports ([`Transport`]), and the QUIC settings both sides use, so keep-alive
//! and idle detection agree (the TCP link keeps the same timings, [`crate::link::tcp`]).

use quinn::congestion::BbrConfig;
use quinn::{IdleTimeout, TransportConfig, VarInt};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// Which transport a link runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// QUIC over UDP.
    Quic,
    /// HTTP/2 over TLS 1.3 over TCP.
    Tcp,
}

impl Transport {
    /// `quic` or `tcp`, as metrics, events and the admin API name it.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Quic => "quic",
            Transport::Tcp => "tcp",
        }
    }

    /// How the agent's status screen and output name it.
    pub fn for_people(self) -> &'static str {
        match self {
            Transport::Quic => "QUIC",
            Transport::Tcp => "TLS over TCP",
        }
    }
}

impl fmt::Display for Transport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How often an idle connection sends a keep-alive PING.
pub const KEEP_ALIVE_INTERVAL: Duration = Duration::from_secs(2);

/// A link silent for this long is dead; both sides then drop the session (the edge frees its
/// hostnames, the agent reconnects).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(8);

/// Transport settings shared by the edge and the agent.
///
/// `max_incoming_bidi` is how many bidirectional streams the *peer* may have open at once: the
/// agent allows the edge many (one per in-flight request), the edge allows the agent only its
/// control stream. Windows are sized for gigabyte transfers on fast links.
///
/// Congestion control is BBR, not quinn's default Cubic: agents sit on Wi-Fi and mobile links
/// where loss is random rather than a sign of congestion, and Cubic halves its window on every
/// lost packet. Measured through the impairment relay (5 % loss, 100 ms RTT), a 100 MiB
/// download took 14.7 s with BBR and stalled at about 50 KiB/s with Cubic (`tests/faults.rs`);
/// on clean loopback the 1 GiB transfers ran at the same speed with either (CPU-bound).
pub fn transport_config(max_incoming_bidi: u32) -> TransportConfig {
    let mut t = TransportConfig::default();
    t.keep_alive_interval(Some(KEEP_ALIVE_INTERVAL));
    t.max_idle_timeout(Some(
        IdleTimeout::try_from(IDLE_TIMEOUT).unwrap_or(IdleTimeout::from(VarInt::from_u32(8_000))),
    ));
    t.max_concurrent_bidi_streams(VarInt::from_u32(max_incoming_bidi));
    t.max_concurrent_uni_streams(VarInt::from_u32(0));
    t.stream_receive_window(VarInt::from_u32(4 * 1024 * 1024));
    t.receive_window(VarInt::from_u32(64 * 1024 * 1024));
    t.send_window(64 * 1024 * 1024);
    t.congestion_controller_factory(Arc::new(BbrConfig::default()));
    t
}

/// UDP socket buffer size requested for QUIC sockets (the kernel may cap it).
pub const UDP_BUFFER_BYTES: usize = 4 * 1024 * 1024;

/// A non-blocking UDP socket bound to `addr` with [`UDP_BUFFER_BYTES`] buffers requested,
/// ready for `quinn::Endpoint::new`. Larger buffers keep bulk transfers from dropping packets
/// at the socket; the kernel silently caps the request at `net.core.[rw]mem_max`.
pub fn udp_socket(addr: std::net::SocketAddr) -> std::io::Result<std::net::UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    let _ = socket.set_recv_buffer_size(UDP_BUFFER_BYTES);
    let _ = socket.set_send_buffer_size(UDP_BUFFER_BYTES);
    socket.bind(&addr.into())?;
    // quinn's tokio runtime requires a non-blocking socket.
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// A quinn endpoint on [`udp_socket`]`(addr)` with `config`; a server when `server` is given.
pub fn endpoint(
    addr: std::net::SocketAddr,
    config: quinn::EndpointConfig,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(
        config,
        server,
        udp_socket(addr)?,
        std::sync::Arc::new(quinn::TokioRuntime),
    )
}

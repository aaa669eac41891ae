//! [`Link`]: one agent's connection to the edge, over QUIC or over HTTP/2 on TLS over TCP
//! (the fallback for networks that block UDP), and its bidirectional streams
//! ([`SendHalf`], [`RecvHalf`]).
//!
//! Both transports give the same things: streams the edge opens for requests, a control
//! stream, a stream reset that the other side sees as an error (never as a clean end), close
//! codes with a reason, keep-alives that find a dead peer in [`crate::transport::IDLE_TIMEOUT`],
//! a round-trip estimate, and a count of what arrived, which the edge's liveness watch reads
//! as a sign of life. The rest of the edge and the agent use only this module, so neither
//! knows which transport it runs on except where it reports it.

pub(crate) mod error;
pub(crate) mod halves;
mod quic;
pub mod tcp;
#[cfg(test)]
mod tests;

pub use crate::transport::Transport;
pub use error::{Closed, StreamError};
pub use halves::{RecvHalf, SendHalf};

use std::net::SocketAddr;
use std::time::Duration;

/// One agent↔edge connection. Cloning it is cheap; every clone is the same connection.
#[derive(Debug, Clone)]
pub enum Link {
    /// A QUIC connection.
    Quic(quinn::Connection),
    /// HTTP/2 over TLS over TCP.
    Tcp(tcp::TcpLink),
}

impl Link {
    /// The transport it runs on.
    pub fn transport(&self) -> Transport {
        match self {
            Link::Quic(_) => Transport::Quic,
            Link::Tcp(_) => Transport::Tcp,
        }
    }

    /// Opens a stream (the edge opens one per request, or reuses one).
    pub async fn open_bi(&self) -> Result<(SendHalf, RecvHalf), Closed> {
        match self {
            Link::Quic(c) => {
                let (s, r) = c.open_bi().await.map_err(quic::closed)?;
                Ok((SendHalf::Quic(s), RecvHalf::Quic(r)))
            }
            Link::Tcp(t) => t.open_bi().await,
        }
    }

    /// The next stream the peer opened.
    pub async fn accept_bi(&self) -> Result<(SendHalf, RecvHalf), Closed> {
        match self {
            Link::Quic(c) => {
                let (s, r) = c.accept_bi().await.map_err(quic::closed)?;
                Ok((SendHalf::Quic(s), RecvHalf::Quic(r)))
            }
            Link::Tcp(t) => t.accept_bi().await,
        }
    }

    /// The agent's side of the control stream: over QUIC the agent opens it; over TCP the
    /// edge does (only the HTTP/2 client opens streams), and it is the first one the agent
    /// accepts.
    pub async fn agent_control(&self) -> Result<(SendHalf, RecvHalf), Closed> {
        match self {
            Link::Quic(_) => self.open_bi().await,
            Link::Tcp(_) => self.accept_bi().await,
        }
    }

    /// The edge's side of the control stream (see [`Link::agent_control`]).
    pub async fn edge_control(&self) -> Result<(SendHalf, RecvHalf), Closed> {
        match self {
            Link::Quic(_) => self.accept_bi().await,
            Link::Tcp(_) => self.open_bi().await,
        }
    }

    /// Closes the link with `code` ([`crate::close_code`]) and `reason`: streams fail at once,
    /// and the peer sees [`Closed::Peer`].
    pub fn close(&self, code: u32, reason: &[u8]) {
        match self {
            Link::Quic(c) => c.close(code.into(), reason),
            Link::Tcp(t) => t.close(code, reason),
        }
    }

    /// Waits until the link ends, and says how.
    pub async fn closed(&self) -> Closed {
        match self {
            Link::Quic(c) => quic::closed(c.closed().await),
            Link::Tcp(t) => t.closed().await,
        }
    }

    /// How the link ended, or `None` while it is up.
    pub fn close_reason(&self) -> Option<Closed> {
        match self {
            Link::Quic(c) => c.close_reason().map(quic::closed),
            Link::Tcp(t) => t.close_reason(),
        }
    }

    /// The current round-trip estimate.
    pub fn rtt(&self) -> Duration {
        match self {
            Link::Quic(c) => c.rtt(),
            Link::Tcp(t) => t.rtt(),
        }
    }

    /// The peer's address.
    pub fn remote_address(&self) -> SocketAddr {
        match self {
            Link::Quic(c) => c.remote_address(),
            Link::Tcp(t) => t.remote_address(),
        }
    }

    /// A count that grows whenever something arrives from the peer (QUIC datagrams, TCP
    /// reads): the edge's liveness watch reads any growth as a sign of life.
    pub fn arrivals(&self) -> u64 {
        match self {
            Link::Quic(c) => c.stats().udp_rx.datagrams,
            Link::Tcp(t) => t.arrivals(),
        }
    }

    /// Packets lost since the link came up (QUIC only; TCP hides its retransmissions).
    pub fn lost_packets(&self) -> Option<u64> {
        match self {
            Link::Quic(c) => Some(c.stats().path.lost_packets),
            Link::Tcp(_) => None,
        }
    }
}

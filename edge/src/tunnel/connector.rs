//! [`AgentConnector`]: pingora's custom upstream connector, the one place where HTTP meets
//! QUIC on the edge. pingora asks it for a session per request; the session binds to a stream
//! of the target agent when the request head is written, and gives the stream back to that
//! agent's pool when pingora releases it.

use super::exchange::AgentExchange;
use async_trait::async_trait;
use pingora::connectors::http::custom::{Connection, Connector};
use pingora::protocols::tls::CustomALPN;
use pingora::protocols::ALPN;
use pingora::upstreams::peer::{HttpPeer, Peer};
use std::net::SocketAddr;
use std::time::Duration;

/// The ALPN name that routes pingora's upstream requests to [`AgentConnector`]; it never goes
/// on the wire (the peer is not dialled).
const AGENT_PROTOCOL: &[u8] = b"sluice-agent";

/// Hands pingora a fresh [`AgentExchange`] per request; streams are pooled per agent session.
#[derive(Debug, Default, Clone, Copy)]
pub struct AgentConnector;

/// The peer pingora proxies every tunnelled request to: never dialled, it only tells pingora
/// to use [`AgentConnector`] (the target agent travels in the request's extensions).
pub fn agent_peer() -> HttpPeer {
    let mut peer = HttpPeer::new(SocketAddr::from(([127, 0, 0, 1], 0)), false, String::new());
    peer.options.alpn = ALPN::Custom(CustomALPN::new(AGENT_PROTOCOL.to_vec()));
    peer
}

#[async_trait]
impl Connector for AgentConnector {
    type Session = AgentExchange;

    async fn get_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        _peer: &P,
    ) -> pingora::Result<(Connection<AgentExchange>, bool)> {
        Ok((Connection::Session(AgentExchange::new()), false))
    }

    async fn reused_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        _peer: &P,
    ) -> Option<AgentExchange> {
        // Reuse happens per agent session, inside the exchange, once the target is known.
        None
    }

    async fn release_http_session<P: Peer + Send + Sync + 'static>(
        &self,
        session: AgentExchange,
        _peer: &P,
        _idle_timeout: Option<Duration>,
    ) {
        session.release();
    }
}

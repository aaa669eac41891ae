//! What the agent reports while it runs ([`AgentEvent`]): each link coming online or lost,
//! with the edge it goes to ([`EdgeLink`]).

use sluice_proto::control::BoundEndpoint;
use sluice_proto::link::Link;
use std::net::SocketAddr;
use std::time::Duration;

/// What the agent reports while it runs (the CLI prints these; SDK users may watch them).
#[derive(Debug, Clone)]
pub enum AgentEvent {
    /// A link's session is up and every endpoint is online through it.
    Online {
        /// Edge-assigned session id.
        session_id: String,
        /// Online endpoints with their upstreams, in config order.
        endpoints: Vec<(BoundEndpoint, String)>,
        /// False only for the run's first link to come online: a later one follows a lost
        /// session, a move to another transport, or is a further link to another edge.
        reconnected: bool,
        /// The link to the edge: its transport, and its round-trip time.
        link: Link,
        /// Which of the agent's links this is, and the edge it goes to.
        edge: EdgeLink,
    },
    /// A link was lost, or an attempt at one failed; the agent tries again after `retry_in`.
    Reconnecting {
        /// Why the previous attempt or session ended.
        reason: String,
        /// Delay before the next attempt.
        retry_in: Duration,
        /// The link's place ([`EdgeLink::slot`]); it has no session now.
        slot: usize,
        /// Links still online: requests keep flowing through them (0: the agent is offline).
        links_online: usize,
    },
}

/// One of the agent's links: its place and the edge it goes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeLink {
    /// Its place among the agent's links, `0 .. ha_connections`: a session that takes a lost
    /// or moved one's place gets its slot.
    pub slot: usize,
    /// The edge's address as the link reaches it.
    pub addr: SocketAddr,
    /// The edge's id in a cluster (`Welcome.edge_id`); `None` for an edge that runs alone.
    pub edge_id: Option<String>,
}

impl EdgeLink {
    /// How people are shown the edge: its id in a cluster, else its address.
    pub fn name(&self) -> String {
        self.edge_id
            .clone()
            .unwrap_or_else(|| self.addr.to_string())
    }
}

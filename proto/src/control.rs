//! Control-stream messages: the agent's [`Hello`], the edge's [`HelloReply`], and then
//! [`ControlFrame`]s both ways for the rest of the session.

use crate::error_code::ErrorCode;
use serde::{Deserialize, Serialize};
use std::fmt;

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(pub String);

impl Secret {
    /// The secret's value; call only where it is compared or sent.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// The agent's first message on the control stream.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Hello {
    /// [`crate::PROTOCOL_VERSION`] of the agent.
    pub version: u32,
    /// The agent's authtoken.
    pub authtoken: Secret,
    /// Agent software version, for logs.
    pub agent_version: String,
    /// Random id of this agent run, the same across its reconnects: a reconnecting member of
    /// an endpoint pool replaces its own earlier member, not another agent's. Empty from agents
    /// that predate pooling (each session is then its own run).
    #[serde(default)]
    pub run_id: String,
    /// Endpoints the agent wants online, all or none.
    pub endpoints: Vec<EndpointRequest>,
    /// The agent's session this one takes over from without a break (moving from the TCP
    /// transport back to QUIC): the edge sends new requests here and lets that session finish
    /// the ones it has, instead of closing it as replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub moving_from: Option<String>,
}

/// One endpoint the agent asks the edge to route to it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndpointRequest {
    /// Requested URL: `NAME`, `NAME.DOMAIN`, `http://NAME.DOMAIN`, or `None` for a random name.
    pub url: Option<String>,
    /// The local upstream, only for display and logs at the edge.
    pub upstream: String,
    /// Whether this endpoint may share its URL with other agents' endpoints (ngrok's
    /// `--pooling-enabled`); a pool forms only when every member asks for it.
    #[serde(default)]
    pub pooling_enabled: bool,
    /// Traffic-policy documents in evaluation order (agent shorthand flags first, then files).
    #[serde(default)]
    pub policies: Vec<PolicySource>,
}

/// A traffic-policy layer and where it came from (used in error messages).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicySource {
    /// Label such as a file name or `flags`.
    pub origin: String,
    /// What `text` holds.
    #[serde(default)]
    pub kind: PolicyKind,
    /// The layer's text.
    pub text: String,
}

/// The form of a [`PolicySource`]'s text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// A traffic-policy document, YAML or JSON.
    #[default]
    Document,
    /// The agent's shorthand flags (`--basic-auth`, `--cidr-allow`, …) as a JSON object with
    /// one list per flag; the edge compiles them exactly as the agent did.
    Shorthand,
}

/// The edge's answer to [`Hello`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum HelloReply {
    /// The session is up and every requested endpoint is online.
    Welcome(Welcome),
    /// Nothing was brought online.
    Rejected(Rejection),
}

/// Successful handshake.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Welcome {
    /// Edge-assigned session id, for logs on both sides.
    pub session_id: String,
    /// One entry per [`EndpointRequest`], in the same order.
    pub endpoints: Vec<BoundEndpoint>,
    /// The edge's id when it is one of several sharing a cluster store (docs/cluster.md): an
    /// agent keeping links to several edges tells them apart by it, whatever address it
    /// dialled. `None` for an edge on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edge_id: Option<String>,
}

/// An endpoint that is online.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BoundEndpoint {
    /// Id the edge puts in each [`crate::frame::RequestHead`] for this endpoint.
    pub id: u32,
    /// The public URL, e.g. `http://demo.localhost:8080`.
    pub url: String,
    /// The hostname the edge routes (may be a wildcard such as `*.example.com`).
    pub hostname: String,
}

/// A message on the control stream after the handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControlFrame {
    /// Asks the peer to answer with [`ControlFrame::Pong`] carrying the same number: the edge
    /// probes an agent this way while requests wait on it, so a dead agent is noticed in
    /// seconds rather than at the idle timeout.
    Ping(u64),
    /// The answer to [`ControlFrame::Ping`].
    Pong(u64),
    /// The agent is stopping: the edge picks it for no new request (its requests in flight
    /// finish) and answers [`ControlFrame::LeaveAck`].
    Leaving,
    /// The edge no longer sends new requests to this session.
    LeaveAck,
}

/// Why the edge refused a handshake.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejection {
    /// Machine-readable code.
    pub code: ErrorCode,
    /// Human message, safe to show the user.
    pub message: String,
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_masked_in_debug() {
        let hello = Hello {
            version: 1,
            authtoken: Secret("hunter2-token".into()),
            agent_version: "0".into(),
            run_id: String::new(),
            endpoints: vec![],
            moving_from: None,
        };
        let shown = format!("{hello:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}

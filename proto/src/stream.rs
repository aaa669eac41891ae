//! The header the edge writes at the start of every per-request QUIC stream.

use serde::{Deserialize, Serialize};
use std::net::SocketAddr;

/// Public scheme the client used to reach the edge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTP over TLS terminated at the edge.
    Https,
}

impl Scheme {
    /// `"http"` or `"https"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "http",
            Scheme::Https => "https",
        }
    }
}

/// First frame on each edge-opened bidirectional stream; raw HTTP/1.1 follows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHeader {
    /// Which of the session's endpoints this request is for ([`crate::control::BoundEndpoint::id`]).
    pub endpoint_id: u32,
    /// Edge-assigned request id, for correlating edge and agent logs.
    pub request_id: String,
    /// The public client's address as seen by the edge (L4).
    pub client_addr: SocketAddr,
    /// Scheme the client used.
    pub scheme: Scheme,
}

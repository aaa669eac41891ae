//! [`RequestRecord`]: the facts about one finished request, gathered once in the proxy's
//! `logging` phase and read by both the metrics and the event export. A leaf: it knows nothing
//! of who fills it or who reads it.

use pingora::http::{RequestHeader, ResponseHeader};
use sluice_policy::{EndpointInfo, RequestState};
use sluice_proto::link::Transport;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// One finished request, borrowed from pingora's session and the request context.
pub struct RequestRecord<'a> {
    /// Edge-assigned request id (`req_…`).
    pub request_id: &'a str,
    /// The request head as the upstream saw it (after the policy's rewrites).
    pub request: &'a RequestHeader,
    /// The response head written to the client, if any was.
    pub response: Option<&'a ResponseHeader>,
    /// Status written (0 when none was).
    pub status: u16,
    /// The `sluice-error-code` the response carried, if any.
    pub error_code: Option<String>,
    /// The bounded `endpoint` metric label (see docs/metrics.md).
    pub endpoint_label: &'a str,
    /// The endpoint the request reached, when one did (agent, cloud or operator endpoint).
    pub endpoint: Option<&'a EndpointInfo>,
    /// The internal endpoints forward-internal handed it to, in order.
    pub forwarded_to: &'a [Arc<EndpointInfo>],
    /// The cluster edge that held the endpoint's agent and relayed the request to it, when
    /// this edge had no link of its own (docs/cluster.md).
    pub forwarded_to_edge: Option<&'a str>,
    /// The agent session that carried it, when it reached an agent.
    pub agent: Option<AgentLeg<'a>>,
    /// Host the request was for (lowercase, no port).
    pub host: &'a str,
    /// How the client reached the edge (`http`, or `https` on the TLS listener).
    pub scheme: &'static str,
    /// The negotiated TLS version (`1.2`, `1.3`) on the TLS listener.
    pub tls_version: Option<&'a str>,
    /// The client's address (L4 peer).
    pub client_addr: Option<SocketAddr>,
    /// The edge address the client connected to.
    pub server_addr: Option<SocketAddr>,
    /// When the request arrived.
    pub start: SystemTime,
    /// How long it took until logging.
    pub duration: Duration,
    /// Request body bytes read from the client.
    pub request_body_bytes: usize,
    /// Response body bytes sent to the client.
    pub response_body_bytes: usize,
    /// Each traffic policy's per-request state (logs, outcomes), in the order they ran.
    pub policies: Vec<&'a RequestState>,
    /// Why pingora ended the request with an error, if it did.
    pub error: Option<String>,
}

/// One finished connection to a TCP endpoint, read by the metrics and the event export
/// (`tcp_connection_closed.v0`).
pub struct ConnectionRecord<'a> {
    /// Edge-assigned connection id (`conn_…`).
    pub connection_id: &'a str,
    /// The endpoint's URL (`tcp://DOMAIN:PORT`), the bounded `endpoint` metric label: one
    /// per port of the operator's `tcp_ports` at most.
    pub endpoint_url: &'a str,
    /// The endpoint it reached, when one held the port.
    pub endpoint: Option<&'a EndpointInfo>,
    /// The agent session that carried it, when it reached an agent of this edge.
    pub agent: Option<AgentLeg<'a>>,
    /// The cluster edge that held the endpoint's agent and relayed the connection to it.
    pub forwarded_to_edge: Option<&'a str>,
    /// The client's address.
    pub client_addr: SocketAddr,
    /// The edge address the client connected to.
    pub server_addr: SocketAddr,
    /// When the connection was accepted.
    pub start: SystemTime,
    /// How long it lasted.
    pub duration: Duration,
    /// Bytes read from the client.
    pub bytes_in: u64,
    /// Bytes written to the client.
    pub bytes_out: u64,
    /// How it ended, a fixed word (`closed`, `policy_closed`, `no_endpoint`, `agent_gone`,
    /// `upstream_unreachable`, `broken`): a bounded metric label.
    pub outcome: &'static str,
    /// The endpoint's on_tcp_connect run, when its policy has one.
    pub policy: Option<&'a RequestState>,
}

/// The agent session a request or connection went over.
#[derive(Debug, Clone, Copy)]
pub struct AgentLeg<'a> {
    /// Its id (`ses_…`).
    pub session_id: &'a str,
    /// The transport of its link.
    pub transport: Transport,
}

//! [`Completed`]: the facts about one finished request, gathered once in the proxy's `logging`
//! phase and read by both the metrics and the event export.

use crate::proxy::RequestCtx;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::proxy::Session;
use sluice_policy::{EndpointInfo, RequestState};
use sluice_proto::error_code::ERROR_CODE_HEADER;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

/// One finished request, borrowed from pingora's session and the request context.
pub struct Completed<'a> {
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
    /// The endpoint the request reached, when one did (agent or operator endpoint).
    pub endpoint: Option<&'a EndpointInfo>,
    /// The agent session that carried it, when it reached an agent.
    pub session_id: Option<&'a str>,
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
    /// The traffic policy's per-request state (logs, outcomes), when a policy ran.
    pub policy: Option<&'a RequestState>,
    /// Why pingora ended the request with an error, if it did.
    pub error: Option<String>,
}

fn inet(addr: Option<&PingoraAddr>) -> Option<SocketAddr> {
    addr.and_then(PingoraAddr::as_inet).copied()
}

impl<'a> Completed<'a> {
    /// Gathers the facts; `endpoint_label` comes from the edge's endpoint table.
    pub fn gather(
        session: &'a Session,
        error: Option<&pingora::Error>,
        ctx: &'a RequestCtx,
        endpoint_label: &'a str,
    ) -> Self {
        let response = session.response_written();
        // The written header is authoritative: upstream copies were stripped, so any code
        // there came from the edge, the agent or the policy.
        let error_code = response
            .and_then(|r| r.headers.get(ERROR_CODE_HEADER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| ctx.error_code.map(|c| c.to_string()));
        Completed {
            request_id: &ctx.request_id,
            request: session.req_header(),
            response,
            status: response.map_or(0, |r| r.status.as_u16()),
            error_code,
            endpoint_label,
            endpoint: ctx.endpoint.as_deref(),
            session_id: ctx.route.as_ref().map(|r| r.session.id.as_str()),
            host: &ctx.host,
            scheme: ctx.scheme.as_str(),
            tls_version: ctx.tls_version.as_deref(),
            client_addr: inet(session.client_addr()),
            server_addr: inet(session.server_addr()),
            start: ctx.started_at,
            duration: ctx.started.elapsed(),
            request_body_bytes: session.body_bytes_read(),
            response_body_bytes: session.body_bytes_sent(),
            policy: ctx.policy.as_ref().map(|run| run.state()),
            error: error.map(ToString::to_string),
        }
    }
}

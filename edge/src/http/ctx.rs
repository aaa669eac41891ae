//! [`RequestCtx`]: one request's state, carried between pingora's phases, and the record of
//! the finished request built from it.

use super::conn::inet;
use crate::ids::new_id;
use crate::policy::run::PolicyRun;
use crate::record::RequestRecord;
use crate::tunnel::routes::{Route, RouteSet};
use bytes::Bytes;
use pingora::proxy::Session;
use sluice_policy::EndpointInfo;
use sluice_proto::error_code::{ErrorCode, ERROR_CODE_HEADER};
use sluice_proto::scheme::Scheme;
use std::sync::Arc;
use std::time::{Instant, SystemTime};
use tracing::Span;

/// Per-request state carried between phases.
pub struct RequestCtx {
    /// Edge-assigned id, also sent to the agent in the stream header.
    pub request_id: String,
    /// The agent member that takes the request, chosen in `request_filter` (after any
    /// forwards).
    pub route: Option<Arc<Route>>,
    /// The members of the endpoint `route` belongs to, for moving a request whose stream could
    /// not be opened.
    pub route_set: Option<Arc<RouteSet>>,
    /// Set when the edge or agent produced the response.
    pub error_code: Option<ErrorCode>,
    /// The request's span; events for this request are its children.
    pub span: Span,
    /// When the request arrived.
    pub started: Instant,
    /// Host (lowercase, no port).
    pub host: String,
    /// When the request arrived, as wall-clock time for the event's `conn.start_ts`.
    pub started_at: SystemTime,
    /// The endpoints the request reached, in order: the public one (agent, cloud or operator
    /// endpoint), then each internal endpoint forward-internal handed it to.
    pub endpoints: Vec<Arc<EndpointInfo>>,
    /// The traffic-policy evaluations of those endpoints that have a policy, in the same
    /// order; the response passes through them last to first.
    pub policies: Vec<PolicyRun>,
    /// The request body, once a policy needed it whole (read at most once per request).
    pub request_body: Option<Bytes>,
    /// How the client reached the edge: `https` on the TLS listener.
    pub scheme: Scheme,
    /// The negotiated TLS version (`1.2`, `1.3`) on the TLS listener.
    pub tls_version: Option<String>,
}

impl RequestCtx {
    /// A fresh context for a request that just arrived.
    pub fn new() -> Self {
        Self {
            request_id: new_id("req"),
            route: None,
            route_set: None,
            error_code: None,
            span: Span::none(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            host: String::new(),
            endpoints: Vec::new(),
            policies: Vec::new(),
            request_body: None,
            scheme: Scheme::Http,
            tls_version: None,
        }
    }

    /// Moves the request to another live member of its endpoint that runs the same policy
    /// ([`RouteSet::alternative`]); whether there was one.
    pub fn move_to_another_member(&mut self) -> bool {
        let (Some(set), Some(failed)) = (&self.route_set, &self.route) else {
            return false;
        };
        let Some(next) = set.alternative(failed) else {
            return false;
        };
        tracing::info!(parent: &self.span, from = failed.member_id(), to = next.member_id(), "request moved: its agent's stream could not be opened");
        self.route = Some(next);
        true
    }

    /// The URLs of the endpoints before the current (last) one: what forwarded it here.
    pub fn forwarded_from(&self) -> Vec<String> {
        let before = self.endpoints.len().saturating_sub(1);
        self.endpoints[..before]
            .iter()
            .map(|e| e.url.clone())
            .collect()
    }

    /// The finished request's facts, gathered once for the metrics and the events;
    /// `endpoint_label` comes from the edge's endpoint table.
    pub fn record<'a>(
        &'a self,
        session: &'a Session,
        error: Option<&pingora::Error>,
        endpoint_label: &'a str,
    ) -> RequestRecord<'a> {
        let response = session.response_written();
        // The written header is authoritative: upstream copies were stripped, so any code
        // there came from the edge, the agent or the policy.
        let error_code = response
            .and_then(|r| r.headers.get(ERROR_CODE_HEADER))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| self.error_code.map(|c| c.to_string()));
        RequestRecord {
            request_id: &self.request_id,
            request: session.req_header(),
            response,
            status: response.map_or(0, |r| r.status.as_u16()),
            error_code,
            endpoint_label,
            endpoint: self.endpoints.first().map(|e| &**e),
            forwarded_to: self.endpoints.get(1..).unwrap_or_default(),
            forwarded_to_edge: self.route.as_ref().and_then(|r| r.remote_edge()),
            agent: self.route.as_ref().and_then(|r| r.agent_leg()),
            host: &self.host,
            scheme: self.scheme.as_str(),
            tls_version: self.tls_version.as_deref(),
            client_addr: inet(session.client_addr()),
            server_addr: inet(session.server_addr()),
            start: self.started_at,
            duration: self.started.elapsed(),
            request_body_bytes: session.body_bytes_read(),
            response_body_bytes: session.body_bytes_sent(),
            policies: self.policies.iter().map(PolicyRun::state).collect(),
            error: error.map(ToString::to_string),
        }
    }
}

impl Default for RequestCtx {
    fn default() -> Self {
        Self::new()
    }
}

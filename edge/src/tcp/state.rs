//! [`TcpState`]: what serving a TCP endpoint's connections reads, built once at start.

use crate::events::EventExport;
use crate::metrics::EdgeMetrics;
use crate::policy::connections::ConnectionPhases;
use crate::policy::operator::OperatorEndpoints;
use crate::tls::resolver::CertResolver;
use crate::tunnel::routes::{Binding, Route, RouteRegistry};
use std::sync::Arc;
use std::time::Duration;

/// What serving a TCP connection reads, built once at start.
pub struct TcpState {
    /// Port → agent session; the agent listener writes it.
    pub routes: Arc<dyn RouteRegistry>,
    /// How long a connection waits for the agent to accept a new stream.
    pub stream_open_timeout: Duration,
    /// Connection counts and bytes.
    pub metrics: EdgeMetrics,
    /// Where `tcp_connection_closed.v0` events go.
    pub events: Arc<EventExport>,
    /// edge.yaml's endpoints, whose patterns name TLS endpoints' metric labels.
    pub operators: Arc<OperatorEndpoints>,
    /// The edge's HTTPS certificates, which terminate-tls presents unless it names its own.
    pub edge_certs: Option<Arc<CertResolver>>,
    /// What HTTPS endpoints' on_tcp_connect left on open connections, for their requests.
    pub connections: Arc<ConnectionPhases>,
}

impl TcpState {
    /// The bounded `endpoint` label of a member's connections: a TCP endpoint's URL (one per
    /// port of the operator's range at most), a TLS endpoint's edge.yaml pattern or `other`,
    /// as HTTP endpoints are labelled.
    pub fn label<'a>(&'a self, route: &'a Route) -> &'a str {
        match route.key.binding {
            Binding::Port(_) => &route.url,
            _ => self.operators.endpoint_label(route.key.hostname.as_str()),
        }
    }
}

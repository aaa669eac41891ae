//! [`TcpState`]: what serving a TCP endpoint's connections reads, built once at start.

use crate::events::EventExport;
use crate::metrics::EdgeMetrics;
use crate::tunnel::routes::RouteRegistry;
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
}

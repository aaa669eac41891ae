//! [`ProxyState`]: what the public side of the edge reads while serving requests.

use crate::acme::challenges::Http01Challenges;
use crate::events::EventExport;
use crate::hostname::Hostname;
use crate::login::LoginService;
use crate::metrics::EdgeMetrics;
use crate::outbound::InternalCalls;
use crate::policy::connections::ConnectionPhases;
use crate::policy::operator::OperatorEndpoints;
use crate::tunnel::routes::RouteRegistry;
use crate::urls::PublicUrls;
use sluice_proto::scheme::Scheme;
use std::sync::Arc;
use std::time::Duration;

/// The proxy's state, built once at start.
pub struct ProxyState {
    /// Hostname → agent session (the agent listener writes it).
    pub routes: Arc<dyn RouteRegistry>,
    /// Public URLs, for redirects to https.
    pub urls: Arc<PublicUrls>,
    /// The operator's policies: they answer for hosts no agent holds, and name metric labels.
    pub operators: Arc<OperatorEndpoints>,
    /// Metric handles.
    pub metrics: EdgeMetrics,
    /// Whether requests are counted (only when the metrics listener is on).
    pub record_metrics: bool,
    /// The event exporter (no destinations: nothing is built per request).
    pub events: Arc<EventExport>,
    /// Plain-HTTP requests for https endpoints get a 308 to HTTPS instead of 404.
    pub redirect_http: bool,
    /// ACME HTTP-01 answers the edge serves on plain HTTP, when ACME is on.
    pub acme_challenges: Option<Arc<Http01Challenges>>,
    /// The sign-in service when `auth_host` is configured: the proxy hands the auth host's
    /// requests to it.
    pub auth_host: Option<Arc<LoginService>>,
    /// How long a request waits for a new stream to the agent.
    pub stream_open_timeout: Duration,
    /// http-request's calls to internal endpoints in flight: a request with a live ticket
    /// goes to the internal endpoint it names.
    pub internal_calls: Arc<InternalCalls>,
    /// What HTTPS endpoints' on_tcp_connect left on open connections (tcp/https.rs).
    pub connection_phases: Arc<ConnectionPhases>,
}

impl ProxyState {
    /// Whether this edge serves `host` (lowercase, no port): an agent holds it, or an
    /// operator policy answers for it. Sign-ins on the auth host return only to such hosts.
    pub fn serves(&self, host: &str) -> bool {
        [Scheme::Http, Scheme::Https]
            .into_iter()
            .any(|scheme| self.routes.lookup(scheme, host).is_some())
            || Hostname::parse(host).is_ok_and(|h| self.operators.answering(&h).is_some())
    }
}

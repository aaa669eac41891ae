//! [`EdgeState`]: what the proxy and the agent listener share.

use crate::auth::TokenSet;
use crate::config::EdgeConfig;
use crate::endpoint_policy::PolicyServices;
use crate::events::EventExport;
use crate::hostname::Hostname;
use crate::login::LoginService;
use crate::metrics::labels::OTHER_ENDPOINT;
use crate::metrics::EdgeMetrics;
use crate::routes::RouteRegistry;
use crate::tunnel::admission::{AuthFailures, SessionCounts};
use sluice_policy::{EndpointInfo, Engine};
use sluice_proto::control::PolicySource;
use sluice_proto::stream::Scheme;
use std::sync::Arc;
use std::time::Duration;

/// Shared, read-mostly edge state.
pub struct EdgeState {
    /// Hostname → agent session.
    pub routes: Arc<dyn RouteRegistry>,
    /// Accepted authtokens.
    pub tokens: TokenSet,
    /// Base domain.
    pub domain: Hostname,
    /// Port shown in public http:// URLs (omitted when 80).
    pub public_port: u16,
    /// Port shown in public https:// URLs (omitted when 443); `None` without an HTTPS listener.
    /// Endpoints are https:// by default when it is set.
    pub https_port: Option<u16>,
    /// Plain-HTTP requests for https endpoints get a 308 to HTTPS instead of 404.
    pub redirect_http: bool,
    /// ACME HTTP-01 answers the edge serves on plain HTTP, when ACME is on.
    pub acme_challenges: Option<Arc<crate::acme::challenges::Http01Challenges>>,
    /// Metric handles.
    pub metrics: EdgeMetrics,
    /// Whether requests are counted (only when the metrics listener is on).
    pub record_metrics: bool,
    /// The event exporter (no destinations: nothing is built per request).
    pub events: EventExport,
    /// How long a request waits for a new stream to the agent.
    pub stream_open_timeout: Duration,
    /// How long an agent has to finish its handshake.
    pub handshake_timeout: Duration,
    /// Operator policies by hostname pattern, from `edge.yaml`.
    pub operator: Vec<OperatorEndpoint>,
    /// Failed authtoken attempts per source address.
    pub auth_failures: AuthFailures,
    /// Live sessions per authtoken, capped by `max_agents_per_token`.
    pub sessions_per_token: SessionCounts,
    /// The JWKS cache and the sign-in service, shared by every endpoint's engine.
    pub services: PolicyServices,
    /// The sign-in service when `auth_host` is configured: the proxy hands the auth host's
    /// requests to it.
    pub auth_host: Option<Arc<LoginService>>,
    /// The configured auth host, which no agent may claim.
    pub auth_hostname: Option<Hostname>,
}

/// An operator policy attached to a hostname pattern in `edge.yaml`. Its rules run before the
/// agent's on every matching endpoint; with no agent online it answers on its own.
pub struct OperatorEndpoint {
    /// Exact hostname or wildcard (`*.example.com`).
    pub pattern: Hostname,
    /// The policy text, compiled again for each matching agent endpoint (own rate-limit state);
    /// `None` for an entry that only names endpoints (for the `endpoint` metric label).
    pub source: Option<PolicySource>,
    /// Compiled once for requests that reach no agent.
    pub engine: Option<Arc<Engine>>,
    /// `endpoint.*` facts for those requests.
    pub endpoint: Arc<EndpointInfo>,
}

impl OperatorEndpoint {
    /// Whether this pattern covers `host`.
    pub fn matches(&self, host: &Hostname) -> bool {
        self.pattern.covers(host)
    }
}

impl EdgeState {
    /// Builds the state from a config, a token set and the bound public port.
    pub fn new(
        config: &EdgeConfig,
        tokens: TokenSet,
        routes: Arc<dyn RouteRegistry>,
        public_port: u16,
        metrics: EdgeMetrics,
        events: EventExport,
        services: PolicyServices,
    ) -> Self {
        Self {
            routes,
            tokens,
            domain: config.domain.clone(),
            public_port,
            https_port: None,
            redirect_http: false,
            acme_challenges: None,
            metrics,
            record_metrics: config.metrics_addr.is_some(),
            events,
            stream_open_timeout: config.stream_open_timeout,
            handshake_timeout: config.handshake_timeout,
            operator: Vec::new(),
            auth_failures: AuthFailures::default(),
            sessions_per_token: SessionCounts::new(config.max_agents_per_token),
            services,
            auth_host: None,
            auth_hostname: config.auth_host.clone(),
        }
    }

    /// The operator policies that apply to `host`, in `edge.yaml` order.
    pub fn operator_sources<'a>(
        &'a self,
        host: &'a Hostname,
    ) -> impl Iterator<Item = &'a PolicySource> + 'a {
        self.operator
            .iter()
            .filter(move |o| o.matches(host))
            .filter_map(|o| o.source.as_ref())
    }

    /// The `endpoint` metric label for a request to `host`: the first `edge.yaml` endpoint
    /// pattern covering it, else [`OTHER_ENDPOINT`] (random agent hostnames must not create
    /// series).
    pub fn endpoint_label(&self, host: &str) -> &str {
        if self.operator.is_empty() {
            return OTHER_ENDPOINT;
        }
        Hostname::parse(host)
            .ok()
            .and_then(|h| self.operator.iter().find(|o| o.matches(&h)))
            .map_or(OTHER_ENDPOINT, |o| o.pattern.as_str())
    }

    /// Whether this edge serves `host` (lowercase, no port): an agent holds it, or an
    /// operator policy covers it. Sign-ins on the auth host return only to such hosts.
    pub fn serves(&self, host: &str) -> bool {
        if self.routes.lookup(host).is_some() {
            return true;
        }
        Hostname::parse(host).is_ok_and(|h| {
            self.operator
                .iter()
                .any(|o| o.engine.is_some() && o.matches(&h))
        })
    }

    /// The scheme endpoints get when the agent does not ask for one: https when the edge has
    /// an HTTPS listener (as ngrok does), else http.
    pub fn default_scheme(&self) -> Scheme {
        match self.https_port {
            Some(_) => Scheme::Https,
            None => Scheme::Http,
        }
    }

    /// The public port for `scheme`.
    pub fn port_for(&self, scheme: Scheme) -> u16 {
        match scheme {
            Scheme::Https => self.https_port.unwrap_or(443),
            Scheme::Http => self.public_port,
        }
    }

    /// The `endpoint.*` facts for `host` served over `scheme`.
    pub fn endpoint_info(&self, id: String, host: &Hostname, scheme: Scheme) -> EndpointInfo {
        EndpointInfo {
            id,
            url: self.public_url(host, scheme),
            host: host.to_string(),
            port: self.port_for(scheme),
            protocol: scheme.as_str().to_string(),
        }
    }

    /// The public URL for `host` over `scheme`, without the port when it is the default one.
    pub fn public_url(&self, host: &Hostname, scheme: Scheme) -> String {
        match (scheme, self.port_for(scheme)) {
            (Scheme::Http, 80) | (Scheme::Https, 443) => format!("{}://{host}", scheme.as_str()),
            (_, port) => format!("{}://{host}:{port}", scheme.as_str()),
        }
    }
}

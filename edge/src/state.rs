//! [`EdgeState`]: what the proxy and the agent listener share.

use crate::auth::TokenSet;
use crate::config::EdgeConfig;
use crate::hostname::Hostname;
use crate::metrics::EdgeMetrics;
use crate::routes::RouteRegistry;
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
    /// Port shown in public URLs (omitted when 80).
    pub public_port: u16,
    /// Metric handles.
    pub metrics: EdgeMetrics,
    /// How long a request waits for a new stream to the agent.
    pub stream_open_timeout: Duration,
    /// How long an agent has to finish its handshake.
    pub handshake_timeout: Duration,
}

impl EdgeState {
    /// Builds the state from a config, a token set and the bound public port.
    pub fn new(
        config: &EdgeConfig,
        tokens: TokenSet,
        routes: Arc<dyn RouteRegistry>,
        public_port: u16,
        metrics: EdgeMetrics,
    ) -> Self {
        Self {
            routes,
            tokens,
            domain: config.domain.clone(),
            public_port,
            metrics,
            stream_open_timeout: config.stream_open_timeout,
            handshake_timeout: config.handshake_timeout,
        }
    }

    /// The public URL for `host`.
    pub fn public_url(&self, host: &Hostname) -> String {
        match self.public_port {
            80 => format!("http://{host}"),
            port => format!("http://{host}:{port}"),
        }
    }
}

//! [`AgentConfig`]: what one agent process runs — the edge to dial and its endpoints.

use super::endpoint::EndpointConfig;
use crate::forward::observe::Observers;
use sluice_proto::control::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Everything an agent session needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Edge QUIC address, `host:port`.
    pub edge: String,
    /// Authtoken (never logged).
    pub authtoken: Secret,
    /// Trust this PEM CA/certificate for the edge instead of the system roots.
    pub edge_ca: Option<PathBuf>,
    /// Endpoints to bring online, all or none.
    pub endpoints: Vec<EndpointConfig>,
    /// How long the upstream may take to send response headers before a 504, and may stay
    /// silent inside a response body before the stream is reset.
    pub upstream_timeout: Duration,
    /// How long a TCP connect to the upstream may take before a 502.
    pub upstream_connect_timeout: Duration,
    /// Most concurrent requests the edge may send at once (QUIC streams).
    pub max_concurrent_requests: u32,
    /// First reconnect delay; doubles per failure up to `reconnect_max`.
    pub reconnect_min: Duration,
    /// Largest reconnect delay.
    pub reconnect_max: Duration,
    /// Watchers of every forwarded exchange (request inspector, status screen).
    pub observers: Observers,
}

impl AgentConfig {
    /// A config with defaults for one endpoint.
    pub fn new(
        edge: impl Into<String>,
        authtoken: impl Into<String>,
        endpoint: EndpointConfig,
    ) -> Self {
        Self {
            edge: edge.into(),
            authtoken: Secret(authtoken.into()),
            edge_ca: None,
            endpoints: vec![endpoint],
            upstream_timeout: Duration::from_secs(300),
            upstream_connect_timeout: Duration::from_secs(10),
            max_concurrent_requests: 1024,
            reconnect_min: Duration::from_millis(200),
            reconnect_max: Duration::from_secs(30),
            observers: Observers::new(),
        }
    }
}

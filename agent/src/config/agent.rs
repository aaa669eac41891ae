//! [`AgentConfig`]: what one agent process runs — the edge to dial and its endpoints.

use super::endpoint::EndpointConfig;
use crate::forward::observe::Observers;
use sluice_proto::control::Secret;
use std::path::PathBuf;
use std::time::Duration;

/// Which transport the agent links to the edge over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum TransportChoice {
    /// QUIC first; TLS over TCP when UDP is blocked or keeps dying, and back to QUIC when it
    /// works again (docs/hardening.md, "Transport fallback").
    #[default]
    Auto,
    /// QUIC only.
    Quic,
    /// TLS over TCP only: no UDP is sent at all.
    Tcp,
}

/// Everything an agent session needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Edge address, `host:port` (QUIC on UDP, and TLS over TCP on the same port unless
    /// `edge_tcp` says otherwise).
    pub edge: String,
    /// The edge's TLS-over-TCP address, when it is not `edge`'s port on TCP.
    pub edge_tcp: Option<String>,
    /// Which transport to link over.
    pub transport: TransportChoice,
    /// While on TCP in `auto`, how often (about; jittered) QUIC is tried again.
    pub quic_probe_interval: Duration,
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
    /// Most concurrent requests the edge may send at once (streams).
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
            edge_tcp: None,
            transport: TransportChoice::Auto,
            quic_probe_interval: Duration::from_secs(30),
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

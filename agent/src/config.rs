//! [`AgentConfig`]: what one agent process runs — the edge to dial and its endpoints.

use crate::observe::Observers;
use crate::upstream::Upstream;
use crate::upstream_tls::UpstreamTlsVerify;
use sluice_proto::control::{PolicySource, Secret};
use std::path::PathBuf;
use std::time::Duration;

/// How the `Host` header reaches the upstream.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// Keep the public hostname the client used (the default, as with ngrok).
    #[default]
    Preserve,
    /// Use the upstream's own `host:port`.
    Rewrite,
    /// Use this value.
    Value(String),
}

impl HostHeader {
    /// Parses `--host-header`: `rewrite`, or a literal value.
    pub fn parse(s: &str) -> Self {
        match s {
            "rewrite" => HostHeader::Rewrite,
            "" | "preserve" => HostHeader::Preserve,
            other => HostHeader::Value(other.to_string()),
        }
    }
}

/// The HTTP version the agent speaks to the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1 (the default).
    #[default]
    Http1,
    /// HTTP/2: h2c with prior knowledge for `http://`, ALPN `h2` for `https://` (gRPC).
    Http2,
}

impl std::str::FromStr for UpstreamProtocol {
    type Err = String;

    /// `http1` or `http2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http1" => Ok(UpstreamProtocol::Http1),
            "http2" => Ok(UpstreamProtocol::Http2),
            other => Err(format!(
                "unknown upstream protocol '{other}' (expected http1 or http2)"
            )),
        }
    }
}

/// One endpoint the agent serves.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Requested URL (`NAME`, `NAME.DOMAIN`, `http://NAME.DOMAIN`); `None` for a random name.
    pub url: Option<String>,
    /// The local app.
    pub upstream: Upstream,
    /// HTTP version spoken to an HTTP(S) upstream.
    pub upstream_protocol: UpstreamProtocol,
    /// Certificate verification for `https://` upstreams.
    pub upstream_tls_verify: UpstreamTlsVerify,
    /// Host header handling.
    pub host_header: HostHeader,
    /// Traffic-policy documents sent to the edge, in order.
    pub policies: Vec<PolicySource>,
}

impl EndpointConfig {
    /// An endpoint forwarding to `upstream` with defaults.
    pub fn new(upstream: Upstream) -> Self {
        Self {
            url: None,
            upstream,
            upstream_protocol: UpstreamProtocol::default(),
            upstream_tls_verify: UpstreamTlsVerify::default(),
            host_header: HostHeader::default(),
            policies: Vec::new(),
        }
    }
}

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

//! [`EndpointConfig`]: one endpoint the agent serves, and how its upstream is reached (HTTP
//! version, certificate verification, `Host` header).

use super::upstream::Upstream;
use sluice_proto::control::PolicySource;
use std::path::PathBuf;

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

/// A protocol name other than `http1` and `http2`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown upstream protocol '{0}' (expected http1 or http2)")]
pub struct UnknownProtocol(pub String);

impl std::str::FromStr for UpstreamProtocol {
    type Err = UnknownProtocol;

    /// `http1` or `http2`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "http1" => Ok(UpstreamProtocol::Http1),
            "http2" => Ok(UpstreamProtocol::Http2),
            other => Err(UnknownProtocol(other.to_string())),
        }
    }
}

/// Whether and how the upstream's certificate is verified (see `forward/upstream_tls.rs` for
/// why it is not by default).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum UpstreamTlsVerify {
    /// Accept any certificate (the default, as with ngrok).
    #[default]
    Off,
    /// Verify chain and hostname against the system's trust roots.
    SystemRoots,
    /// Verify chain and hostname against the CA certificates in this PEM file only.
    CaFile(PathBuf),
}

/// The PROXY protocol header the agent writes to a TCP upstream before the client's bytes
/// (ngrok's `upstream.proxy_protocol`), so the app sees the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyProtocol {
    /// The text header (`PROXY TCP4 …\r\n`).
    V1,
    /// The binary header.
    V2,
}

/// A PROXY protocol version other than 1 and 2.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown PROXY protocol version '{0}' (expected 1 or 2)")]
pub struct UnknownProxyProtocol(pub String);

impl std::str::FromStr for ProxyProtocol {
    type Err = UnknownProxyProtocol;

    /// `1` or `2` (also `v1`, `v2`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_start_matches(['v', 'V']) {
            "1" => Ok(ProxyProtocol::V1),
            "2" => Ok(ProxyProtocol::V2),
            _ => Err(UnknownProxyProtocol(s.to_string())),
        }
    }
}

/// One endpoint the agent serves.
#[derive(Debug, Clone)]
pub struct EndpointConfig {
    /// Requested URL (`NAME`, `NAME.DOMAIN`, `http://NAME.DOMAIN`, `tcp://DOMAIN:PORT`,
    /// `tls://NAME.DOMAIN`); `None` for a random name. A TCP endpoint with a random port asks
    /// for `tcp://`.
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
    /// Share the URL with other agents that enable pooling too (ngrok's `--pooling-enabled`):
    /// the edge spreads requests across them at random.
    pub pooling_enabled: bool,
    /// A PROXY protocol header toward a TCP upstream.
    pub proxy_protocol: Option<ProxyProtocol>,
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
            pooling_enabled: false,
            proxy_protocol: None,
        }
    }

    /// A `tcp://` or `tls://` endpoint: its connections go to a TCP upstream byte for byte.
    pub fn is_raw(&self) -> bool {
        matches!(self.upstream, Upstream::Tcp { .. })
    }
}

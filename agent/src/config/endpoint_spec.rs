//! [`EndpointSpec`]: one endpoint as the user writes it — `agent http` flags or an entry of
//! `agent.yml`'s `endpoints:` — and its single conversion into an [`EndpointConfig`].

use super::endpoint::{
    EndpointConfig, HostHeader, ProxyProtocol, UnknownProtocol, UnknownProxyProtocol,
    UpstreamProtocol, UpstreamTlsVerify,
};
use super::policy_input::{self, PolicyInputError};
use super::upstream::{Upstream, UpstreamError};
use serde::Deserialize;
use sluice_policy::Shorthand;
use std::path::{Path, PathBuf};

/// Why an endpoint spec was refused.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The upstream address.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    /// The traffic-policy inputs.
    #[error(transparent)]
    Policy(#[from] PolicyInputError),
    /// Two ways of giving the same thing.
    #[error("{0}")]
    Conflict(&'static str),
}

/// How the upstream is reached (`upstream:` in `agent.yml`, `--upstream-*` flags).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamSpec {
    /// `PORT`, `HOST:PORT`, `http(s)://HOST[:PORT]`, `file:///DIR` or `file://DIR`.
    pub url: UpstreamUrl,
    /// `http1` (default) or `http2`.
    #[serde(default)]
    pub protocol: Option<ProtocolName>,
    /// `rewrite` or a literal Host value; the client's Host when absent.
    #[serde(default)]
    pub host_header: Option<String>,
    /// Verify the `https://` upstream's certificate.
    #[serde(default)]
    pub tls_verify: bool,
    /// Verify against the CA certificates in this PEM file only (implies `tls_verify`).
    #[serde(default)]
    pub tls_verify_cas: Option<PathBuf>,
    /// A PROXY protocol header (1 or 2) before a TCP upstream's bytes.
    #[serde(default)]
    pub proxy_protocol: Option<ProxyProtocolName>,
}

/// `1` or `2`, checked while the file is read.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "YamlScalar")]
pub struct ProxyProtocolName(pub ProxyProtocol);

impl TryFrom<YamlScalar> for ProxyProtocolName {
    type Error = UnknownProxyProtocol;

    fn try_from(v: YamlScalar) -> Result<Self, Self::Error> {
        v.text().parse().map(ProxyProtocolName)
    }
}

/// An upstream string, validated while the file is read so errors carry its line.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(try_from = "YamlScalar")]
pub struct UpstreamUrl(pub String);

/// `8080` is a YAML integer; upstreams accept numbers and strings alike.
#[derive(Deserialize)]
#[serde(untagged)]
enum YamlScalar {
    Number(u64),
    Text(String),
}

impl YamlScalar {
    fn text(self) -> String {
        match self {
            YamlScalar::Number(n) => n.to_string(),
            YamlScalar::Text(s) => s,
        }
    }
}

impl TryFrom<YamlScalar> for UpstreamUrl {
    type Error = UpstreamError;

    fn try_from(v: YamlScalar) -> Result<Self, Self::Error> {
        let s = v.text();
        s.parse::<Upstream>()?;
        Ok(UpstreamUrl(s))
    }
}

/// `http1` or `http2`, checked while the file is read.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct ProtocolName(pub UpstreamProtocol);

impl TryFrom<String> for ProtocolName {
    type Error = UnknownProtocol;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse().map(ProtocolName)
    }
}

/// Whether an endpoint URL names a raw-connection endpoint (`tcp://…`, `tls://…`).
pub fn is_raw_url(url: &str) -> bool {
    url.split_once("://").is_some_and(|(scheme, _)| {
        scheme.eq_ignore_ascii_case("tcp") || scheme.eq_ignore_ascii_case("tls")
    })
}

/// One endpoint, with the same fields as the `agent http` flags.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EndpointSpec {
    /// Name used by `agent start NAME…` (config files only).
    #[serde(default)]
    pub name: Option<String>,
    /// Public URL: `NAME`, `NAME.DOMAIN` or `http://NAME.DOMAIN` (random when absent).
    #[serde(default)]
    pub url: Option<String>,
    /// The upstream.
    pub upstream: UpstreamSpec,
    /// An inline traffic policy (config files only).
    #[serde(default)]
    pub traffic_policy: Option<serde_yaml::Value>,
    /// A traffic-policy file.
    #[serde(default)]
    pub traffic_policy_file: Option<PathBuf>,
    /// Share the URL with other agents that enable pooling too (`pooling_enabled: true`).
    #[serde(default)]
    pub pooling_enabled: bool,
    /// Shorthand policy flags (`basic_auth`, `cidr_allow`, …), placed before the policy.
    #[serde(flatten)]
    pub shorthand: Shorthand,
}

impl EndpointSpec {
    /// The endpoint config; relative paths (policy file, CA file, `file://` root) are resolved
    /// against `base` (the config file's directory, or the working directory for flags), and
    /// every policy layer is compiled. `origin` names the endpoint in policy errors.
    pub fn into_config(self, base: &Path, origin: &str) -> Result<EndpointConfig, SpecError> {
        let input = &self.upstream.url.0;
        let mut upstream: Upstream = input.parse()?;
        let raw = self.url.as_deref().is_some_and(is_raw_url);
        if raw {
            upstream = upstream.into_tcp(input)?;
        } else if upstream.tcp_address().is_some() {
            return Err(SpecError::Conflict(
                "a tcp:// upstream needs a tcp:// or tls:// endpoint URL (agent tcp, agent tls)",
            ));
        }
        if self.upstream.proxy_protocol.is_some() && !raw {
            return Err(SpecError::Conflict(
                "proxy_protocol is for tcp:// and tls:// endpoints only",
            ));
        }
        let mut endpoint = EndpointConfig::new(upstream.relative_to(base));
        endpoint.proxy_protocol = self.upstream.proxy_protocol.map(|p| p.0);
        endpoint.url = self.url;
        endpoint.pooling_enabled = self.pooling_enabled;
        endpoint.upstream_protocol = self.upstream.protocol.map(|p| p.0).unwrap_or_default();
        endpoint.host_header = self
            .upstream
            .host_header
            .as_deref()
            .map(HostHeader::parse)
            .unwrap_or_default();
        endpoint.upstream_tls_verify =
            match (self.upstream.tls_verify_cas, self.upstream.tls_verify) {
                (Some(cas), _) => UpstreamTlsVerify::CaFile(base.join(cas)),
                (None, true) => UpstreamTlsVerify::SystemRoots,
                (None, false) => UpstreamTlsVerify::Off,
            };
        if self.traffic_policy.is_some() && self.traffic_policy_file.is_some() {
            return Err(SpecError::Conflict(
                "traffic_policy and traffic_policy_file are exclusive: give one",
            ));
        }
        let file = self.traffic_policy_file.map(|f| base.join(f));
        let mut layers = policy_input::layers(&self.shorthand, file.as_deref())?;
        if let Some(inline) = self.traffic_policy {
            // Serialising a parsed YAML value cannot fail.
            let text = serde_yaml::to_string(&inline).unwrap_or_default();
            layers.push(policy_input::inline(
                text,
                &format!("{origin}.traffic_policy"),
            )?);
        }
        endpoint.policies = layers;
        Ok(endpoint)
    }
}

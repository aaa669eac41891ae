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

/// The default of [`AgentConfig::ha_connections`]: links to two edges where the edges run in
/// a cluster (docs/cluster.md, "Agents linked to several edges").
pub const DEFAULT_HA_CONNECTIONS: usize = 2;

/// The most links an agent keeps ([`AgentConfig::ha_connections`]).
pub const MAX_HA_CONNECTIONS: usize = 8;

/// Everything an agent session needs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Edge address, `host:port` (QUIC on UDP, and TLS over TCP on the same port unless
    /// `edge_tcp` says otherwise). The first of the edges dialled.
    pub edge: String,
    /// More addresses of the same service's edges, dialled as `edge` is (`--edge A,B`,
    /// `agent.yml` `connect_urls`). A name that resolves to several addresses gives several
    /// candidates by itself; every name is resolved again before each new link.
    pub more_edges: Vec<String>,
    /// How many links to keep, each to a different edge (told apart by the edge id its
    /// `Welcome` names), while there are addresses to reach them; an edge that runs alone gets
    /// exactly one. 1 to [`MAX_HA_CONNECTIONS`]; values outside are taken as the nearest bound.
    pub ha_connections: usize,
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
            more_edges: Vec::new(),
            ha_connections: DEFAULT_HA_CONNECTIONS,
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

    /// Every edge address, `edge` first.
    pub fn edges(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.edge.as_str()).chain(self.more_edges.iter().map(String::as_str))
    }

    /// Sets the edge addresses from `list` (each entry may hold several, comma-separated),
    /// the first becoming `edge`.
    pub fn set_edges<S: AsRef<str>>(
        &mut self,
        list: impl IntoIterator<Item = S>,
    ) -> Result<(), EdgeListError> {
        let mut edges = edge_list(list)?.into_iter();
        self.edge = edges.next().ok_or(EdgeListError::Empty)?;
        self.more_edges = edges.collect();
        Ok(())
    }
}

/// Why a list of edge addresses was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EdgeListError {
    /// No address at all.
    #[error("no edge address given")]
    Empty,
    /// An entry is not `HOST:PORT`.
    #[error("edge address '{0}': expected HOST:PORT")]
    NotHostPort(String),
}

/// The addresses in `list`, each entry split at commas and trimmed, duplicates dropped (first
/// kept), each checked to be `HOST:PORT` (`[v6]:PORT` for an IPv6 literal).
pub fn edge_list<S: AsRef<str>>(
    list: impl IntoIterator<Item = S>,
) -> Result<Vec<String>, EdgeListError> {
    let mut out: Vec<String> = Vec::new();
    for entry in list {
        for addr in entry.as_ref().split(',').map(str::trim) {
            let port = addr
                .rsplit_once(':')
                .map(|(host, port)| (host, port.parse::<u16>()));
            match port {
                Some((host, Ok(_))) if !host.is_empty() => {}
                _ => return Err(EdgeListError::NotHostPort(addr.to_string())),
            }
            if !out.iter().any(|seen| seen == addr) {
                out.push(addr.to_string());
            }
        }
    }
    if out.is_empty() {
        return Err(EdgeListError::Empty);
    }
    Ok(out)
}

/// `ha_connections` out of its range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("ha_connections must be between 1 and {MAX_HA_CONNECTIONS} (got {0})")]
pub struct HaConnectionsError(pub u64);

/// Checks an `ha_connections` value (`--ha-connections`, `agent.yml`).
pub fn ha_connections(n: u64) -> Result<usize, HaConnectionsError> {
    match usize::try_from(n) {
        Ok(n) if (1..=MAX_HA_CONNECTIONS).contains(&n) => Ok(n),
        _ => Err(HaConnectionsError(n)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edge_lists_split_at_commas_and_keep_the_order() {
        assert_eq!(
            edge_list([
                "a.example:4443, b.example:4443",
                "[::1]:4443",
                "a.example:4443"
            ]),
            Ok(vec![
                "a.example:4443".to_string(),
                "b.example:4443".to_string(),
                "[::1]:4443".to_string()
            ])
        );
        assert_eq!(
            edge_list(["a.example:4443,"]),
            Err(EdgeListError::NotHostPort(String::new()))
        );
        assert_eq!(
            edge_list(["a.example"]),
            Err(EdgeListError::NotHostPort("a.example".into()))
        );
        assert_eq!(edge_list(Vec::<String>::new()), Err(EdgeListError::Empty));
    }

    #[test]
    fn set_edges_puts_the_first_in_edge() {
        let endpoint = EndpointConfig::new("http://127.0.0.1:1".parse().expect("upstream"));
        let mut config = AgentConfig::new("x:1", "t", endpoint);
        config.set_edges(["e2:4443,e3:4443"]).expect("list");
        assert_eq!(config.edge, "e2:4443");
        assert_eq!(config.more_edges, ["e3:4443"]);
        assert_eq!(config.edges().collect::<Vec<_>>(), ["e2:4443", "e3:4443"]);
    }

    #[test]
    fn ha_connections_is_one_to_eight() {
        assert_eq!(ha_connections(1), Ok(1));
        assert_eq!(ha_connections(8), Ok(8));
        assert_eq!(ha_connections(0), Err(HaConnectionsError(0)));
        assert_eq!(
            ha_connections(9).map_err(|e| e.to_string()),
            Err("ha_connections must be between 1 and 8 (got 9)".to_string())
        );
    }
}

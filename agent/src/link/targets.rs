//! Where links may go: every address of every configured edge (`--edge A,B`, `connect_urls`,
//! a name with several A/AAAA records), resolved again before each new link.

use super::error::AgentError;
use crate::config::agent::AgentConfig;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use tracing::debug;

/// One address an edge may answer at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The name the edge's certificate is checked against (and sent as SNI): the configured
    /// host, whichever of its addresses is dialled.
    pub(crate) host: String,
    /// The address QUIC goes to (and TLS over TCP, unless `edge_tcp` names another); what
    /// tells candidates apart.
    pub(crate) addr: SocketAddr,
}

/// The configured edges and the addresses they last resolved to.
pub(crate) struct Targets {
    edges: Vec<String>,
    /// Each name's addresses from its last successful lookup, used when a lookup fails.
    known: Mutex<HashMap<String, Vec<SocketAddr>>>,
}

impl Targets {
    /// Resolves every configured edge once: an address that is not `HOST:PORT`, or no
    /// address resolving at all, stops the agent before it dials.
    pub(crate) async fn new(config: &AgentConfig) -> Result<Self, AgentError> {
        let edges: Vec<String> = config.edges().map(str::to_string).collect();
        let targets = Self {
            edges,
            known: Mutex::default(),
        };
        let mut first_error = None;
        for edge in &targets.edges {
            host_of(edge)?;
            if let Err(e) = targets.lookup(edge).await {
                first_error.get_or_insert(e);
            }
        }
        match first_error {
            Some(e) if targets.known().is_empty() => Err(e),
            _ => Ok(targets),
        }
    }

    /// Every address of every edge, in configuration and resolver order, each once; a name
    /// whose lookup fails now keeps the addresses it had.
    pub(crate) async fn resolve(&self) -> Vec<Target> {
        for edge in &self.edges {
            if let Err(e) = self.lookup(edge).await {
                debug!(%edge, "edge address not resolved again: {e}");
            }
        }
        let known = self.known();
        let mut out: Vec<Target> = Vec::new();
        for edge in &self.edges {
            let Ok(host) = host_of(edge) else { continue };
            for addr in known.get(edge).into_iter().flatten() {
                if !out.iter().any(|t| t.addr == *addr) {
                    out.push(Target {
                        host: host.clone(),
                        addr: *addr,
                    });
                }
            }
        }
        out
    }

    fn known(&self) -> HashMap<String, Vec<SocketAddr>> {
        self.known.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    async fn lookup(&self, edge: &str) -> Result<(), AgentError> {
        let bad = |why: String| AgentError::EdgeAddress(edge.to_string(), why);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(edge)
            .await
            .map_err(|e| bad(e.to_string()))?
            .collect();
        if addrs.is_empty() {
            return Err(bad("no address found".into()));
        }
        self.known
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(edge.to_string(), addrs);
        Ok(())
    }
}

/// The first of `targets`, from `start` on and wrapping around, whose address is not in
/// `avoid`, with its index.
pub(crate) fn pick(
    targets: &[Target],
    avoid: &[SocketAddr],
    start: usize,
) -> Option<(usize, Target)> {
    let n = targets.len();
    (0..n)
        .map(|k| (start + k) % n)
        .find(|&i| !avoid.contains(&targets[i].addr))
        .map(|i| (i, targets[i].clone()))
}

/// The host of `HOST:PORT` (brackets of an IPv6 literal removed), for SNI and certificate
/// checks.
pub(crate) fn host_of(edge: &str) -> Result<String, AgentError> {
    let (host, _) = edge
        .rsplit_once(':')
        .ok_or_else(|| AgentError::EdgeAddress(edge.to_string(), "expected HOST:PORT".into()))?;
    Ok(host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::endpoint::EndpointConfig;

    fn config(edges: &[&str]) -> AgentConfig {
        let endpoint = EndpointConfig::new("http://127.0.0.1:1".parse().expect("upstream"));
        let mut config = AgentConfig::new("", "t", endpoint);
        config.set_edges(edges).expect("edges");
        config
    }

    #[tokio::test]
    async fn every_address_once_in_order_names_kept_for_tls() {
        let targets = Targets::new(&config(&[
            "127.0.0.1:4443,127.0.0.2:4443",
            "127.0.0.1:4443",
        ]))
        .await
        .expect("resolves");
        let all = targets.resolve().await;
        let addrs: Vec<String> = all.iter().map(|t| t.addr.to_string()).collect();
        assert_eq!(addrs, ["127.0.0.1:4443", "127.0.0.2:4443"]);
        assert_eq!(all[1].host, "127.0.0.2");
        let v6 = Targets::new(&config(&["[::1]:4443"])).await.expect("v6");
        assert_eq!(v6.resolve().await[0].host, "::1");
    }

    #[test]
    fn host_of_strips_brackets_and_needs_a_port() {
        assert_eq!(host_of("[::1]:4443").expect("v6"), "::1");
        assert_eq!(host_of("edge.example:4443").expect("name"), "edge.example");
        assert!(host_of("edge.example").is_err());
    }

    #[test]
    fn pick_goes_round_and_avoids() {
        let t = |last: u8| Target {
            host: "h".into(),
            addr: SocketAddr::from(([127, 0, 0, last], 1)),
        };
        let all = [t(1), t(2), t(3)];
        assert_eq!(pick(&all, &[], 0).map(|p| p.0), Some(0));
        assert_eq!(pick(&all, &[], 4).map(|p| p.0), Some(1));
        assert_eq!(pick(&all, &[t(2).addr, t(3).addr], 1).map(|p| p.0), Some(0));
        assert_eq!(pick(&all, &[t(1).addr, t(2).addr, t(3).addr], 0), None);
        assert_eq!(pick(&[], &[], 0), None);
    }
}

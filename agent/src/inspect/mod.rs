//! The request inspector: a bounded in-memory capture of forwarded exchanges and TCP
//! connections, served as a web page and a JSON API (ngrok agent's shape) on a loopback address,
//! with live updates and replay. See `docs/inspector.md`.
//!
//! ```no_run
//! # async fn demo(mut config: sluice_agent::AgentConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use sluice_agent::inspect::{InspectConfig, Inspector};
//! let inspector = Inspector::start(InspectConfig::default(), &mut config).await?;
//! println!("inspect at http://{}", inspector.addr());
//! # Ok(()) }
//! ```

mod api;
mod capture;
mod connections;
mod guard;
mod page;
mod render;
mod replay;
mod responses;
mod store;

use crate::config::agent::AgentConfig;
use crate::forward::forwarder::Forwarder;
use crate::link::events::AgentEvent;
use render::{LinkInfo, TunnelInfo};
use sluice_proto::control::BoundEndpoint;
use sluice_proto::link::Transport;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use connections::ConnectionCounts;
pub use store::{Limits, Store};

/// The inspector's default address, as ngrok's.
pub const DEFAULT_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 4040);

/// Where and how the inspector runs.
#[derive(Debug, Clone)]
pub struct InspectConfig {
    /// Address to listen on.
    pub addr: SocketAddr,
    /// If `addr`'s port is taken, try this many following ports (0: fail at once).
    pub fallback_ports: u16,
    /// Host names allowed in the `Host` header besides `localhost`, `127.0.0.1` and `::1`.
    pub allow_hosts: Vec<String>,
    /// Ring bounds and body cut.
    pub limits: Limits,
}

impl Default for InspectConfig {
    /// `127.0.0.1:4040`, falling back up to `127.0.0.1:4049`, default limits.
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADDR,
            fallback_ports: 9,
            allow_hosts: Vec::new(),
            limits: Limits::default(),
        }
    }
}

/// Why the inspector did not start.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// No port could be bound.
    #[error("inspector address {tried}: {source} (choose another with --inspect-addr, or --inspect=false)")]
    Bind {
        /// The address or address range tried.
        tried: String,
        /// The last bind error.
        source: std::io::Error,
    },
    /// The limits make no sense.
    #[error("inspector limits: {0}")]
    Limits(String),
    /// The replay client could not be set up.
    #[error("inspector replay client: {0}")]
    Tls(#[from] crate::forward::handler::HandlerError),
}

/// A running inspector; stops serving when dropped.
pub struct Inspector {
    addr: SocketAddr,
    store: Arc<Store>,
    tunnels: Arc<RwLock<Vec<TunnelInfo>>>,
    links: Arc<RwLock<BTreeMap<usize, LinkInfo>>>,
    task: JoinHandle<()>,
}

impl Inspector {
    /// Binds the inspector and adds its capture observer to `agent` (so start it before the
    /// agent). Replays use `agent`'s upstream settings and observers.
    pub async fn start(
        config: InspectConfig,
        agent: &mut AgentConfig,
    ) -> Result<Self, InspectError> {
        check_limits(&config.limits)?;
        let listener = bind(config.addr, config.fallback_ports).await?;
        let addr = listener.local_addr().map_err(|source| InspectError::Bind {
            tried: config.addr.to_string(),
            source,
        })?;
        let store = Store::new(config.limits);
        agent
            .observers
            .push(Arc::new(capture::Capture::new(store.clone())));
        let forwarder = Forwarder::new(agent)?.with_observers(agent.observers.clone());
        let tunnels = Arc::new(RwLock::new(
            agent
                .endpoints
                .iter()
                .enumerate()
                .map(|(i, e)| TunnelInfo {
                    name: e.url.clone().unwrap_or_else(|| format!("endpoint-{i}")),
                    public_url: String::new(),
                    upstream: e.upstream.to_string(),
                    transport: None,
                })
                .collect(),
        ));
        let links = Arc::default();
        let api = Arc::new(api::Api {
            store: store.clone(),
            tunnels: tunnels.clone(),
            links: Arc::clone(&links),
            endpoints: agent.endpoints.clone().into(),
            forwarder: Arc::new(forwarder),
            allow: guard::HostAllowList::new(config.allow_hosts),
        });
        let task = tokio::spawn(api::serve(listener, api));
        Ok(Self {
            addr,
            store,
            tunnels,
            links,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The capture ring.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// Shows what the agent reported: tunnels named once online ([`Self::set_online`]), and
    /// each link to the edges in `/api/tunnels`' `links`, gone while it reconnects.
    pub fn event(&self, event: &AgentEvent) {
        match event {
            AgentEvent::Online {
                session_id,
                endpoints,
                link,
                edge,
                ..
            } => {
                self.set_online(endpoints, link.transport());
                self.links().insert(
                    edge.slot,
                    LinkInfo {
                        edge: edge.addr.to_string(),
                        edge_id: edge.edge_id.clone(),
                        transport: link.transport(),
                        session_id: session_id.clone(),
                    },
                );
            }
            AgentEvent::Reconnecting { slot, .. } => {
                self.links().remove(slot);
            }
        }
    }

    fn links(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<usize, LinkInfo>> {
        self.links.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Names tunnels after the hostnames the edge bound (from [`crate::AgentEvent::Online`]),
    /// online over `transport`.
    pub fn set_online(&self, endpoints: &[(BoundEndpoint, String)], transport: Transport) {
        let mut tunnels = self.tunnels.write().unwrap_or_else(|p| p.into_inner());
        *tunnels = endpoints
            .iter()
            .map(|(bound, upstream)| TunnelInfo {
                name: bound.hostname.clone(),
                public_url: bound.url.clone(),
                upstream: upstream.clone(),
                transport: Some(transport),
            })
            .collect();
    }
}

impl Drop for Inspector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn check_limits(l: &Limits) -> Result<(), InspectError> {
    if l.max_requests == 0 {
        return Err(InspectError::Limits(
            "max requests must be at least 1".into(),
        ));
    }
    // One exchange holds up to two cut bodies; the ring must fit at least that.
    if l.max_bytes < 2 * l.body_limit + 4096 {
        return Err(InspectError::Limits(format!(
            "max bytes ({}) must be at least twice the body limit ({}) plus 4096",
            l.max_bytes, l.body_limit
        )));
    }
    Ok(())
}

/// Binds `addr`, or with `fallback` > 0 the first free port of `addr.port() ..= +fallback`.
async fn bind(addr: SocketAddr, fallback: u16) -> Result<TcpListener, InspectError> {
    let last_port = addr.port().saturating_add(fallback);
    let mut candidate = addr;
    loop {
        match TcpListener::bind(candidate).await {
            Ok(l) => return Ok(l),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && addr.port() != 0
                    && candidate.port() < last_port =>
            {
                candidate.set_port(candidate.port() + 1);
            }
            Err(source) => {
                let tried = if candidate == addr {
                    addr.to_string()
                } else {
                    format!("{addr} to port {}", candidate.port())
                };
                let source = if source.kind() == std::io::ErrorKind::AddrInUse {
                    std::io::Error::new(source.kind(), "already in use (is another agent running?)")
                } else {
                    source
                };
                return Err(InspectError::Bind { tried, source });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn taken_port_falls_back_only_when_asked() {
        let taken = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = bind(addr, 0).await.expect_err("taken");
        let msg = err.to_string();
        assert!(
            msg.contains(&addr.to_string()) && msg.contains("already in use"),
            "{msg}"
        );
        // The next port may itself be taken on a busy machine; any later port will do.
        if let Ok(l) = bind(addr, 20).await {
            let port = l.local_addr().expect("addr").port();
            assert!(port > addr.port() && port <= addr.port() + 20);
        }
    }

    #[test]
    fn limits_must_hold_one_exchange() {
        assert!(check_limits(&Limits::default()).is_ok());
        let tight = Limits {
            max_requests: 10,
            max_bytes: 1000,
            body_limit: 1000,
        };
        assert!(check_limits(&tight)
            .expect_err("tight")
            .to_string()
            .contains("twice the body limit"));
    }
}

//! The route registry: which agent session serves which hostname.
//!
//! Kept behind the narrow [`RouteRegistry`] trait so that a multi-edge deployment can back it
//! with a shared store later; [`LocalRoutes`] is the in-process implementation.

use super::authtoken::TokenId;
use super::handle::SessionHandle;
use crate::hostname::{wildcard_candidates, Hostname};
use arc_swap::ArcSwap;
use sluice_policy::{EndpointInfo, Engine};
use sluice_proto::scheme::Scheme;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Where requests for one hostname go.
pub struct Route {
    /// The hostname (exact or wildcard) this route serves.
    pub hostname: Hostname,
    /// The public URL shown to users.
    pub url: String,
    /// The only scheme this endpoint answers on (https by default with an HTTPS listener).
    pub scheme: Scheme,
    /// Id of the endpoint within the agent's session.
    pub endpoint_id: u32,
    /// The agent session that carries the traffic.
    pub session: Arc<SessionHandle>,
    /// The endpoint's compiled traffic policy (operator layers first), if any.
    pub policy: Option<Arc<Engine>>,
    /// `endpoint.*` facts for policy expressions.
    pub endpoint: Arc<EndpointInfo>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("hostname", &self.hostname)
            .field("endpoint_id", &self.endpoint_id)
            .field("session", &self.session.id)
            .field("policy", &self.policy.is_some())
            .finish()
    }
}

impl Route {
    fn owner(&self) -> TokenId {
        self.session.owner
    }
}

/// Why a hostname could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A live session with another authtoken holds it.
    #[error("hostname '{0}' is already online with another agent")]
    Taken(String),
}

/// Hostname → route registry shared by the agent listener (writes) and the proxy (reads).
pub trait RouteRegistry: Send + Sync + 'static {
    /// Claims every route in `routes` or none. A hostname held by a live session of a different
    /// authtoken is refused; one held by the same authtoken, or by a dead session, is taken over.
    /// Returns the routes that were replaced.
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError>;
    /// Removes `hostname` if it is still held by `session_id`.
    fn release(&self, hostname: &Hostname, session_id: &str);
    /// Finds the route for a request's host (lowercase, no port): exact names first, then the
    /// most specific wildcard.
    fn lookup(&self, host: &str) -> Option<Arc<Route>>;
}

/// In-memory registry: lock-free reads of an immutable map, writers copy on write.
#[derive(Default)]
pub struct LocalRoutes {
    map: ArcSwap<HashMap<String, Arc<Route>>>,
    write: Mutex<()>,
}

impl LocalRoutes {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn update<T>(&self, f: impl FnOnce(&mut HashMap<String, Arc<Route>>) -> T) -> T {
        // Poisoning only means another writer panicked; the map itself is always whole because
        // it is swapped in atomically.
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut next = HashMap::clone(&self.map.load());
        let out = f(&mut next);
        self.map.store(Arc::new(next));
        out
    }
}

impl RouteRegistry for LocalRoutes {
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError> {
        self.update(|map| {
            for route in &routes {
                if let Some(held) = map.get(route.hostname.as_str()) {
                    if held.owner() != route.owner() && held.session.is_alive() {
                        return Err(ClaimError::Taken(route.hostname.to_string()));
                    }
                }
            }
            Ok(routes
                .into_iter()
                .filter_map(|r| map.insert(r.hostname.to_string(), r))
                .collect())
        })
    }

    fn release(&self, hostname: &Hostname, session_id: &str) {
        if self
            .map
            .load()
            .get(hostname.as_str())
            .is_some_and(|r| r.session.id == session_id)
        {
            self.update(|map| {
                if map
                    .get(hostname.as_str())
                    .is_some_and(|r| r.session.id == session_id)
                {
                    map.remove(hostname.as_str());
                }
            });
        }
    }

    fn lookup(&self, host: &str) -> Option<Arc<Route>> {
        let map = self.map.load();
        if let Some(route) = map.get(host) {
            return Some(route.clone());
        }
        wildcard_candidates(host).find_map(|pattern| map.get(&pattern).cloned())
    }
}

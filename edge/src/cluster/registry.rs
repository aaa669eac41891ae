//! [`ClusterRoutes`]: the route registry of an edge in a cluster: its own members first, then
//! the endpoints other edges hold, as the mirror (`mirror.rs`) keeps them.

use crate::tunnel::routes::{
    lookup_across, ClaimError, EndpointKey, LocalRoutes, Route, RouteRegistry, RouteSet,
};
use sluice_proto::scheme::Scheme;
use std::sync::Arc;

/// This edge's members (claimed and released here) over the other edges' (read only).
pub struct ClusterRoutes {
    local: LocalRoutes,
    remote: Arc<LocalRoutes>,
}

impl ClusterRoutes {
    /// A registry whose lookups fall back to `remote`, which the mirror fills.
    pub fn new(remote: Arc<LocalRoutes>) -> Self {
        Self {
            local: LocalRoutes::new(),
            remote,
        }
    }
}

impl RouteRegistry for ClusterRoutes {
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError> {
        self.local.claim(routes)
    }

    fn release(&self, key: &EndpointKey, member_id: &str) {
        self.local.release(key, member_id);
    }

    /// The name one edge would pick among all members (exact before wildcard, the most
    /// specific wildcard first); for the same name, a member here serves the request directly
    /// and only an endpoint no session here holds goes to another edge.
    fn lookup(&self, scheme: Scheme, host: &str) -> Option<Arc<RouteSet>> {
        lookup_across([&self.local, self.remote.as_ref()], scheme, host)
    }

    fn lookup_key(&self, key: &EndpointKey) -> Option<Arc<RouteSet>> {
        self.local
            .lookup_key(key)
            .or_else(|| self.remote.lookup_key(key))
    }

    fn lookup_port(&self, port: u16) -> Option<Arc<RouteSet>> {
        self.local
            .lookup_port(port)
            .or_else(|| self.remote.lookup_port(port))
    }

    /// This edge's own members: each edge lists its own.
    fn members(&self) -> Vec<Arc<Route>> {
        self.local.members()
    }
}

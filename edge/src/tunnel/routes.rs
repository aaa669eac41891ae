//! The route registry: which agent sessions serve which endpoint.
//!
//! An endpoint is a scheme and a hostname (`http://x` and `https://x` are two endpoints), served
//! by a set of members: one agent endpoint, or several when every member enabled pooling, in
//! which case each request goes to a live member at random. Kept behind the narrow
//! [`RouteRegistry`] trait (claim all or none, release one member, look up from memory) so that
//! a multi-edge deployment can back it with a shared store later; [`LocalRoutes`] is the
//! in-process implementation.

use super::authtoken::TokenId;
use super::handle::SessionHandle;
use crate::hostname::{wildcard_candidates, Hostname};
use arc_swap::ArcSwap;
use rand::Rng;
use sluice_policy::{EndpointInfo, Engine};
use sluice_proto::scheme::Scheme;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// One agent endpoint serving an endpoint: a member of its route set.
pub struct Route {
    /// The hostname (exact or wildcard) this route serves.
    pub hostname: Hostname,
    /// The public URL shown to users.
    pub url: String,
    /// The scheme this endpoint answers on (https by default with an HTTPS listener).
    pub scheme: Scheme,
    /// Whether the agent allowed other agents to share the endpoint (`--pooling-enabled`).
    pub pooling: bool,
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
            .field("scheme", &self.scheme)
            .field("hostname", &self.hostname)
            .field("pooling", &self.pooling)
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

    /// The endpoint this route serves.
    pub fn key(&self) -> EndpointKey {
        EndpointKey {
            scheme: self.scheme,
            hostname: self.hostname.clone(),
        }
    }
}

/// An endpoint's identity: its scheme and hostname (exact or wildcard).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The hostname or wildcard pattern.
    pub hostname: Hostname,
}

impl std::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.hostname)
    }
}

/// Why an endpoint could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// A live session with another authtoken holds it.
    #[error("'{0}' is already online with another agent")]
    Taken(EndpointKey),
    /// The same authtoken holds it, and the newcomer or the holders did not enable pooling.
    #[error(
        "'{0}' is already online with another agent of this authtoken; to share it between \
         agents, start every one of them with --pooling-enabled (pooling_enabled: true in \
         agent.yml)"
    )]
    NotPooled(EndpointKey),
}

/// The members serving one endpoint. Members of a pool all enabled pooling and share one
/// authtoken; a set without pooling has one member.
#[derive(Debug, Default, Clone)]
pub struct RouteSet {
    members: Vec<Arc<Route>>,
}

impl RouteSet {
    /// Every member, live or not.
    pub fn members(&self) -> &[Arc<Route>] {
        &self.members
    }

    /// A member for a new request: a live member that is not leaving, at random; else a
    /// leaving one (its agent still serves); else the first (its requests fail with the
    /// agent-gone code until the session's end frees the route, as before pools).
    pub fn pick(&self) -> Option<Arc<Route>> {
        if let [only] = self.members.as_slice() {
            return Some(only.clone());
        }
        self.random(|m| m.session.is_alive() && !m.session.is_leaving())
            .or_else(|| self.random(|m| m.session.is_alive()))
            .or_else(|| self.members.first().cloned())
    }

    /// A member that passes `usable`, at random.
    fn random(&self, usable: impl Fn(&Route) -> bool) -> Option<Arc<Route>> {
        let count = self.members.iter().filter(|m| usable(m)).count();
        if count == 0 {
            return None;
        }
        let n = rand::thread_rng().gen_range(0..count);
        self.members.iter().filter(|m| usable(m)).nth(n).cloned()
    }

    /// Admits `route` into the set under the pooling and takeover rules; returns the members
    /// it replaces, which leave the set.
    fn admit(&mut self, route: &Arc<Route>) -> Result<Vec<Arc<Route>>, ClaimError> {
        let live: Vec<&Arc<Route>> = self
            .members
            .iter()
            .filter(|m| m.session.is_alive())
            .collect();
        if live.iter().any(|m| m.owner() != route.owner()) {
            return Err(ClaimError::Taken(route.key()));
        }
        let same_run = |m: &Arc<Route>| m.session.run_id == route.session.run_id;
        // A pool when the newcomer and every live member enabled pooling; otherwise the same
        // authtoken takes an unpooled endpoint over, and an agent run its own endpoint.
        let pool = route.pooling && live.iter().all(|m| m.pooling);
        let takeover =
            (!route.pooling && live.iter().all(|m| !m.pooling)) || live.iter().all(|m| same_run(m));
        if !pool && !takeover {
            return Err(ClaimError::NotPooled(route.key()));
        }
        // A pool keeps its other live members; only this run's earlier member and dead ones go.
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|m| !pool || same_run(m) || !m.session.is_alive());
        self.members = kept;
        self.members.push(route.clone());
        Ok(gone)
    }

    /// Removes `session_id`'s member; whether the set is empty afterwards.
    fn remove(&mut self, session_id: &str) -> bool {
        self.members.retain(|m| m.session.id != session_id);
        self.members.is_empty()
    }
}

/// Endpoint → members registry shared by the agent listener (writes) and the proxy (reads).
pub trait RouteRegistry: Send + Sync + 'static {
    /// Claims every route in `routes` or none. An endpoint held by a live session of another
    /// authtoken is refused; one held by the same authtoken is taken over, unless the newcomer
    /// and every holder enabled pooling, when the newcomer joins them (replacing only its own
    /// run's earlier member). Mixing pooled and unpooled members is refused with a hint.
    /// Returns the members that were replaced.
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError>;
    /// Removes `session_id`'s member of `key`, if it is still there.
    fn release(&self, key: &EndpointKey, session_id: &str);
    /// The members for a request's host (lowercase, no port) on `scheme`: exact names first,
    /// then the most specific wildcard.
    fn lookup(&self, scheme: Scheme, host: &str) -> Option<Arc<RouteSet>>;
}

/// The sets of one scheme, by hostname or pattern.
type Table = HashMap<String, Arc<RouteSet>>;

/// In-memory registry: lock-free reads of immutable maps (one per scheme), writers copy on
/// write.
#[derive(Default)]
pub struct LocalRoutes {
    http: ArcSwap<Table>,
    https: ArcSwap<Table>,
    write: Mutex<()>,
}

impl LocalRoutes {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    fn table(&self, scheme: Scheme) -> &ArcSwap<Table> {
        match scheme {
            Scheme::Http => &self.http,
            Scheme::Https => &self.https,
        }
    }

    /// Runs `f` on copies of both tables and publishes them together.
    fn update<T>(&self, f: impl FnOnce(&mut Table, &mut Table) -> T) -> T {
        // Poisoning only means another writer panicked; the maps themselves are always whole
        // because they are swapped in atomically.
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut http = Table::clone(&self.http.load());
        let mut https = Table::clone(&self.https.load());
        let out = f(&mut http, &mut https);
        self.http.store(Arc::new(http));
        self.https.store(Arc::new(https));
        out
    }
}

impl RouteRegistry for LocalRoutes {
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError> {
        self.update(|http, https| {
            let mut replaced = Vec::new();
            for route in &routes {
                let table = match route.scheme {
                    Scheme::Http => &mut *http,
                    Scheme::Https => &mut *https,
                };
                let set = Arc::make_mut(table.entry(route.hostname.to_string()).or_default());
                // On a refusal the copies are dropped unpublished: all or none.
                replaced.extend(set.admit(route)?);
            }
            Ok(replaced)
        })
    }

    fn release(&self, key: &EndpointKey, session_id: &str) {
        let held = |t: &Table| {
            t.get(key.hostname.as_str())
                .is_some_and(|s| s.members.iter().any(|m| m.session.id == session_id))
        };
        if !held(&self.table(key.scheme).load()) {
            return;
        }
        self.update(|http, https| {
            let table = match key.scheme {
                Scheme::Http => http,
                Scheme::Https => https,
            };
            if let Some(set) = table.get_mut(key.hostname.as_str()) {
                if Arc::make_mut(set).remove(session_id) {
                    table.remove(key.hostname.as_str());
                }
            }
        });
    }

    fn lookup(&self, scheme: Scheme, host: &str) -> Option<Arc<RouteSet>> {
        let table = self.table(scheme).load();
        if let Some(set) = table.get(host) {
            return Some(set.clone());
        }
        wildcard_candidates(host).find_map(|pattern| table.get(&pattern).cloned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::authtoken::TokenSet;
    use rustls::pki_types::PrivatePkcs8KeyDer;

    /// Loopback QUIC endpoints whose connections back the sessions below; they live as long as
    /// this value.
    struct Link {
        server: quinn::Endpoint,
        client: quinn::Endpoint,
        /// The server's side of each connection: dropping it would close the connection.
        accepted: std::sync::Mutex<Vec<quinn::Connection>>,
    }

    impl Link {
        fn new() -> Self {
            let cert =
                rcgen::generate_simple_self_signed(vec!["localhost".into()]).expect("certificate");
            let der = cert.cert.der().clone();
            let key = PrivatePkcs8KeyDer::from(cert.key_pair.serialize_der());
            let server_config =
                quinn::ServerConfig::with_single_cert(vec![der.clone()], key.into())
                    .expect("server config");
            let any = "127.0.0.1:0".parse().expect("address");
            let server = quinn::Endpoint::server(server_config, any).expect("server");
            let mut roots = rustls::RootCertStore::empty();
            roots.add(der).expect("root");
            let mut client = quinn::Endpoint::client(any).expect("client");
            client.set_default_client_config(
                quinn::ClientConfig::with_root_certificates(Arc::new(roots))
                    .expect("client config"),
            );
            Self {
                server,
                client,
                accepted: std::sync::Mutex::default(),
            }
        }

        /// A session of `owner`'s agent run `run` on a fresh live connection.
        async fn session(&self, id: &str, owner: TokenId, run: &str) -> Arc<SessionHandle> {
            let addr = self.server.local_addr().expect("address");
            let connecting = self.client.connect(addr, "localhost").expect("connect");
            let (conn, accepted) = tokio::join!(connecting, async {
                self.server
                    .accept()
                    .await
                    .expect("incoming")
                    .await
                    .expect("accepted")
            });
            self.accepted.lock().expect("lock").push(accepted);
            let gauge = prometheus::IntGauge::new("streams", "open streams").expect("gauge");
            Arc::new(SessionHandle::new(
                id.into(),
                owner,
                run.into(),
                conn.expect("connection"),
                gauge,
            ))
        }
    }

    fn route(session: &Arc<SessionHandle>, pooling: bool) -> Arc<Route> {
        let hostname = Hostname::parse("app.example.com").expect("hostname");
        Arc::new(Route {
            url: format!("http://{hostname}"),
            hostname,
            scheme: Scheme::Http,
            pooling,
            endpoint_id: 0,
            session: session.clone(),
            policy: None,
            endpoint: Arc::default(),
        })
    }

    fn members(routes: &LocalRoutes) -> Vec<String> {
        let set = routes.lookup(Scheme::Http, "app.example.com");
        let mut ids: Vec<String> = set
            .map(|s| s.members().iter().map(|m| m.session.id.clone()).collect())
            .unwrap_or_default();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn a_reconnecting_member_replaces_only_itself_and_strangers_stay_out() {
        let link = Link::new();
        let tokens = TokenSet::new(["mine", "theirs"]);
        let mine = tokens.verify("mine").expect("token");
        let theirs = tokens.verify("theirs").expect("token");
        let routes = LocalRoutes::new();
        let a1 = link.session("a1", mine, "run-a").await;
        let b = link.session("b", mine, "run-b").await;
        assert!(routes.claim(vec![route(&a1, true)]).expect("a1").is_empty());
        assert!(routes.claim(vec![route(&b, true)]).expect("b").is_empty());
        assert_eq!(members(&routes), ["a1", "b"]);

        // Run A reconnects while its old session still looks alive: only a1 goes.
        let a2 = link.session("a2", mine, "run-a").await;
        let replaced = routes.claim(vec![route(&a2, true)]).expect("a2");
        assert_eq!(replaced.len(), 1);
        assert_eq!(replaced[0].session.id, "a1");
        assert_eq!(members(&routes), ["a2", "b"]);

        // Another authtoken never joins; an unpooled newcomer gets the hint; nothing changes.
        let other = link.session("c", theirs, "run-c").await;
        assert!(matches!(
            routes.claim(vec![route(&other, true)]),
            Err(ClaimError::Taken(_))
        ));
        let solo = link.session("d", mine, "run-d").await;
        assert!(matches!(
            routes.claim(vec![route(&solo, false)]),
            Err(ClaimError::NotPooled(_))
        ));
        assert_eq!(members(&routes), ["a2", "b"]);

        // A leaving member is not picked while another can take the request.
        b.leave();
        for _ in 0..20 {
            let picked = routes
                .lookup(Scheme::Http, "app.example.com")
                .and_then(|s| s.pick())
                .expect("a member");
            assert_eq!(picked.session.id, "a2");
        }
        routes.release(&route(&b, true).key(), "b");
        assert_eq!(members(&routes), ["a2"]);
    }
}

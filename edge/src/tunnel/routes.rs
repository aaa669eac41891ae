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
use super::stream::{LinkSlot, StreamLink};
use crate::hostname::{wildcard_candidates, Hostname};
use crate::record::AgentLeg;
use crate::urls::PublicUrls;
use arc_swap::ArcSwap;
use rand::Rng;
use sluice_policy::{EndpointInfo, Engine, InternalUrl};
use sluice_proto::frame::ForwardHead;
use sluice_proto::scheme::Scheme;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What serves a member's requests.
pub enum Member {
    /// An agent endpoint: requests go to the agent over its session.
    Agent {
        /// The agent session that carries the traffic.
        session: Arc<SessionHandle>,
        /// Id of the endpoint within the agent's session.
        endpoint_id: u32,
    },
    /// An endpoint another edge of the cluster holds (docs/cluster.md): this edge runs its
    /// policy, then hands the request over the link between the two edges, and the other edge
    /// passes it to a member of its own.
    Remote {
        /// The other edge's id.
        edge_id: Arc<str>,
        /// The endpoint's key in the cluster store.
        endpoint: Arc<str>,
        /// The authtoken holding it there.
        owner: TokenId,
        /// The link to that edge (empty while it is down).
        link: Arc<LinkSlot>,
    },
    /// A cloud endpoint (`edge.yaml` `cloud_endpoints:`): its policy answers or forwards, and
    /// it is live for as long as the edge runs.
    Cloud {
        /// `cloud/<url>` for `edge.yaml`'s, the admin API's `ep_…`: unique per edge.
        id: String,
        /// The authtoken whose internal endpoints it may forward to and whose pools it joins.
        owner: TokenId,
    },
}

/// One member of an endpoint's route set: an agent endpoint or a cloud endpoint.
pub struct Route {
    /// The endpoint this member serves.
    pub key: EndpointKey,
    /// The URL shown to users (public, or `https://NAME.internal`).
    pub url: String,
    /// Whether the member allowed others to share the endpoint (`--pooling-enabled`).
    pub pooling: bool,
    /// What serves its requests.
    pub member: Member,
    /// The member's compiled traffic policy (operator layers first), if any.
    pub policy: Option<Arc<Engine>>,
    /// A digest of the policy's documents: members with equal ids run the same policy, so a
    /// request may move between them (see [`RouteSet::alternative`]).
    pub policy_id: [u8; 32],
    /// `endpoint.*` facts for policy expressions.
    pub endpoint: Arc<EndpointInfo>,
}

impl std::fmt::Debug for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Route")
            .field("key", &self.key.to_string())
            .field("pooling", &self.pooling)
            .field("member", &self.member_id())
            .field("policy", &self.policy.is_some())
            .finish()
    }
}

impl Route {
    /// The authtoken the member belongs to.
    pub fn owner(&self) -> TokenId {
        match &self.member {
            Member::Agent { session, .. } => session.owner,
            Member::Remote { owner, .. } | Member::Cloud { owner, .. } => *owner,
        }
    }

    /// The agent session's id, the other edge's, or the cloud endpoint's: what
    /// [`RouteRegistry::release`] takes.
    pub fn member_id(&self) -> &str {
        match &self.member {
            Member::Agent { session, .. } => &session.id,
            Member::Remote { edge_id, .. } => edge_id,
            Member::Cloud { id, .. } => id,
        }
    }

    /// The agent session and endpoint id, for an agent member.
    pub fn agent(&self) -> Option<(&Arc<SessionHandle>, u32)> {
        match &self.member {
            Member::Agent {
                session,
                endpoint_id,
            } => Some((session, *endpoint_id)),
            Member::Remote { .. } | Member::Cloud { .. } => None,
        }
    }

    /// How a request reaches this member: the link it goes over, the id the agent knows the
    /// endpoint by, and for another edge's member what that edge needs to find its own (its
    /// link waited for up to `wait`, the first time it is dialled). `None` for a cloud member,
    /// or another edge's whose link is down.
    pub async fn carrier(
        &self,
        wait: Duration,
    ) -> Option<(Arc<StreamLink>, u32, Option<ForwardHead>)> {
        match &self.member {
            Member::Agent {
                session,
                endpoint_id,
            } => Some((session.link.clone(), *endpoint_id, None)),
            Member::Remote { endpoint, link, .. } => {
                let forward = ForwardHead {
                    endpoint: endpoint.to_string(),
                    policy_id: self.policy_id,
                    hops: 1,
                };
                Some((link.wait(wait).await?, 0, Some(forward)))
            }
            Member::Cloud { .. } => None,
        }
    }

    /// The other edge this member is on, for another edge's member.
    pub fn remote_edge(&self) -> Option<&str> {
        match &self.member {
            Member::Remote { edge_id, .. } => Some(edge_id),
            _ => None,
        }
    }

    /// The agent session and its transport, as the request and connection records name them.
    pub fn agent_leg(&self) -> Option<AgentLeg<'_>> {
        self.agent().map(|(session, _)| AgentLeg {
            session_id: &session.id,
            transport: session.link.conn.transport(),
        })
    }

    /// The run it belongs to: a reconnecting agent run replaces only its own member.
    fn run_id(&self) -> &str {
        match &self.member {
            Member::Agent { session, .. } => &session.run_id,
            Member::Remote { edge_id, .. } => edge_id,
            Member::Cloud { id, .. } => id,
        }
    }

    /// Whether requests can reach it (a cloud member always can; another edge's while the
    /// link to it is up).
    pub fn is_alive(&self) -> bool {
        match &self.member {
            Member::Agent { session, .. } => session.is_alive(),
            Member::Remote { link, .. } => link.current().is_some(),
            Member::Cloud { .. } => true,
        }
    }

    /// Whether its agent said it is stopping.
    fn is_leaving(&self) -> bool {
        self.agent().is_some_and(|(s, _)| s.is_leaving())
    }

    /// Whether it is a cloud endpoint (no agent behind it, here or elsewhere).
    pub fn is_cloud(&self) -> bool {
        matches!(self.member, Member::Cloud { .. })
    }
}

/// Who can reach an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Binding {
    /// The public listeners, on the edge's port for the scheme.
    Public,
    /// A TCP endpoint: public on a port of its own, from the edge's `tcp_ports`.
    Port(u16),
    /// Only `forward-internal` from endpoints of the same authtoken.
    Internal {
        /// The namespace: the authtoken that brought it online.
        owner: TokenId,
        /// The endpoint's port (any; 443 or 80 by default).
        port: u16,
    },
}

/// An endpoint's identity: scheme, hostname (exact or wildcard) and binding (public, or
/// internal to one authtoken on a port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EndpointKey {
    /// `http` or `https`.
    pub scheme: Scheme,
    /// The hostname or wildcard pattern.
    pub hostname: Hostname,
    /// Public, or internal to a namespace.
    pub binding: Binding,
}

impl EndpointKey {
    /// A public endpoint.
    pub fn public(scheme: Scheme, hostname: Hostname) -> Self {
        Self {
            scheme,
            hostname,
            binding: Binding::Public,
        }
    }

    /// The internal endpoint `url` names in `owner`'s namespace (any scheme: forward-internal
    /// checks that a request goes to an HTTP one and a connection to a TCP or TLS one).
    pub fn internal(owner: TokenId, url: &InternalUrl) -> Option<Self> {
        let scheme = Scheme::parse(url.scheme())?;
        Some(Self {
            scheme,
            hostname: Hostname::parse(url.host()).ok()?,
            binding: Binding::Internal {
                owner,
                port: url.port(),
            },
        })
    }

    /// A TCP endpoint on the edge's `port`; `hostname` is the edge's domain.
    pub fn tcp(hostname: Hostname, port: u16) -> Self {
        Self {
            scheme: Scheme::Tcp,
            hostname,
            binding: Binding::Port(port),
        }
    }

    /// The `endpoint.*` facts policies see for this endpoint, reached at `url`.
    pub fn info(&self, urls: &PublicUrls, id: String, url: &str) -> EndpointInfo {
        match self.binding {
            Binding::Public => urls.endpoint_info(id, &self.hostname, self.scheme),
            Binding::Port(port) | Binding::Internal { port, .. } => EndpointInfo {
                id,
                url: url.to_string(),
                host: self.hostname.to_string(),
                port,
                protocol: self.scheme.as_str().to_string(),
            },
        }
    }

    /// The same name and binding under the other scheme; an internal endpoint on its scheme's
    /// default port moves to the other scheme's (`https://x.internal` ↔ `http://x.internal`).
    pub fn other_scheme(&self) -> Self {
        let (scheme, default_port) = match self.scheme {
            Scheme::Http => (Scheme::Https, 443),
            Scheme::Https => (Scheme::Http, 80),
            Scheme::Tcp | Scheme::Tls => return self.clone(),
        };
        let binding = match self.binding {
            Binding::Internal { owner, port } if port == default_port_of(self.scheme) => {
                Binding::Internal {
                    owner,
                    port: default_port,
                }
            }
            other => other,
        };
        Self {
            scheme,
            hostname: self.hostname.clone(),
            binding,
        }
    }
}

/// 80 or 443 (TLS endpoints share the HTTPS port); TCP endpoints have none.
fn default_port_of(scheme: Scheme) -> u16 {
    match scheme {
        Scheme::Http => 80,
        Scheme::Https | Scheme::Tls => 443,
        Scheme::Tcp => 0,
    }
}

impl std::fmt::Display for EndpointKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme.as_str(), self.hostname)?;
        match self.binding {
            Binding::Port(port) => write!(f, ":{port}"),
            Binding::Internal { port, .. } if port != default_port_of(self.scheme) => {
                write!(f, ":{port}")
            }
            _ => Ok(()),
        }
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
    /// The operator's cloud endpoint holds it without pooling.
    #[error(
        "'{0}' is a cloud endpoint of this edge (edge.yaml cloud_endpoints) that does not enable \
         pooling"
    )]
    Cloud(EndpointKey),
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
        self.random(|m| m.is_alive() && !m.is_leaving())
            .or_else(|| self.random(Route::is_alive))
            .or_else(|| self.members.first().cloned())
    }

    /// Another live member with an agent behind it (here or on another edge) for a request
    /// whose stream to `failed` could not be opened (so nothing of it reached that agent): one
    /// that is not leaving and runs the same policy, because the request's policy phase
    /// already ran with `failed`'s policy.
    pub fn alternative(&self, failed: &Route) -> Option<Arc<Route>> {
        self.random(|m| {
            m.member_id() != failed.member_id()
                && !m.is_cloud()
                && m.policy_id == failed.policy_id
                && m.is_alive()
                && !m.is_leaving()
        })
    }

    /// A live agent member running the policy `policy_id` names, not leaving if one is not, at
    /// random: for a request another edge forwarded after running that policy.
    pub fn pick_for_policy(&self, policy_id: &[u8; 32]) -> Option<Arc<Route>> {
        let fits = |m: &Route| m.agent().is_some() && m.is_alive() && &m.policy_id == policy_id;
        self.random(|m| fits(m) && !m.is_leaving())
            .or_else(|| self.random(fits))
    }

    /// Whether some member can take a request now.
    pub fn is_online(&self) -> bool {
        self.members.iter().any(|m| m.is_alive())
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
        let live: Vec<&Arc<Route>> = self.members.iter().filter(|m| m.is_alive()).collect();
        if live.iter().any(|m| m.owner() != route.owner()) {
            return Err(ClaimError::Taken(route.key.clone()));
        }
        let same_run = |m: &Arc<Route>| m.run_id() == route.run_id();
        // A pool when the newcomer and every live member enabled pooling; otherwise the same
        // authtoken takes an unpooled endpoint over, and an agent run its own endpoint.
        let pool = route.pooling && live.iter().all(|m| m.pooling);
        let takeover =
            (!route.pooling && live.iter().all(|m| !m.pooling)) || live.iter().all(|m| same_run(m));
        // Nothing takes a cloud endpoint over: the operator defined it.
        if !pool && live.iter().any(|m| m.is_cloud()) {
            return Err(ClaimError::Cloud(route.key.clone()));
        }
        if !pool && !takeover {
            return Err(ClaimError::NotPooled(route.key.clone()));
        }
        // A pool keeps its other live members; only this run's earlier member and dead ones go.
        let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.members)
            .into_iter()
            .partition(|m| !pool || same_run(m) || !m.is_alive());
        self.members = kept;
        self.members.push(route.clone());
        Ok(gone)
    }

    /// Removes `member_id`'s member; whether the set is empty afterwards.
    fn remove(&mut self, member_id: &str) -> bool {
        self.members.retain(|m| m.member_id() != member_id);
        self.members.is_empty()
    }
}

/// Endpoint → members registry shared by the agent listener and cloud endpoints (writes) and
/// the proxy (reads).
pub trait RouteRegistry: Send + Sync + 'static {
    /// Claims every route in `routes` or none. An endpoint held by a live member of another
    /// authtoken is refused; one held by the same authtoken is taken over, unless the newcomer
    /// and every holder enabled pooling, when the newcomer joins them (replacing only its own
    /// run's earlier member). Mixing pooled and unpooled members is refused with a hint, and
    /// a cloud endpoint without pooling is never taken over. Returns the members that were
    /// replaced.
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError>;
    /// Removes `member_id`'s member of `key` (an agent session id or a cloud endpoint id), if
    /// it is still there.
    fn release(&self, key: &EndpointKey, member_id: &str);
    /// The members of the public endpoint for a request's host (lowercase, no port) on
    /// `scheme`: exact names first, then the most specific wildcard. Internal endpoints are
    /// never found here.
    fn lookup(&self, scheme: Scheme, host: &str) -> Option<Arc<RouteSet>>;
    /// The members of the endpoint `key` names exactly (an internal endpoint's key holds its
    /// namespace and port; a public one's pattern is matched as written, not as a host).
    fn lookup_key(&self, key: &EndpointKey) -> Option<Arc<RouteSet>>;
    /// The members of the TCP endpoint on the edge's `port`.
    fn lookup_port(&self, port: u16) -> Option<Arc<RouteSet>>;
    /// Every member online, for the operator's endpoint list (not a request path).
    fn members(&self) -> Vec<Arc<Route>>;
}

/// The public sets of one scheme, by hostname or pattern.
type Table = HashMap<String, Arc<RouteSet>>;

/// Every set, published together.
#[derive(Default, Clone)]
struct Tables {
    http: Table,
    https: Table,
    /// TLS endpoints, by the SNI name or pattern they are routed by.
    tls: Table,
    /// TCP endpoints, by port.
    tcp: HashMap<u16, Arc<RouteSet>>,
    /// Internal endpoints, by their whole key (namespace and port included).
    internal: HashMap<EndpointKey, Arc<RouteSet>>,
}

impl Tables {
    /// The hostname table of a public scheme (TCP endpoints are keyed by port instead).
    fn named(&self, scheme: Scheme) -> Option<&Table> {
        match scheme {
            Scheme::Http => Some(&self.http),
            Scheme::Https => Some(&self.https),
            Scheme::Tls => Some(&self.tls),
            Scheme::Tcp => None,
        }
    }

    /// The set `key` lives in, created empty when missing.
    fn set_mut(&mut self, key: &EndpointKey) -> &mut RouteSet {
        let slot = match (key.binding, key.scheme) {
            (Binding::Internal { .. }, _) => self.internal.entry(key.clone()).or_default(),
            (Binding::Port(port), _) => self.tcp.entry(port).or_default(),
            // A public TCP key always has its port (`EndpointKey::tcp`).
            (Binding::Public, Scheme::Http | Scheme::Tcp) => {
                self.http.entry(key.hostname.to_string()).or_default()
            }
            (Binding::Public, Scheme::Https) => {
                self.https.entry(key.hostname.to_string()).or_default()
            }
            (Binding::Public, Scheme::Tls) => self.tls.entry(key.hostname.to_string()).or_default(),
        };
        Arc::make_mut(slot)
    }

    fn get(&self, key: &EndpointKey) -> Option<&Arc<RouteSet>> {
        match key.binding {
            Binding::Internal { .. } => self.internal.get(key),
            Binding::Port(port) => self.tcp.get(&port),
            Binding::Public => self.named(key.scheme)?.get(key.hostname.as_str()),
        }
    }

    fn remove(&mut self, key: &EndpointKey) {
        let name = key.hostname.as_str();
        match (key.binding, key.scheme) {
            (Binding::Internal { .. }, _) => drop(self.internal.remove(key)),
            (Binding::Port(port), _) => drop(self.tcp.remove(&port)),
            (Binding::Public, Scheme::Http | Scheme::Tcp) => drop(self.http.remove(name)),
            (Binding::Public, Scheme::Https) => drop(self.https.remove(name)),
            (Binding::Public, Scheme::Tls) => drop(self.tls.remove(name)),
        }
    }
}

/// In-memory registry: lock-free reads of an immutable snapshot, writers copy on write.
#[derive(Default)]
pub struct LocalRoutes {
    tables: ArcSwap<Tables>,
    write: Mutex<()>,
}

impl LocalRoutes {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes `members` the whole set of `key` (none: removes it), without the pooling rules:
    /// for a registry that mirrors what the cluster store already arbitrated.
    pub fn put(&self, key: &EndpointKey, members: Vec<Arc<Route>>) {
        let _ = self.update(|tables| {
            if members.is_empty() {
                tables.remove(key);
            } else {
                tables.set_mut(key).members = members;
            }
            Ok::<(), ClaimError>(())
        });
    }

    /// Runs `f` on a copy of the tables and publishes it when `f` succeeds; on an error the
    /// copy is dropped unpublished, so a claim is all or none.
    fn update<T, E>(&self, f: impl FnOnce(&mut Tables) -> Result<T, E>) -> Result<T, E> {
        // Poisoning only means another writer panicked; the tables themselves are always whole
        // because they are swapped in atomically.
        let _guard = self.write.lock().unwrap_or_else(|e| e.into_inner());
        let mut tables = Tables::clone(&self.tables.load());
        let out = f(&mut tables)?;
        self.tables.store(Arc::new(tables));
        Ok(out)
    }
}

/// The public set for a request's `host` on `scheme` across `registries`, in one order: an
/// exact name in any of them first, then the most specific wildcard in any of them; on a tie
/// the earlier registry wins. (A cluster's edge asks its own members before the other edges',
/// and a more specific name held elsewhere still beats a wildcard held here.)
pub fn lookup_across<const N: usize>(
    registries: [&LocalRoutes; N],
    scheme: Scheme,
    host: &str,
) -> Option<Arc<RouteSet>> {
    // Arrays, not vectors: this runs for every request.
    let tables = registries.map(|r| r.tables.load());
    let named = tables.each_ref().map(|t| t.named(scheme));
    let find = |name: &str| named.iter().flatten().find_map(|t| t.get(name).cloned());
    find(host).or_else(|| wildcard_candidates(host).find_map(|pattern| find(&pattern)))
}

impl RouteRegistry for LocalRoutes {
    fn claim(&self, routes: Vec<Arc<Route>>) -> Result<Vec<Arc<Route>>, ClaimError> {
        self.update(|tables| {
            let mut replaced = Vec::new();
            for route in &routes {
                replaced.extend(tables.set_mut(&route.key).admit(route)?);
            }
            Ok(replaced)
        })
    }

    fn release(&self, key: &EndpointKey, member_id: &str) {
        let held = |t: &Tables| {
            t.get(key)
                .is_some_and(|s| s.members.iter().any(|m| m.member_id() == member_id))
        };
        if !held(&self.tables.load()) {
            return;
        }
        let _ = self.update(|tables| {
            if tables.set_mut(key).remove(member_id) {
                tables.remove(key);
            }
            Ok::<(), ClaimError>(())
        });
    }

    fn lookup(&self, scheme: Scheme, host: &str) -> Option<Arc<RouteSet>> {
        lookup_across([self], scheme, host)
    }

    fn lookup_key(&self, key: &EndpointKey) -> Option<Arc<RouteSet>> {
        self.tables.load().get(key).cloned()
    }

    fn lookup_port(&self, port: u16) -> Option<Arc<RouteSet>> {
        self.tables.load().tcp.get(&port).cloned()
    }

    fn members(&self) -> Vec<Arc<Route>> {
        let t = self.tables.load();
        t.http
            .values()
            .chain(t.https.values())
            .chain(t.tls.values())
            .chain(t.tcp.values())
            .chain(t.internal.values())
            .flat_map(|set| set.members().iter().cloned())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::credentials::Credentials;
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
                sluice_proto::link::Link::Quic(conn.expect("connection")),
                gauge,
            ))
        }
    }

    fn route(session: &Arc<SessionHandle>, pooling: bool) -> Arc<Route> {
        route_with_policy(session, pooling, [0; 32])
    }

    fn route_with_policy(
        session: &Arc<SessionHandle>,
        pooling: bool,
        policy_id: [u8; 32],
    ) -> Arc<Route> {
        let hostname = Hostname::parse("app.example.com").expect("hostname");
        Arc::new(Route {
            url: format!("http://{hostname}"),
            key: EndpointKey::public(Scheme::Http, hostname),
            pooling,
            member: Member::Agent {
                session: session.clone(),
                endpoint_id: 0,
            },
            policy: None,
            policy_id,
            endpoint: Arc::default(),
        })
    }

    /// `session`'s unpooled member of `http://{name}`.
    fn named_route(session: &Arc<SessionHandle>, name: &str) -> Arc<Route> {
        let hostname = Hostname::parse(name).expect("hostname");
        Arc::new(Route {
            url: format!("http://{hostname}"),
            key: EndpointKey::public(Scheme::Http, hostname),
            pooling: false,
            member: Member::Agent {
                session: session.clone(),
                endpoint_id: 0,
            },
            policy: None,
            policy_id: [0; 32],
            endpoint: Arc::default(),
        })
    }

    #[tokio::test]
    async fn across_registries_an_exact_name_anywhere_beats_a_wildcard_here() {
        let link = Link::new();
        let owner = Credentials::configured(["mine"])
            .verify("mine")
            .expect("token")
            .token;
        let (here, there) = (LocalRoutes::new(), LocalRoutes::new());
        let on_here = link.session("here", owner, "run").await;
        let on_there = link.session("there", owner, "run").await;
        let claim = |routes: &LocalRoutes, session, names: &[&str]| {
            let claimed = names.iter().map(|n| named_route(session, n)).collect();
            routes.claim(claimed).expect("claim");
        };
        claim(&here, &on_here, &["*.example.com", "www.example.com"]);
        claim(
            &there,
            &on_there,
            &["api.example.com", "www.example.com", "*.b.example.com"],
        );
        let holder = |host: &str| {
            lookup_across([&here, &there], Scheme::Http, host)
                .map(|set| set.members()[0].member_id().to_string())
        };
        assert_eq!(holder("api.example.com").as_deref(), Some("there"));
        assert_eq!(holder("www.example.com").as_deref(), Some("here"));
        assert_eq!(holder("x.b.example.com").as_deref(), Some("there"));
        assert_eq!(holder("other.example.com").as_deref(), Some("here"));
        assert_eq!(holder("example.org"), None);
    }

    fn members(routes: &LocalRoutes) -> Vec<String> {
        let set = routes.lookup(Scheme::Http, "app.example.com");
        let mut ids: Vec<String> = set
            .map(|s| {
                s.members()
                    .iter()
                    .map(|m| m.member_id().to_string())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    }

    #[tokio::test]
    async fn a_reconnecting_member_replaces_only_itself_and_strangers_stay_out() {
        let link = Link::new();
        let tokens = Credentials::configured(["mine", "theirs"]);
        let mine = tokens.verify("mine").expect("token").token;
        let theirs = tokens.verify("theirs").expect("token").token;
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
        assert_eq!(replaced[0].member_id(), "a1");
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
            assert_eq!(picked.member_id(), "a2");
        }
        routes.release(&route(&b, true).key, "b");
        assert_eq!(members(&routes), ["a2"]);
    }

    #[tokio::test]
    async fn a_request_moves_only_to_a_live_member_with_the_same_policy() {
        let link = Link::new();
        let mine = Credentials::configured(["mine"])
            .verify("mine")
            .expect("token")
            .token;
        let (a, b, c) = (
            link.session("a", mine, "run-a").await,
            link.session("b", mine, "run-b").await,
            link.session("c", mine, "run-c").await,
        );
        let failed = route_with_policy(&a, true, [1; 32]);
        let same = route_with_policy(&b, true, [1; 32]);
        let other = route_with_policy(&c, true, [2; 32]);
        let set = RouteSet {
            members: vec![failed.clone(), same.clone(), other],
        };
        for _ in 0..20 {
            let next = set
                .alternative(&failed)
                .expect("a member with the same policy");
            assert_eq!(next.member_id(), "b");
        }
        b.leave();
        assert!(
            set.alternative(&failed).is_none(),
            "b is leaving, c runs another policy"
        );
    }
}

//! [`Mirror`]: the endpoints the other edges hold, kept in this edge's memory so that a request
//! for one of them is routed without a store call. The whole set is read when the edge joins
//! (and again every [`RESYNC_EVERY`], which also drops the entries of edges that died without
//! letting go); the announcements on `sluice:routes` bring each change in between. Because the
//! copy is complete, a request for a name nobody holds is answered from memory too: random names
//! cannot flood the store. For the other edges' `tcp://` endpoints this edge also listens on
//! their ports, so a client may reach any edge.

use super::claims::{holders_key, CALL_LIMIT, LEASE, ROUTES_CHANNEL};
use super::peers::PeerLinks;
use super::spec::MemberSpec;
use super::store::{self, Follower};
use crate::tunnel::admit::member_policy;
use crate::tunnel::authtoken::TokenId;
use crate::tunnel::ports::PortHold;
use crate::tunnel::routes::{Binding, EndpointKey, LocalRoutes, Member, Route};
use crate::tunnel::state::TunnelState;
use parking_lot::Mutex;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How often the whole set is read again (one lease: a dead edge's entries are gone by then).
pub const RESYNC_EVERY: Duration = LEASE;

/// Endpoints read per script call.
const BATCH: usize = 256;

/// The live entries of each endpoint (KEYS: holder hashes): per key, a flat list of
/// `EDGE-ID, TOKEN-DIGEST, SPEC` triples. An endpoint whose hash is gone (no entry for two
/// leases) leaves the `sluice:endpoints` list.
const READ: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i, key in ipairs(KEYS) do
  local name = string.sub(key, 11)
  local specs = 'sluice:spec:' .. name
  local live = {}
  local fields = redis.call('HGETALL', key)
  if #fields == 0 then
    redis.call('SREM', 'sluice:endpoints', name)
  end
  for j = 1, #fields, 2 do
    local value = fields[j + 1]
    local sep = string.find(value, '|', 1, true)
    local expiry = sep and tonumber(string.sub(value, sep + 1)) or 0
    local spec = redis.call('HGET', specs, fields[j])
    if expiry >= now and spec then
      table.insert(live, fields[j])
      table.insert(live, string.sub(value, 1, sep - 1))
      table.insert(live, spec)
    end
  end
  out[i] = live
end
return out
";

/// One other edge's member of an endpoint, with what it was built from.
struct Known {
    edge_id: String,
    owner: String,
    spec: String,
    route: Arc<Route>,
    /// Missing from the last full read: a store that lost its data is written again by the
    /// holding edges within a second, so a member is dropped only when the next read still
    /// misses it, or when an announcement says it left.
    missing: bool,
}

/// Why the endpoints are read.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Reason {
    /// An announcement: the holder changed, and what the store says is current.
    Announced,
    /// The periodic full read: a member it misses may only be missing from a store that lost
    /// its data.
    Resync,
}

/// The other edges' endpoints, as this edge routes them.
pub struct Mirror {
    edge_id: String,
    store: ConnectionManager,
    read: Script,
    /// Where the mirrored members are published (the registry's second half).
    remote: Arc<LocalRoutes>,
    /// What a member needs to compile its policy here.
    tunnel: Arc<TunnelState>,
    peers: Arc<PeerLinks>,
    /// By store name: the endpoint's key and its members on other edges.
    known: Mutex<HashMap<String, (EndpointKey, Vec<Known>)>>,
    /// This edge's listeners on the ports of the other edges' `tcp://` endpoints.
    ports: Mutex<HashMap<u16, PortHold>>,
    /// Ports that could not be listened on (warned about once).
    refused_ports: Mutex<HashSet<u16>>,
    errors: IntCounterVec,
}

impl Mirror {
    /// A mirror for edge `edge_id`, empty until [`Mirror::follow`] runs.
    pub fn new(
        edge_id: &str,
        store: ConnectionManager,
        remote: Arc<LocalRoutes>,
        tunnel: Arc<TunnelState>,
        peers: Arc<PeerLinks>,
        errors: IntCounterVec,
    ) -> Arc<Self> {
        Arc::new(Self {
            edge_id: edge_id.to_string(),
            store,
            read: Script::new(READ),
            remote,
            tunnel,
            peers,
            known: Mutex::default(),
            ports: Mutex::default(),
            refused_ports: Mutex::default(),
            errors,
        })
    }

    /// Follows the announcements and reads the whole set on every (re)subscription and every
    /// [`RESYNC_EVERY`], until aborted; the routes already mirrored keep serving meanwhile.
    pub async fn follow(self: Arc<Self>, client: redis::Client) {
        let errors = self.errors.clone();
        let every = Some(RESYNC_EVERY);
        store::follow(client, ROUTES_CHANNEL, every, &*self, &errors, "subscribe").await;
    }

    /// Reads every listed endpoint again, and those this edge mirrors (which may be gone).
    pub async fn resync(&self) {
        let mut conn = self.store.clone();
        let mut cmd = redis::cmd("SMEMBERS");
        cmd.arg("sluice:endpoints");
        let listed = cmd.query_async::<Vec<String>>(&mut conn);
        let listed = match tokio::time::timeout(CALL_LIMIT, listed).await {
            Ok(Ok(listed)) => listed,
            _ => return self.errors.with_label_values(&["mirror"]).inc(),
        };
        let mut names: HashSet<String> = listed.into_iter().collect();
        names.extend(self.known.lock().keys().cloned());
        let names: Vec<String> = names.into_iter().collect();
        for batch in names.chunks(BATCH) {
            self.refresh(batch, Reason::Resync).await;
        }
    }

    /// Reads the endpoints `names` and publishes what changed.
    async fn refresh(&self, names: &[String], reason: Reason) {
        let mut call = self.read.prepare_invoke();
        for name in names {
            call.key(holders_key(name));
        }
        let mut conn = self.store.clone();
        let read = call.invoke_async::<Vec<Vec<String>>>(&mut conn);
        let entries = match tokio::time::timeout(CALL_LIMIT, read).await {
            Ok(Ok(entries)) => entries,
            _ => return self.errors.with_label_values(&["mirror"]).inc(),
        };
        for (name, flat) in names.iter().zip(entries) {
            let entries: Vec<(&str, &str, &str)> = flat
                .chunks_exact(3)
                .map(|e| (e[0].as_str(), e[1].as_str(), e[2].as_str()))
                .filter(|(edge, _, _)| *edge != self.edge_id)
                .collect();
            self.update(name, &entries, reason);
        }
        self.hold_ports().await;
    }

    /// Listens on the port of every `tcp://` endpoint the other edges hold (within this edge's
    /// `tcp_ports`), so that a client that reaches this edge finds the endpoint too, and
    /// closes the ports none holds any more. A port this edge cannot bind (another program
    /// has it) is tried again at each read.
    async fn hold_ports(&self) {
        let Some(tcp) = &self.tunnel.tcp_ports else {
            return;
        };
        let wanted: HashSet<u16> = self
            .known
            .lock()
            .values()
            .filter_map(|(key, _)| match key.binding {
                Binding::Port(port) => Some(port),
                Binding::Public | Binding::Internal { .. } => None,
            })
            .collect();
        self.ports.lock().retain(|port, _| wanted.contains(port));
        for port in wanted {
            if self.ports.lock().contains_key(&port) {
                continue;
            }
            match tcp.hold(port).await {
                Ok(hold) => {
                    self.refused_ports.lock().remove(&port);
                    self.ports.lock().insert(port, hold);
                }
                Err(e) if self.refused_ports.lock().insert(port) => {
                    warn!(
                        port,
                        "cannot listen for another edge's tcp:// endpoint: {e}"
                    )
                }
                Err(_) => {}
            }
        }
    }

    /// Makes the mirrored members of `name` those of `entries` (edge, owner, spec), reusing
    /// the members whose spec did not change; on a full read, a member missing for the first
    /// time is kept (see [`Known::missing`]).
    fn update(&self, name: &str, entries: &[(&str, &str, &str)], reason: Reason) {
        let mut known = self.known.lock();
        let before = known.remove(name);
        let mut key = before.as_ref().map(|(key, _)| key.clone());
        let mut old: Vec<Known> = before.map(|(_, members)| members).unwrap_or_default();
        let mut members = Vec::with_capacity(entries.len());
        let mut changed = false;
        for &(edge_id, owner, spec) in entries {
            let same = |k: &Known| k.edge_id == edge_id && k.owner == owner && k.spec == spec;
            if let Some(i) = old.iter().position(same) {
                let mut kept = old.swap_remove(i);
                kept.missing = false;
                members.push(kept);
                continue;
            }
            match self.build(name, edge_id, owner, spec) {
                Ok(route) => {
                    changed = true;
                    key.get_or_insert_with(|| route.key.clone());
                    members.push(Known {
                        edge_id: edge_id.to_string(),
                        owner: owner.to_string(),
                        spec: spec.to_string(),
                        route,
                        missing: false,
                    });
                }
                Err(Skip::Broken(why)) => {
                    warn!(endpoint = %name, edge = %edge_id, "cannot serve another edge's endpoint here: {why}")
                }
            }
        }
        let Some(key) = key else {
            return;
        };
        // Members left over in `old` are gone, unless a full read misses them the first time.
        if reason == Reason::Resync {
            for mut member in std::mem::take(&mut old) {
                if member.missing {
                    old.push(member);
                } else {
                    member.missing = true;
                    members.push(member);
                }
            }
        }
        if changed || !old.is_empty() {
            self.remote
                .put(&key, members.iter().map(|k| k.route.clone()).collect());
        }
        if !members.is_empty() {
            known.insert(name.to_string(), (key, members));
        }
    }

    /// The route of another edge's member of endpoint `name`.
    fn build(
        &self,
        name: &str,
        edge_id: &str,
        owner: &str,
        spec: &str,
    ) -> Result<Arc<Route>, Skip> {
        let owner = TokenId::from_hex(owner)
            .ok_or_else(|| Skip::Broken("the owner is not a digest".into()))?;
        let spec = MemberSpec::parse(spec).map_err(|e| Skip::Broken(e.to_string()))?;
        let key = spec.key(owner).map_err(|e| Skip::Broken(e.to_string()))?;
        let policy_id = spec
            .policy_digest()
            .map_err(|e| Skip::Broken(e.to_string()))?;
        let (policy, _) = member_policy(&self.tunnel, &key, &spec.policies, owner)
            .map_err(|e| Skip::Broken(e.to_string()))?;
        let endpoint = key.info(&self.tunnel.urls, spec.id, &spec.url);
        Ok(Arc::new(Route {
            endpoint: Arc::new(endpoint),
            key,
            url: spec.url,
            pooling: spec.pooling,
            member: Member::Remote {
                edge_id: edge_id.into(),
                endpoint: name.into(),
                owner,
                link: self.peers.slot(edge_id),
            },
            policy,
            policy_id,
        }))
    }
}

#[async_trait::async_trait]
impl Follower for Mirror {
    async fn on_message(&self, name: String) {
        self.refresh(&[name], Reason::Announced).await;
    }

    async fn on_resync(&self) {
        self.resync().await;
    }
}

/// Why another edge's member is not mirrored: its entry cannot be used here.
enum Skip {
    Broken(String),
}

//! [`Claims`]: which edge holds which endpoint, in the cluster store, so an endpoint held by
//! one authtoken on one edge cannot be taken by another authtoken on any edge, and the other
//! edges can find (and forward to) the edge that holds it.
//!
//! Each endpoint is a hash `sluice:ep:{key}` whose fields are edge ids and whose values are
//! `TOKEN-DIGEST|EXPIRY-MS` (Redis's clock, read inside the script, so edges' clocks do not
//! matter), beside `sluice:spec:{key}` holding each edge's [`MemberSpec`] JSON. A claim is one
//! Lua script over every endpoint of a session: entries past their expiry are dropped, any live
//! entry of another authtoken refuses the whole claim (nothing is written), else this edge's
//! entry and spec are written with a fresh lease, the endpoint is listed in `sluice:endpoints`,
//! and a new or changed entry is announced on `sluice:routes` (`mirror.rs` listens). Each edge
//! renews its entries every [`RENEW_EVERY`] by running the same script again, which also puts
//! them back after the store lost its data; a dead edge's entries expire after [`LEASE`]. An
//! edge drops its entry (and announces it) when its last session on that endpoint ends. A new
//! session's claim also tells the other edges holding one of its endpoints for the same
//! authtoken which agent run took it, so that they replace their members as one edge would
//! (`control.rs`).
//!
//! [`MemberSpec`]: super::spec::MemberSpec

use crate::tunnel::authtoken::TokenId;
use crate::tunnel::routes::EndpointKey;
use parking_lot::Mutex;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use redis::Script;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tracing::warn;

/// How long an edge's claim lives without renewal: a dead edge's endpoints are free after it.
pub const LEASE: Duration = Duration::from_secs(3);

/// How often an edge renews its claims (a third of the lease: two renewals may fail).
pub const RENEW_EVERY: Duration = Duration::from_secs(1);

/// Longest a store call may take before it counts as a failure.
pub(crate) const CALL_LIMIT: Duration = Duration::from_millis(1500);

/// The pub/sub channel on which edges announce endpoints they took or let go of.
pub const ROUTES_CHANNEL: &str = "sluice:routes";

/// The hash of endpoint `name`'s holders.
pub(crate) fn holders_key(name: &str) -> String {
    format!("sluice:ep:{name}")
}

/// Checks every endpoint (KEYS: holder hashes) for a live entry of another token, then writes
/// this edge's entry and spec into each (ARGV: edge id, token digest, lease ms, the claiming
/// agent run (empty on renewal), then one spec per key). 0 when claimed, else the 1-based index
/// of the first endpoint another token holds. A claim (not a renewal) also tells each other edge
/// holding an endpoint for the same token which run took it (`control.rs` replaces the members
/// that rule says go).
const CLAIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = ARGV[2]
local others = {}
for i, key in ipairs(KEYS) do
  others[i] = {}
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    local value = fields[j + 1]
    local sep = string.find(value, '|', 1, true)
    local expiry = sep and tonumber(string.sub(value, sep + 1)) or 0
    if expiry < now then
      redis.call('HDEL', key, fields[j])
    elseif string.sub(value, 1, sep - 1) ~= mine then
      return i
    elseif fields[j] ~= ARGV[1] then
      table.insert(others[i], fields[j])
    end
  end
end
local lease = tonumber(ARGV[3])
local run = ARGV[4]
local value = mine .. '|' .. (now + lease)
for i, key in ipairs(KEYS) do
  local name = string.sub(key, 11)
  local specs = 'sluice:spec:' .. name
  local spec = ARGV[4 + i]
  local held = redis.call('HGET', key, ARGV[1])
  local known = redis.call('HGET', specs, ARGV[1])
  redis.call('HSET', key, ARGV[1], value)
  redis.call('PEXPIRE', key, lease * 2)
  redis.call('HSET', specs, ARGV[1], spec)
  redis.call('PEXPIRE', specs, lease * 2)
  redis.call('SADD', 'sluice:endpoints', name)
  if not held or known ~= spec then
    redis.call('PUBLISH', 'sluice:routes', name)
  end
  if run ~= '' and #others[i] > 0 then
    local pooled = cjson.decode(spec).pooling == true
    local message = cjson.encode({replace = {endpoint = name, owner = mine, run = run, pooled = pooled}})
    for _, edge in ipairs(others[i]) do
      redis.call('PUBLISH', 'sluice:edge:' .. edge, message)
    end
  end
end
return 0
";

/// Removes this edge's entry and spec from each endpoint (KEYS: holder hashes; ARGV: edge id)
/// and announces it.
const RELEASE: &str = r"
for _, key in ipairs(KEYS) do
  local name = string.sub(key, 11)
  redis.call('HDEL', key, ARGV[1])
  redis.call('HDEL', 'sluice:spec:' .. name, ARGV[1])
  redis.call('PUBLISH', 'sluice:routes', name)
end
return 0
";

/// One endpoint of a session, as the store names and describes it.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The store's name for it ([`super::spec::store_key`]).
    pub name: String,
    /// Its key in this edge's registry.
    pub key: EndpointKey,
    /// Its [`super::spec::MemberSpec`] as JSON.
    pub spec: String,
}

/// An endpoint this edge holds.
struct Held {
    owner: TokenId,
    key: EndpointKey,
    spec: String,
    /// Local sessions holding it.
    sessions: usize,
}

/// Why a claim was refused.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// Another authtoken holds this endpoint on some edge.
    #[error("'{0}' is held by another authtoken on another edge")]
    Taken(String),
    /// The store did not answer: nothing new is claimed (fail closed).
    #[error("the cluster store is unreachable: {0}")]
    Unavailable(String),
}

/// This edge's claims in the cluster store.
pub struct Claims {
    conn: ConnectionManager,
    edge_id: String,
    claim: Script,
    release: Script,
    /// Endpoints this edge holds, by store name.
    held: Mutex<HashMap<String, Held>>,
    /// Store calls that failed, by operation (`claim`, `renew`, `release`).
    errors: IntCounterVec,
}

impl Claims {
    /// Claims as edge `edge_id` over `conn`; failed calls are counted in `errors`.
    pub fn new(conn: ConnectionManager, edge_id: &str, errors: IntCounterVec) -> Arc<Self> {
        Arc::new(Self {
            conn,
            edge_id: edge_id.to_string(),
            claim: Script::new(CLAIM),
            release: Script::new(RELEASE),
            held: Mutex::default(),
            errors,
        })
    }

    /// This edge's id in the cluster.
    pub fn edge_id(&self) -> &str {
        &self.edge_id
    }

    /// The registry key of the endpoint the store names `name`, when this edge holds it (what
    /// a request forwarded here is for).
    pub fn local_key(&self, name: &str) -> Option<EndpointKey> {
        self.held.lock().get(name).map(|held| held.key.clone())
    }

    /// Runs `script` over the holder hashes of `names` with `args`, within [`CALL_LIMIT`].
    async fn run<'a>(
        &self,
        script: &Script,
        names: impl IntoIterator<Item = &'a str>,
        args: &[&str],
    ) -> Result<usize, redis::RedisError> {
        let mut call = script.prepare_invoke();
        for name in names {
            call.key(holders_key(name));
        }
        for arg in args {
            call.arg(*arg);
        }
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_LIMIT, call.invoke_async::<usize>(&mut conn)).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            ))),
        }
    }

    /// Runs the claim script over `claims` for `owner`, by agent run `run` (empty when
    /// renewing).
    async fn run_claim(
        &self,
        claims: &[Claim],
        owner: TokenId,
        run: &str,
    ) -> Result<usize, redis::RedisError> {
        let token = owner.hex();
        let lease = LEASE.as_millis().to_string();
        let mut args = vec![self.edge_id.as_str(), token.as_str(), lease.as_str(), run];
        args.extend(claims.iter().map(|c| c.spec.as_str()));
        self.run(&self.claim, claims.iter().map(|c| c.name.as_str()), &args)
            .await
    }

    /// Claims every endpoint of a session of agent run `run` for `owner`, or none.
    pub async fn claim(
        &self,
        claims: &[Claim],
        owner: TokenId,
        run: &str,
    ) -> Result<(), ClaimError> {
        match self.run_claim(claims, owner, run).await {
            Ok(0) => {
                let mut held = self.held.lock();
                for claim in claims {
                    held.entry(claim.name.clone())
                        .or_insert_with(|| Held {
                            owner,
                            key: claim.key.clone(),
                            spec: claim.spec.clone(),
                            sessions: 0,
                        })
                        .sessions += 1;
                }
                Ok(())
            }
            Ok(i) => Err(ClaimError::Taken(
                claims
                    .get(i - 1)
                    .map(|c| c.name.clone())
                    .unwrap_or_default(),
            )),
            Err(e) => {
                self.errors.with_label_values(&["claim"]).inc();
                Err(ClaimError::Unavailable(e.to_string()))
            }
        }
    }

    /// One local session let go of the endpoints named `names`; the last one removes this
    /// edge's entries.
    pub async fn release(&self, names: &[String]) {
        let gone: Vec<&str> = {
            let mut held = self.held.lock();
            names
                .iter()
                .filter(|name| match held.get_mut(name.as_str()) {
                    Some(entry) if entry.sessions > 1 => {
                        entry.sessions -= 1;
                        false
                    }
                    Some(_) => {
                        held.remove(name.as_str());
                        true
                    }
                    None => false,
                })
                .map(String::as_str)
                .collect()
        };
        if gone.is_empty() {
            return;
        }
        // A failed delete is not fatal: the entry expires with its lease.
        if self
            .run(&self.release, gone, &[self.edge_id.as_str()])
            .await
            .is_err()
        {
            self.errors.with_label_values(&["release"]).inc();
        }
    }

    /// Renews this edge's entries once (and puts back any the store lost), one endpoint at a
    /// time: a conflict on one (taken during an outage) must not stop the others' renewal.
    pub async fn renew(&self) {
        let held: Vec<(Claim, TokenId)> = self
            .held
            .lock()
            .iter()
            .map(|(name, held)| {
                let claim = Claim {
                    name: name.clone(),
                    key: held.key.clone(),
                    spec: held.spec.clone(),
                };
                (claim, held.owner)
            })
            .collect();
        for (claim, owner) in held {
            let endpoint = &claim.name;
            match self
                .run_claim(std::slice::from_ref(&claim), owner, "")
                .await
            {
                Ok(0) => {}
                Ok(_) => {
                    warn!(%endpoint, "another edge's authtoken holds an endpoint this edge serves (claimed while the store was unreachable)")
                }
                Err(e) => {
                    self.errors.with_label_values(&["renew"]).inc();
                    warn!(%endpoint, "renewing a claim failed: {e}");
                }
            }
        }
    }
}

//! [`Claims`]: which edge holds which endpoint, in the cluster store, so an endpoint held by
//! one authtoken on one edge cannot be taken by another authtoken on any edge.
//!
//! Each endpoint is a hash `sluice:ep:{key}` whose fields are edge ids and whose values are
//! `TOKEN-DIGEST|EXPIRY-MS` (Redis's clock, read inside the script, so edges' clocks do not
//! matter). A claim is one Lua script over every endpoint of a session: entries past their
//! expiry are dropped, any live entry of another authtoken refuses the whole claim (nothing is
//! written), else this edge's entry is written with a fresh lease. Each edge renews its
//! entries every [`RENEW_EVERY`] by running the same script again, which also puts them back
//! after the store lost its data; a dead edge's entries expire after [`LEASE`]. An edge drops
//! its entry when its last session on that endpoint ends.

use crate::tunnel::authtoken::TokenId;
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

/// Checks every endpoint (KEYS) for a live entry of another token, then writes this edge's
/// entry (ARGV: edge id, token digest, lease ms) into each. 0 when claimed, else the 1-based
/// index of the first endpoint another token holds.
const CLAIM: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local mine = ARGV[2]
for i, key in ipairs(KEYS) do
  local fields = redis.call('HGETALL', key)
  for j = 1, #fields, 2 do
    local value = fields[j + 1]
    local sep = string.find(value, '|', 1, true)
    local expiry = sep and tonumber(string.sub(value, sep + 1)) or 0
    if expiry < now then
      redis.call('HDEL', key, fields[j])
    elseif string.sub(value, 1, sep - 1) ~= mine then
      return i
    end
  end
end
local lease = tonumber(ARGV[3])
local value = mine .. '|' .. (now + lease)
for _, key in ipairs(KEYS) do
  redis.call('HSET', key, ARGV[1], value)
  redis.call('PEXPIRE', key, lease * 2)
end
return 0
";

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
    script: Script,
    /// Endpoints this edge holds: the authtoken and how many local sessions hold it.
    held: Mutex<HashMap<String, (TokenId, usize)>>,
    /// Store calls that failed, by operation (`claim`, `renew`, `release`).
    errors: IntCounterVec,
}

impl Claims {
    /// Claims as edge `edge_id` over `conn`; failed calls are counted in `errors`.
    pub fn new(conn: ConnectionManager, edge_id: &str, errors: IntCounterVec) -> Arc<Self> {
        Arc::new(Self {
            conn,
            edge_id: edge_id.to_string(),
            script: Script::new(CLAIM),
            held: Mutex::default(),
            errors,
        })
    }

    /// This edge's id in the cluster.
    pub fn edge_id(&self) -> &str {
        &self.edge_id
    }

    fn key(endpoint: &str) -> String {
        format!("sluice:ep:{endpoint}")
    }

    /// Runs the claim script over `endpoints` for `owner`.
    async fn run(&self, endpoints: &[String], owner: TokenId) -> Result<usize, redis::RedisError> {
        let mut call = self.script.prepare_invoke();
        for endpoint in endpoints {
            call.key(Self::key(endpoint));
        }
        call.arg(&self.edge_id)
            .arg(owner.hex())
            .arg(LEASE.as_millis() as u64);
        let mut conn = self.conn.clone();
        match tokio::time::timeout(CALL_LIMIT, call.invoke_async::<usize>(&mut conn)).await {
            Ok(result) => result,
            Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no answer in time",
            ))),
        }
    }

    /// Claims every endpoint of a session for `owner`, or none.
    pub async fn claim(&self, endpoints: &[String], owner: TokenId) -> Result<(), ClaimError> {
        match self.run(endpoints, owner).await {
            Ok(0) => {
                let mut held = self.held.lock();
                for endpoint in endpoints {
                    held.entry(endpoint.clone()).or_insert((owner, 0)).1 += 1;
                }
                Ok(())
            }
            Ok(i) => Err(ClaimError::Taken(
                endpoints.get(i - 1).cloned().unwrap_or_default(),
            )),
            Err(e) => {
                self.errors.with_label_values(&["claim"]).inc();
                Err(ClaimError::Unavailable(e.to_string()))
            }
        }
    }

    /// One local session let go of `endpoints`; the last one removes this edge's entries.
    pub async fn release(&self, endpoints: &[String]) {
        let gone: Vec<String> = {
            let mut held = self.held.lock();
            endpoints
                .iter()
                .filter(|endpoint| match held.get_mut(*endpoint) {
                    Some((_, count)) if *count > 1 => {
                        *count -= 1;
                        false
                    }
                    Some(_) => {
                        held.remove(*endpoint);
                        true
                    }
                    None => false,
                })
                .cloned()
                .collect()
        };
        for endpoint in gone {
            let mut conn = self.conn.clone();
            let mut cmd = redis::cmd("HDEL");
            cmd.arg(Self::key(&endpoint)).arg(&self.edge_id);
            let del = cmd.query_async::<()>(&mut conn);
            // A failed delete is not fatal: the entry expires with its lease.
            if !matches!(tokio::time::timeout(CALL_LIMIT, del).await, Ok(Ok(()))) {
                self.errors.with_label_values(&["release"]).inc();
            }
        }
    }

    /// Renews this edge's entries once (and puts back any the store lost), one endpoint at a
    /// time: a conflict on one (taken during an outage) must not stop the others' renewal.
    pub async fn renew(&self) {
        let held: Vec<(String, TokenId)> = self
            .held
            .lock()
            .iter()
            .map(|(endpoint, (owner, _))| (endpoint.clone(), *owner))
            .collect();
        for (endpoint, owner) in held {
            match self.run(std::slice::from_ref(&endpoint), owner).await {
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

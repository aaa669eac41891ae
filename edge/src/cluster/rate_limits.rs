//! [`SharedRateLimits`]: rate-limit buckets in the cluster store, one Lua script per decision,
//! so a limit of N per window holds across every edge and survives an agent's reconnect.
//!
//! A bucket is a hash `sluice:rl:{scope}:{name}:{digest}` (scope: the endpoint, e.g.
//! `https://app.example.com`, or an internal endpoint with its authtoken's digest; name: the
//! action's `name`; digest: SHA-256 of the action's place in its document, its window and the
//! bucket key's values, so client-chosen values never become key names). Its fields are the
//! window index `i` and the counts of the current and previous windows `c` and `p`, on
//! Redis's clock (TIME, read in the script), with the same weighted sliding window as the
//! local limiter; it expires two windows after its last counted request. Nothing names the
//! agent's session: a reconnecting agent finds its buckets as it left them.
//!
//! When the store does not answer within [`DECISION_LIMIT`], the call is counted in
//! `sluice_edge_store_errors_total{op="rate_limit"}` and the decision follows
//! `cluster.rate_limit_fallback`; for [`RETRY_AFTER`] after a failure every decision takes
//! the fallback at once, so requests do not each wait for a dead store.

use super::config::RateLimitFallback;
use parking_lot::Mutex;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use redis::Script;
use sha2::{Digest, Sha256};
use sluice_policy::{CountFuture, RateLimitCount, RateLimitHit, RateLimitStore};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{info, warn};

/// Longest a rate-limit decision waits for the store: a request should not hang on a counter
/// (shorter than the claims' limit, which an agent's handshake waits on).
pub const DECISION_LIMIT: Duration = Duration::from_millis(500);

/// After a failed call, how long decisions take the fallback without asking the store.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Counts one request in the bucket KEYS[1] (ARGV: capacity, window ms) when it fits: 0, else
/// the milliseconds until one more would fit (at least 1).
const HIT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local capacity = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local index = math.floor(now / window)
local saved = redis.call('HMGET', KEYS[1], 'i', 'c', 'p')
local cur = tonumber(saved[2]) or 0
local prev = tonumber(saved[3]) or 0
local was = tonumber(saved[1])
if was ~= index then
  if was == index - 1 then prev = cur else prev = 0 end
  cur = 0
end
local into = (now - index * window) / window
if prev * (1 - into) + cur + 1 <= capacity then
  redis.call('HSET', KEYS[1], 'i', index, 'c', cur + 1, 'p', prev)
  redis.call('PEXPIRE', KEYS[1], window * 2)
  return 0
end
local wait
if cur + 1 > capacity or prev == 0 then
  wait = (index + 1) * window - now
else
  local needed = 1 - (capacity - cur - 1) / prev
  wait = math.max(needed - into, 0) * window
end
return math.max(math.floor(wait), 1)
";

/// The cluster's rate-limit buckets, shared by every endpoint of this edge.
pub struct SharedRateLimits {
    conn: ConnectionManager,
    script: Script,
    fallback: RateLimitFallback,
    /// Until when decisions take the fallback without asking (after a failed call).
    down_until: Mutex<Option<Instant>>,
    /// The last call failed (so a failure is logged once, and the recovery too).
    failing: AtomicBool,
    /// Store calls that failed, by operation (`rate_limit`).
    errors: IntCounterVec,
}

impl SharedRateLimits {
    /// Buckets over `conn`; when it fails, decisions follow `fallback` and failed calls are
    /// counted in `errors`.
    pub fn new(
        conn: ConnectionManager,
        fallback: RateLimitFallback,
        errors: IntCounterVec,
    ) -> Arc<Self> {
        Arc::new(Self {
            conn,
            script: Script::new(HIT),
            fallback,
            down_until: Mutex::new(None),
            failing: AtomicBool::new(false),
            errors,
        })
    }

    /// The buckets of one endpoint's engine: `scope` names the endpoint the same way on every
    /// edge (its URL; with its authtoken's digest for an internal one).
    pub fn scoped(self: &Arc<Self>, scope: String) -> Arc<dyn RateLimitStore> {
        Arc::new(Scoped {
            shared: self.clone(),
            scope,
        })
    }

    /// The bucket's key in the store.
    fn key(scope: &str, hit: &RateLimitHit) -> String {
        let mut digest = Sha256::new();
        for part in [hit.site.as_bytes(), hit.bucket.as_bytes()] {
            digest.update((part.len() as u64).to_be_bytes());
            digest.update(part);
        }
        digest.update((hit.window.as_millis() as u64).to_be_bytes());
        let digest = hex::encode(&digest.finalize()[..16]);
        format!("sluice:rl:{scope}:{}:{digest}", hit.name)
    }

    /// One decision: the store's, or the fallback's when it does not answer.
    async fn decide(&self, scope: &str, hit: RateLimitHit) -> RateLimitCount {
        if self.down_until.lock().is_some_and(|t| Instant::now() < t) {
            return self.fallback();
        }
        let mut call = self.script.prepare_invoke();
        call.key(Self::key(scope, &hit))
            .arg(hit.capacity)
            .arg(hit.window.as_millis() as u64);
        let mut conn = self.conn.clone();
        let answer =
            tokio::time::timeout(DECISION_LIMIT, call.invoke_async::<u64>(&mut conn)).await;
        let wait_ms = match answer {
            Ok(Ok(wait_ms)) => wait_ms,
            Ok(Err(e)) => return self.failed(&e.to_string()),
            Err(_) => return self.failed("no answer in time"),
        };
        if self.failing.swap(false, Ordering::Relaxed) {
            info!("rate-limit decisions are the cluster store's again");
        }
        match wait_ms {
            0 => RateLimitCount::Allowed,
            _ => RateLimitCount::Limited {
                retry_after_secs: wait_ms.div_ceil(1000).max(1),
            },
        }
    }

    /// A failed call: counted, logged when the failures start, and the fallback for a while.
    fn failed(&self, why: &str) -> RateLimitCount {
        self.errors.with_label_values(&["rate_limit"]).inc();
        if !self.failing.swap(true, Ordering::Relaxed) {
            warn!(fallback = ?self.fallback, "rate-limit decisions take the fallback: the cluster store failed: {why}");
        }
        *self.down_until.lock() = Some(Instant::now() + RETRY_AFTER);
        self.fallback()
    }

    fn fallback(&self) -> RateLimitCount {
        match self.fallback {
            RateLimitFallback::Local => RateLimitCount::Local,
            RateLimitFallback::Deny => RateLimitCount::Limited {
                retry_after_secs: 1,
            },
            RateLimitFallback::Allow => RateLimitCount::Allowed,
        }
    }
}

/// [`SharedRateLimits`] for one endpoint.
struct Scoped {
    shared: Arc<SharedRateLimits>,
    scope: String,
}

impl RateLimitStore for Scoped {
    fn hit(&self, hit: RateLimitHit) -> CountFuture<'_> {
        Box::pin(self.shared.decide(&self.scope, hit))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(site: &str, bucket: &str, window_s: u64) -> RateLimitHit {
        RateLimitHit {
            name: "api".into(),
            site: site.into(),
            bucket: bucket.into(),
            capacity: 10,
            window: Duration::from_secs(window_s),
        }
    }

    #[test]
    fn buckets_are_named_by_endpoint_action_and_key_never_by_session() {
        let key = |scope, h: &RateLimitHit| SharedRateLimits::key(scope, h);
        let a = hit("on_http_request[0].actions[0].config", "1.2.3.4\u{1f}", 60);
        let k = key("https://app.example.com", &a);
        assert!(
            k.starts_with("sluice:rl:https://app.example.com:api:"),
            "{k}"
        );
        assert_eq!(k, key("https://app.example.com", &a.clone()), "stable");
        let others = [
            key("https://other.example.com", &a),
            key(
                "https://app.example.com",
                &hit("on_http_request[1].actions[0].config", "1.2.3.4\u{1f}", 60),
            ),
            key(
                "https://app.example.com",
                &hit("on_http_request[0].actions[0].config", "1.2.3.5\u{1f}", 60),
            ),
            key(
                "https://app.example.com",
                &hit("on_http_request[0].actions[0].config", "1.2.3.4\u{1f}", 120),
            ),
        ];
        for other in others {
            assert_ne!(k, other);
        }
    }
}

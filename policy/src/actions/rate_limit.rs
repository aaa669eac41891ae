//! rate-limit: a sliding-window counter per bucket, with bounded memory, or in the store the
//! edge gives (shared by several edges), one wait per decision.

use super::action::{Action, Exec, Flow};
use super::config::{parse_duration, Cfg};
use crate::cel::expr::Expr;
use crate::cel::values::stringify;
use crate::codes;
use crate::counters::{RateLimitCount, RateLimitHit, RateLimitStore};
use crate::load::check::{string_list, Cx};
use crate::run::outcome::Decision;
use cel::Value;
use http::header::{HeaderValue, RETRY_AFTER};
use http::StatusCode;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Buckets kept at most, over all shards; idle ones are swept first, then the stalest evicted.
const MAX_BUCKETS: usize = 100_000;
const SHARDS: usize = 8;

/// `rate-limit`.
#[derive(Debug)]
pub(crate) struct RateLimit {
    name: String,
    /// Where the action sits in its document, for a shared store's bucket names.
    site: String,
    capacity: u64,
    window_ms: u64,
    bucket_key: Vec<Expr>,
    enforce: bool,
    limiter: Limiter,
}

impl RateLimit {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(
            cx,
            &[
                "name",
                "algorithm",
                "capacity",
                "rate",
                "bucket_key",
                "enforce",
            ],
        )?;
        let before = cx.errors.len();
        let name = obj
            .require(cx, "name")
            .and_then(|_| obj.string(cx, "name"))
            .map(|n| n.0);
        if let Some((alg, p, pos)) = obj.string(cx, "algorithm") {
            if alg != "sliding_window" {
                cx.err(
                    &p,
                    pos,
                    format!("unknown algorithm `{alg}`, the only one is `sliding_window`"),
                );
            }
        }
        let capacity = obj
            .require(cx, "capacity")
            .and_then(|_| obj.int(cx, "capacity", 1..=2_000_000_000));
        let window = obj.require(cx, "rate").and_then(|_| obj.string(cx, "rate"));
        let window = window.and_then(|(r, p, pos)| match parse_duration(&r) {
            Some(secs) if (60..=86_400).contains(&secs) && secs % 10 == 0 => Some(secs),
            _ => {
                cx.err(
                    &p,
                    pos,
                    format!("expected a duration from 60s to 24h in steps of 10s, got `{r}`"),
                );
                None
            }
        });
        let mut bucket_key = Vec::new();
        if let Some((node, path)) = obj.get("bucket_key") {
            for (src, p, pos) in string_list(cx, node, &path, Some(10)) {
                match Expr::compile(&src, c.names) {
                    Ok(e) => bucket_key.push(e),
                    Err(problems) => problems.into_iter().for_each(|m| cx.err(&p, pos, m)),
                }
            }
        }
        let enforce = obj.bool(cx, "enforce", true);
        if cx.errors.len() != before {
            return None;
        }
        Some(Self {
            name: name?,
            site: c.path.clone(),
            capacity: capacity? as u64,
            window_ms: window? * 1000,
            bucket_key,
            enforce,
            limiter: Limiter::default(),
        })
    }
}

impl Action for RateLimit {
    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "rate-limit";
        let mut parts = Vec::with_capacity(self.bucket_key.len());
        let mut key = String::new();
        for e in &self.bucket_key {
            let v = match e.eval(&ex.scope()) {
                Ok(v) => v,
                Err(err) => {
                    let msg = format!("bucket_key `{}` failed: {err}", e.source());
                    return ex.fail(ACTION, codes::INTERPOLATION_FAILED, &msg);
                }
            };
            let mut text = String::new();
            stringify(&v, &mut text);
            key.push_str(&text);
            key.push('\u{1f}');
            parts.push(Value::from(text));
        }
        let counted = match ex.st.scratch.take::<Counted>() {
            Some(Counted(count)) => count,
            None => match &ex.services.rate_limits {
                Some(store) => return self.count_in(store.clone(), key),
                None => RateLimitCount::Local,
            },
        };
        let verdict = match counted {
            RateLimitCount::Allowed => Ok(()),
            RateLimitCount::Limited { retry_after_secs } => Err(retry_after_secs.max(1)),
            RateLimitCount::Local => {
                let now_ms = ex.st.now_ms();
                self.limiter
                    .hit(&key, now_ms, self.window_ms, self.capacity)
            }
        };
        ex.set_result("rate_limit", || {
            let results: HashMap<String, Value> = HashMap::from([
                ("name".to_string(), Value::from(self.name.as_str())),
                ("bucket_key".to_string(), Value::from(parts)),
                ("limited".to_string(), Value::Bool(verdict.is_err())),
            ]);
            results.into()
        });
        let Err(retry_after) = verdict else {
            ex.record(ACTION, Decision::Allow, self.enforce);
            return Flow::Next;
        };
        ex.refuse(ACTION, Decision::RateLimited, self.enforce, || {
            let mut res = codes::error_response(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                "Too many requests.",
            );
            res.headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from(retry_after));
            res
        })
    }
}

impl RateLimit {
    /// Suspends the action while `store` counts the request in `bucket`; the engine then runs
    /// it again, and it finds the answer in the request's scratch.
    fn count_in(&self, store: Arc<dyn RateLimitStore>, bucket: String) -> Flow {
        let hit = RateLimitHit {
            name: self.name.clone(),
            site: self.site.clone(),
            bucket,
            capacity: self.capacity,
            window: Duration::from_millis(self.window_ms),
        };
        Flow::wait(move |_, st| {
            Box::pin(async move {
                let count = store.hit(hit).await;
                st.scratch.put(Counted(count));
            })
        })
    }
}

/// The store's answer for the rate-limit action being run, in the request's scratch (taken by
/// the action when the engine runs it again).
struct Counted(RateLimitCount);

/// One bucket: the counts of the current and the previous window.
#[derive(Clone, Copy, Debug)]
struct Window {
    index: u64,
    current: u64,
    previous: u64,
}

/// The buckets of one rate-limit action, shared by all requests through the engine.
#[derive(Debug)]
struct Limiter {
    shards: Vec<Mutex<HashMap<Arc<str>, Window>>>,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
        }
    }
}

impl Limiter {
    /// Counts a request in `key`'s bucket; `Err(seconds to wait)` when the bucket is full.
    fn hit(&self, key: &str, now_ms: u64, window_ms: u64, capacity: u64) -> Result<(), u64> {
        let shard = &self.shards[shard_of(key)];
        let Ok(mut map) = shard.lock() else {
            return Ok(());
        };
        let index = now_ms / window_ms;
        if !map.contains_key(key) && map.len() >= MAX_BUCKETS / SHARDS {
            make_room(&mut map, index);
        }
        let w = map.entry(Arc::from(key)).or_insert(Window {
            index,
            current: 0,
            previous: 0,
        });
        if w.index != index {
            w.previous = if w.index + 1 == index { w.current } else { 0 };
            w.current = 0;
            w.index = index;
        }
        let into_window = (now_ms - index * window_ms) as f64 / window_ms as f64;
        let estimate = w.previous as f64 * (1.0 - into_window) + w.current as f64;
        if estimate + 1.0 <= capacity as f64 {
            w.current += 1;
            return Ok(());
        }
        // Wait until the previous window's weight has decayed enough, or the window turns.
        let wait_ms = if w.current + 1 > capacity || w.previous == 0 {
            (index + 1) * window_ms - now_ms
        } else {
            let needed = 1.0 - (capacity - w.current - 1) as f64 / w.previous as f64;
            ((needed - into_window).max(0.0) * window_ms as f64) as u64
        };
        Err(wait_ms.div_ceil(1000).max(1))
    }
}

/// FNV-1a of the key picks the shard.
fn shard_of(key: &str) -> usize {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (h % SHARDS as u64) as usize
}

/// Drops buckets idle for two windows; if none were, evicts the stalest one.
fn make_room(map: &mut HashMap<Arc<str>, Window>, index: u64) {
    map.retain(|_, w| w.index + 1 >= index);
    if map.len() >= MAX_BUCKETS / SHARDS {
        if let Some(stalest) = map
            .iter()
            .min_by_key(|(_, w)| w.index)
            .map(|(k, _)| Arc::clone(k))
        {
            map.remove(&stalest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(60));
        assert_eq!(parse_duration("1h30m"), Some(5400));
        assert_eq!(parse_duration("5x"), None);
        assert_eq!(parse_duration("10"), None);
    }

    #[test]
    fn sliding_window_allows_capacity_then_limits_then_recovers() {
        let l = Limiter::default();
        let w = 60_000;
        let t0 = 600_000; // start of a window
        for i in 0..3 {
            assert_eq!(l.hit("k", t0 + i, w, 3), Ok(()), "request {i}");
        }
        let wait = l.hit("k", t0 + 10, w, 3).unwrap_err();
        assert_eq!(wait, 60);
        assert_eq!(
            l.hit("other", t0 + 10, w, 3),
            Ok(()),
            "buckets are separate"
        );
        // Half-way into the next window the previous 3 count as 1.5: one more fits.
        assert_eq!(l.hit("k", t0 + w + w / 2, w, 3), Ok(()));
        assert!(l.hit("k", t0 + w + w / 2, w, 3).is_err());
        // Two windows later everything has expired.
        assert_eq!(l.hit("k", t0 + 3 * w, w, 3), Ok(()));
    }

    #[test]
    fn memory_is_bounded() {
        let l = Limiter::default();
        for i in 0..(MAX_BUCKETS + 5000) {
            let _ = l.hit(&format!("key-{i}"), 0, 60_000, 1);
        }
        let total: usize = l.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= MAX_BUCKETS, "{total}");
    }
}

//! circuit-breaker: refuses requests (503) for a while once too many of an endpoint's recent
//! responses were server errors, so a failing upstream gets room to recover.

use super::action::{Action, Exec, Flow};
use super::config::{parse_duration, Cfg};
use crate::codes;
use crate::load::check::{Cx, Obj};
use crate::load::node::Kind;
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use http::StatusCode;
use std::sync::{Arc, Mutex};

const ACTION: &str = "circuit-breaker";
/// ngrok's fixed number of buckets per window.
const BUCKETS: u64 = 10;
/// The range ngrok allows for both durations, in milliseconds.
const DURATIONS_MS: std::ops::RangeInclusive<u64> = 1_000..=120_000;

/// `circuit-breaker`: one breaker per endpoint (per compiled engine).
#[derive(Debug)]
pub(crate) struct CircuitBreaker {
    enforce: bool,
    /// Shared with the requests waiting for their response status.
    shared: Arc<Shared>,
}

/// What a finished request needs to count itself.
#[derive(Debug)]
struct Shared {
    limits: Limits,
    breaker: Mutex<Breaker>,
}

/// When the breaker trips, and for how long.
#[derive(Debug)]
struct Limits {
    error_threshold: f64,
    volume_threshold: u64,
    window_ms: u64,
    tripped_ms: u64,
}

/// The counts of one slice of the window.
#[derive(Debug, Clone, Copy, Default)]
struct Bucket {
    /// Which slice of time (`now / bucket length`) the counts belong to.
    index: u64,
    total: u64,
    errors: u64,
}

/// The shared state: recent outcomes and, once tripped, until when.
#[derive(Debug, Default)]
struct Breaker {
    buckets: [Bucket; BUCKETS as usize],
    tripped_until_ms: u64,
}

impl CircuitBreaker {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(
            cx,
            &[
                "error_threshold",
                "volume_threshold",
                "window_duration",
                "tripped_duration",
                "num_buckets",
                "enforce",
            ],
        )?;
        let before = cx.errors.len();
        let error_threshold = ratio(cx, &obj, "error_threshold", 0.5);
        let volume_threshold = obj
            .int(cx, "volume_threshold", 1..=1_000_000)
            .map_or(10, |n| n as u64);
        let window_ms = duration(cx, &obj, "window_duration");
        let tripped_ms = duration(cx, &obj, "tripped_duration");
        // ngrok fixes the bucket count at 10; a config that says so is fine.
        if let Some(n) = obj.int(cx, "num_buckets", 1..=1000) {
            if n != BUCKETS as i64 {
                if let Some((node, path)) = obj.get("num_buckets") {
                    cx.err(&path, node.pos, "num_buckets is fixed at 10");
                }
            }
        }
        let enforce = obj.bool(cx, "enforce", true);
        (cx.errors.len() == before).then(|| Self {
            enforce,
            shared: Arc::new(Shared {
                limits: Limits {
                    error_threshold,
                    volume_threshold,
                    window_ms,
                    tripped_ms,
                },
                breaker: Mutex::default(),
            }),
        })
    }
}

/// A 0.0–1.0 field, `default` when absent.
fn ratio(cx: &mut Cx, obj: &Obj, key: &str, default: f64) -> f64 {
    let Some((node, path)) = obj.get(key) else {
        return default;
    };
    let value = match node.kind {
        Kind::Float(x) => Some(x),
        Kind::Int(i) => Some(i as f64),
        _ => None,
    };
    match value.filter(|x| (0.0..=1.0).contains(x)) {
        Some(x) => x,
        None => {
            cx.err(&path, node.pos, "expected a number from 0.0 to 1.0");
            default
        }
    }
}

/// A duration field of 1s–2m, 10s when absent, in milliseconds.
fn duration(cx: &mut Cx, obj: &Obj, key: &str) -> u64 {
    let Some((text, path, pos)) = obj.string(cx, key) else {
        return 10_000;
    };
    match parse_duration(&text).map(|s| s * 1000) {
        Some(ms) if DURATIONS_MS.contains(&ms) => ms,
        _ => {
            cx.err(
                &path,
                pos,
                format!("expected a duration from 1s to 2m, got `{text}`"),
            );
            10_000
        }
    }
}

impl Breaker {
    fn is_tripped(&self, now_ms: u64) -> bool {
        now_ms < self.tripped_until_ms
    }

    /// Counts one response; trips when the window holds enough requests and too many errors.
    fn record(&mut self, cb: &Limits, now_ms: u64, error: bool) {
        let bucket_ms = (cb.window_ms / BUCKETS).max(1);
        let index = now_ms / bucket_ms;
        let slot = &mut self.buckets[(index % BUCKETS) as usize];
        if slot.index != index {
            *slot = Bucket {
                index,
                ..Bucket::default()
            };
        }
        slot.total += 1;
        slot.errors += u64::from(error);
        let (total, errors) = self
            .buckets
            .iter()
            .filter(|b| index.saturating_sub(b.index) < BUCKETS)
            .fold((0, 0), |(t, e), b| (t + b.total, e + b.errors));
        if total >= cb.volume_threshold && errors as f64 >= cb.error_threshold * total as f64 {
            self.tripped_until_ms = now_ms + cb.tripped_ms;
            self.buckets = Default::default();
        }
    }
}

/// The breakers that wait for this request's response status, with the request's start time.
#[derive(Default)]
struct Pending(Vec<(Arc<Shared>, u64)>);

impl RequestState {
    /// Tells circuit breakers the status the client got (a 5xx counts as an error); call it
    /// once, when the request is complete. Without a response (the client left) nothing is
    /// counted.
    pub fn finish(&mut self, status: u16) {
        let Some(Pending(pending)) = self.scratch.take::<Pending>() else {
            return;
        };
        if status == 0 {
            return;
        }
        for (shared, now_ms) in pending {
            if let Ok(mut b) = shared.breaker.lock() {
                b.record(&shared.limits, now_ms, status >= 500);
            }
        }
    }
}

impl Action for CircuitBreaker {
    fn run(&self, ex: &mut Exec) -> Flow {
        let now_ms = ex.st.now_ms();
        let tripped = self
            .shared
            .breaker
            .lock()
            .map(|b| b.is_tripped(now_ms))
            .unwrap_or(false);
        if tripped {
            return ex.refuse(ACTION, Decision::Deny, self.enforce, || {
                codes::error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    codes::CIRCUIT_BREAKER_TRIPPED,
                    "The endpoint's upstream is failing; try again shortly.",
                )
            });
        }
        ex.record(ACTION, Decision::Allow, self.enforce);
        let mut pending = ex.st.scratch.take::<Pending>().unwrap_or_default();
        pending.0.push((self.shared.clone(), now_ms));
        ex.st.scratch.put(pending);
        Flow::Next
    }
}

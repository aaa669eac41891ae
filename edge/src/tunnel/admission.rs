//! Limits on who may open agent sessions: failed-authtoken attempts per source address, and
//! concurrent sessions per authtoken.

use super::authtoken::TokenId;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Failed authtoken attempts one address may make per window before it is refused outright.
pub const MAX_AUTH_FAILURES: u32 = 10;
/// The window over which failures count, and how long an address stays refused.
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond this the oldest windows are dropped first, so a flood from
/// many addresses costs bounded memory (and at worst forgets some counts early).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

#[derive(Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Counts failed authtoken attempts per source IP. Guessing tokens from one address is slowed
/// to [`MAX_AUTH_FAILURES`] per [`AUTH_FAILURE_WINDOW`].
#[derive(Default)]
pub struct AuthFailures {
    windows: Mutex<HashMap<IpAddr, Window>>,
}

impl AuthFailures {
    /// `Err(retry_after)` when `ip` used up its failures in the current window.
    pub fn check(&self, ip: IpAddr) -> Result<(), Duration> {
        let windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        match windows.get(&ip) {
            Some(w) if w.failures >= MAX_AUTH_FAILURES => {
                let left = AUTH_FAILURE_WINDOW.saturating_sub(w.started.elapsed());
                if left.is_zero() {
                    Ok(())
                } else {
                    Err(left)
                }
            }
            _ => Ok(()),
        }
    }

    /// Records one failed attempt from `ip`; returns the failures in its current window.
    pub fn record(&self, ip: IpAddr) -> u32 {
        let mut windows = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if windows.len() >= MAX_TRACKED_ADDRESSES && !windows.contains_key(&ip) {
            windows.retain(|_, w| now.duration_since(w.started) < AUTH_FAILURE_WINDOW);
            if windows.len() >= MAX_TRACKED_ADDRESSES {
                if let Some(oldest) = windows
                    .iter()
                    .min_by_key(|(_, w)| w.started)
                    .map(|(k, _)| *k)
                {
                    windows.remove(&oldest);
                }
            }
        }
        let w = windows.entry(ip).or_insert(Window {
            started: now,
            failures: 0,
        });
        if now.duration_since(w.started) >= AUTH_FAILURE_WINDOW {
            *w = Window {
                started: now,
                failures: 0,
            };
        }
        w.failures += 1;
        w.failures
    }
}

/// Live agent sessions per authtoken, capped.
pub struct SessionCounts {
    limit: usize,
    counts: Arc<Mutex<HashMap<TokenId, usize>>>,
}

/// One counted session; dropping it frees the slot.
#[derive(Debug)]
pub struct SessionSlot {
    owner: TokenId,
    counts: Arc<Mutex<HashMap<TokenId, usize>>>,
}

impl SessionCounts {
    /// At most `limit` concurrent sessions per token.
    pub fn new(limit: usize) -> Self {
        Self {
            limit,
            counts: Arc::default(),
        }
    }

    /// The edge-wide limit.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// A slot for a new session of `owner`, or `None` when it already has `limit` (its
    /// credential's own, else the edge-wide one).
    pub fn acquire(&self, owner: TokenId, limit: Option<usize>) -> Option<SessionSlot> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(owner).or_insert(0);
        if *n >= limit.unwrap_or(self.limit) {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            owner,
            counts: self.counts.clone(),
        })
    }
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.owner) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.owner);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tunnel::credentials::Credentials;

    #[test]
    fn failures_lock_an_address_out_but_not_others() {
        let f = AuthFailures::default();
        let (a, b): (IpAddr, IpAddr) = (
            "192.0.2.1".parse().expect("test value"),
            "192.0.2.2".parse().expect("test value"),
        );
        for _ in 0..MAX_AUTH_FAILURES {
            assert!(f.check(a).is_ok());
            f.record(a);
        }
        assert!(f.check(a).is_err());
        assert!(f.check(b).is_ok());
    }

    #[test]
    fn slots_are_counted_per_token_and_freed_on_drop() {
        let tokens = Credentials::configured(["one", "two"]);
        let (one, two) = (
            tokens.verify("one").expect("test value").token,
            tokens.verify("two").expect("test value").token,
        );
        let counts = SessionCounts::new(2);
        let s1 = counts.acquire(one, None).expect("test value");
        let _s2 = counts.acquire(one, None).expect("test value");
        assert!(counts.acquire(one, None).is_none());
        let _t1 = counts.acquire(two, None).expect("test value");
        assert!(
            counts.acquire(two, Some(1)).is_none(),
            "a credential's own limit"
        );
        drop(s1);
        assert!(counts.acquire(one, None).is_some());
    }
}

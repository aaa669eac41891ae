//! One-time codes with which the edge-wide auth host hands a finished sign-in to the endpoint's
//! host: in the edge's memory, usable once, short-lived, bounded in number.

use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use subtle::ConstantTimeEq as _;

/// How long a code can be swapped for its session.
pub const CODE_TTL: Duration = Duration::from_secs(60);
/// At most this many codes wait at once; beyond, the oldest is dropped (its sign-in fails
/// with an unknown code and simply starts again).
const MAX_CODES: usize = 10_000;

/// A code's two halves: `<id>.<secret>`. The id finds the entry; the secret is compared in
/// constant time, so lookup timing says nothing about it.
struct Entry<T> {
    secret: String,
    issued: Instant,
    value: T,
}

/// Codes waiting to be swapped, each holding a `T`.
pub struct Handoffs<T> {
    codes: Mutex<HashMap<String, Entry<T>>>,
}

impl<T> Default for Handoffs<T> {
    fn default() -> Self {
        Self {
            codes: Mutex::new(HashMap::new()),
        }
    }
}

impl<T> Handoffs<T> {
    /// Keeps `value` under a new code made of the random `id` and `secret` (base64url, no
    /// dots), and returns the code.
    pub fn issue(&self, id: String, secret: String, value: T) -> String {
        let code = format!("{id}.{secret}");
        let now = Instant::now();
        let mut codes = self.codes.lock();
        codes.retain(|_, e| now.duration_since(e.issued) < CODE_TTL);
        if codes.len() >= MAX_CODES {
            let oldest = codes
                .iter()
                .min_by_key(|(_, e)| e.issued)
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                codes.remove(&k);
            }
        }
        codes.insert(
            id,
            Entry {
                secret,
                issued: now,
                value,
            },
        );
        code
    }

    /// The value behind `code`, removed so it cannot be had twice; `None` when the code is
    /// unknown, already taken, expired, or its secret is wrong (then it stays for its owner).
    pub fn take(&self, code: &str) -> Option<T> {
        let (id, secret) = code.split_once('.')?;
        let mut codes = self.codes.lock();
        let entry = codes.get(id)?;
        if !bool::from(entry.secret.as_bytes().ct_eq(secret.as_bytes())) {
            return None;
        }
        let entry = codes.remove(id)?;
        (entry.issued.elapsed() < CODE_TTL).then_some(entry.value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_is_taken_once_and_only_with_its_secret() {
        let h = Handoffs::default();
        let code = h.issue("id1".into(), "s3cret".into(), 7);
        assert_eq!(h.take("id1.wrong"), None);
        assert_eq!(h.take("id1"), None);
        assert_eq!(h.take(&code), Some(7));
        assert_eq!(h.take(&code), None);
        assert_eq!(h.take("nope.s3cret"), None);
    }

    #[test]
    fn the_store_is_bounded_and_drops_the_oldest() {
        let h = Handoffs::default();
        let first = h.issue("first".into(), "s".into(), 0);
        // Strictly older than the rest, whatever the clock's resolution.
        std::thread::sleep(Duration::from_millis(2));
        let mut last = String::new();
        for i in 1..=MAX_CODES {
            last = h.issue(format!("id{i}"), "s".into(), i);
        }
        assert_eq!(h.codes.lock().len(), MAX_CODES);
        assert_eq!(h.take(&first), None, "the oldest code made room");
        assert_eq!(h.take(&last), Some(MAX_CODES));
    }
}

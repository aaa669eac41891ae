//! Unix seconds: how sealed cookies, one-time codes and the revocation file store times.

use std::time::{SystemTime, UNIX_EPOCH};

/// `t` as whole seconds since the Unix epoch (0 before it).
pub(super) fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs()
}

//! Random ids with a readable prefix (`ses_…`, `req_…`, `ev_…`), for logs and events.

/// A new random id with a readable prefix, e.g. `ses_3f9c…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

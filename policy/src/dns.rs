//! DNS names as endpoint URLs use them: one rule for the edge's hostnames and forward-internal's
//! targets.

/// Whether `name` (lowercase, no trailing dot, no wildcard) is a valid DNS name: at most 253
/// bytes of dot-separated labels, each 1–63 letters, digits or inner hyphens.
pub fn is_dns_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

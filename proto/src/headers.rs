//! HTTP header facts both proxies apply the same way.

/// Hop-by-hop headers (RFC 9110 §7.6.1) that never cross a proxy hop. `upgrade` is handled
/// separately (kept for websockets) and `transfer-encoding` is left to the HTTP libraries, which
/// re-frame bodies themselves.
pub const HOP_BY_HOP: [&str; 7] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
];

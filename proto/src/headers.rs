//! HTTP header rules both proxies apply the same way: which fields are connection-specific
//! and never cross a hop (RFC 9110 §7.6.1), and the exceptions a tunnel must keep.

use http::header::{
    HeaderMap, HeaderName, HeaderValue, CONNECTION, CONTENT_TYPE, PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION, TE, UPGRADE,
};

/// Connection-specific fields (RFC 9110 §7.6.1) that never cross a proxy hop. `upgrade` is
/// kept for upgrades, `te: trailers` is kept (see [`strip_hop_by_hop`]), and
/// `transfer-encoding` is left to the HTTP libraries, which frame bodies themselves. `trailer`
/// is end-to-end: it announces the trailer fields, and HTTP/1.1 senders need it.
pub static HOP_BY_HOP: [HeaderName; 6] = [
    CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TE,
];

/// The lowercase tokens of every `Connection` field.
pub fn connection_tokens(headers: &HeaderMap) -> impl Iterator<Item = String> + '_ {
    headers
        .get_all(CONNECTION)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
}

/// Whether the message asks for (or agrees to) a protocol upgrade such as a websocket.
pub fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE) && connection_tokens(headers).any(|t| t == "upgrade")
}

/// Whether the request is gRPC (`application/grpc`, `application/grpc+proto`, …).
pub fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.get(..16)
                .is_some_and(|p| p.eq_ignore_ascii_case("application/grpc"))
        })
}

/// Whether the client accepts trailers (`te: trailers`).
fn accepts_trailers(headers: &HeaderMap) -> bool {
    headers
        .get_all(TE)
        .into_iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.split(';').next().unwrap_or_default().trim();
            t.eq_ignore_ascii_case("trailers")
        })
}

/// What to change in a message's fields before it crosses a hop; [`strip_hop_by_hop`] applies
/// it to a `HeaderMap`, and a proxy with its own header type applies it field by field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopByHop {
    /// Fields to remove: the connection-specific ones present and every one `Connection`
    /// names. Empty (and not allocated) for the usual request that has none.
    pub remove: Vec<HeaderName>,
    /// Set `Connection: upgrade` (an upgrade keeps `Upgrade` and says so again).
    pub connection_upgrade: bool,
    /// Set `te: trailers` (after removing `te`).
    pub te_trailers: bool,
}

/// The hop-by-hop rule for `headers`. For an upgrade (`upgrade` true) the `Upgrade` field and
/// `Connection: upgrade` stay; otherwise `Upgrade` goes too. `te: trailers` stays whenever the
/// client sent it, and is added to every gRPC request: gRPC servers built on gRPC's C core
/// refuse requests without it.
pub fn hop_by_hop(headers: &HeaderMap, upgrade: bool) -> HopByHop {
    // Only names present are listed: this runs on every request on both sides, and most
    // requests carry none of them.
    let mut remove: Vec<HeaderName> = connection_tokens(headers)
        .filter(|t| !(upgrade && t == "upgrade"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for name in &HOP_BY_HOP {
        if headers.contains_key(name) && !remove.contains(name) {
            remove.push(name.clone());
        }
    }
    if !upgrade && headers.contains_key(UPGRADE) {
        remove.push(UPGRADE);
    }
    HopByHop {
        remove,
        connection_upgrade: upgrade,
        te_trailers: accepts_trailers(headers) || is_grpc(headers),
    }
}

/// Removes the connection-specific fields of `headers` ([`hop_by_hop`]).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, upgrade: bool) {
    let rule = hop_by_hop(headers, upgrade);
    for name in &rule.remove {
        headers.remove(name);
    }
    if rule.connection_upgrade {
        headers.insert(CONNECTION, HeaderValue::from_static("upgrade"));
    }
    if rule.te_trailers {
        headers.insert(TE, HeaderValue::from_static("trailers"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(list: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in list {
            h.append(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn named_and_fixed_fields_go_trailers_stay() {
        let mut h = headers(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "drop me"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers, deflate;q=0.5"),
            ("trailer", "x-checksum"),
            ("upgrade", "h2c"),
        ]);
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("x-secret"));
        assert!(!h.contains_key("keep-alive"));
        assert!(!h.contains_key("connection"));
        assert!(!h.contains_key("upgrade"));
        assert_eq!(h["te"], "trailers");
        assert_eq!(h["trailer"], "x-checksum");
    }

    #[test]
    fn te_without_trailers_goes_grpc_always_gets_it() {
        let mut h = headers(&[("te", "gzip")]);
        strip_hop_by_hop(&mut h, false);
        assert!(!h.contains_key("te"));
        let mut h = headers(&[("content-type", "application/grpc+proto")]);
        strip_hop_by_hop(&mut h, false);
        assert_eq!(h["te"], "trailers");
    }

    #[test]
    fn upgrades_keep_their_pair() {
        let mut h = headers(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(is_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(h["connection"], "upgrade");
        assert_eq!(h["upgrade"], "websocket");
    }
}

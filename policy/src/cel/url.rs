//! The request's URL as policies see it: host, port, scheme and the full URL.

use crate::head::RequestHead;
use crate::run::state::RequestState;
use http::header::HOST;

/// The request's host (with any port): the Host header, else the URI authority.
pub(crate) fn host(req: &dyn RequestHead) -> &str {
    req.headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| req.uri().authority().map(|a| a.as_str()))
        .unwrap_or("")
}

/// `host` and `port` of `host[:port]`, IPv6 brackets kept.
pub(crate) fn split_port(h: &str) -> (&str, Option<u16>) {
    match h.rfind(':') {
        Some(i) if !h[i..].contains(']') => (&h[..i], h[i + 1..].parse().ok()),
        _ => (h, None),
    }
}

/// The request's scheme: the URI's, else the endpoint's protocol, else by TLS.
pub(crate) fn scheme<'a>(req: &'a dyn RequestHead, st: &'a RequestState) -> &'a str {
    if let Some(s) = req.uri().scheme_str() {
        return s;
    }
    if matches!(st.endpoint.protocol.as_str(), "http" | "https") {
        return &st.endpoint.protocol;
    }
    if st.conn.tls.version.is_some() {
        "https"
    } else {
        "http"
    }
}

/// The request's port: explicit in the host, else the scheme's default.
pub(crate) fn port(req: &dyn RequestHead, st: &RequestState) -> u16 {
    split_port(host(req))
        .1
        .unwrap_or(if scheme(req, st) == "https" { 443 } else { 80 })
}

/// The full request URL, `scheme://host/path?query`, as redirect and url-rewrite see it.
pub(crate) fn full_url(req: &dyn RequestHead, st: &RequestState) -> String {
    let pq = req.uri().path_and_query().map_or("/", |p| p.as_str());
    format!("{}://{}{}", scheme(req, st), host(req), pq)
}

//! The inspector's web page: one self-contained HTML file (no external assets, so it works
//! offline and a strict Content-Security-Policy can forbid everything else).

use super::responses::{full, ApiBody};
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response};

const PAGE: &str = include_str!("page.html");

/// `GET /`.
pub(super) fn response() -> Response<ApiBody> {
    let mut resp = Response::new(full(PAGE));
    let h = resp.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static(
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

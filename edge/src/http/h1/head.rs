//! Request and response heads between hyper and pingora: the pure conversions of the HTTP/1.x
//! bridge, and the checks pingora's own HTTP/1 server made on a head that hyper does not.

use bytes::Bytes;
use http::header::{CONNECTION, TRANSFER_ENCODING};
use http::{HeaderValue, Response, StatusCode, Version};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::http::authority::validate_request_authority;
use sluice_proto::error_code::ErrorCode;

/// Why a head hyper accepted is refused before the proxy sees it (pingora's own server refused
/// the same heads with a 400).
#[derive(Debug, thiserror::Error)]
pub enum HeadError {
    /// The request target could not be kept as pingora keeps it.
    #[error("request target {target:?}: {reason}")]
    Target {
        /// The target as hyper parsed it.
        target: String,
        /// pingora's reason.
        reason: String,
    },
    /// More than one `Host`, userinfo, or an absolute-form authority that differs from `Host`.
    #[error("ambiguous authority: {0}")]
    Authority(String),
}

/// pingora's request header for a head hyper parsed.
///
/// Origin-form and asterisk-form targets become the URI as they are. Absolute-form and
/// authority-form targets are kept the way pingora's HTTP/1 parser keeps them: verbatim as the
/// raw path, with only the path in the URI, so routing reads `Host` exactly as before. The
/// authority checks pingora's parser ran (one `Host`, no userinfo, an absolute-form authority
/// equal to `Host`) run here too.
pub fn request_header(parts: http::request::Parts) -> Result<RequestHeader, HeadError> {
    let origin_form = parts.uri.scheme().is_none() && parts.uri.authority().is_none();
    let target = (!origin_form).then(|| parts.uri.to_string());
    let mut req = RequestHeader::from(parts);
    if let Some(target) = target {
        req.set_raw_path(target.as_bytes())
            .map_err(|e| HeadError::Target {
                target: target.clone(),
                reason: e.to_string(),
            })?;
    }
    validate_request_authority(&req).map_err(|e| HeadError::Authority(e.to_string()))?;
    Ok(req)
}

/// The head hyper writes for pingora's final response header.
///
/// Framing is hyper's: `Transfer-Encoding` goes (pingora adds `chunked` to every response
/// without a length; hyper chunks such bodies itself, and cannot for HTTP/1.0 clients, which
/// then get a close-delimited body). `Content-Length`, `Trailer` (which fields hyper may send
/// as trailers) and a 101's `Connection`/`Upgrade` stay.
pub fn hyper_head(resp: &ResponseHeader) -> http::response::Parts {
    let mut parts = resp.as_owned_parts();
    parts.version = Version::HTTP_11;
    parts.headers.remove(TRANSFER_ENCODING);
    parts
}

/// The response the bridge writes itself for a head it refuses: the edge's error page for
/// `code`, with `Connection: close` (pingora's server closed the connection after such a 400).
pub fn refusal(code: ErrorCode) -> Response<Bytes> {
    let body = Bytes::from(code.body());
    let mut resp = Response::new(body.clone());
    *resp.status_mut() = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_REQUEST);
    let headers = resp.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&code.to_string()) {
        headers.insert(sluice_proto::error_code::ERROR_CODE_HEADER, value);
    }
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-store"),
    );
    headers.insert(CONNECTION, HeaderValue::from_static("close"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(target: &str, headers: &[(&str, &str)]) -> http::request::Parts {
        let mut b = http::Request::builder().method("GET").uri(target);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).expect("request").into_parts().0
    }

    #[test]
    fn origin_form_keeps_the_uri() {
        let req = request_header(parts("/a/b?c=d", &[("host", "x.example")])).expect("ok");
        assert_eq!(req.uri.path(), "/a/b");
        assert_eq!(req.uri.query(), Some("c=d"));
        assert_eq!(req.raw_path(), b"/a/b?c=d");
        assert_eq!(
            req.headers.get("host").map(|v| v.as_bytes()),
            Some(&b"x.example"[..])
        );
    }

    #[test]
    fn absolute_form_keeps_the_target_raw_and_routes_by_host() {
        let req =
            request_header(parts("http://x.example/same", &[("host", "x.example")])).expect("ok");
        assert!(req.uri.authority().is_none(), "{:?}", req.uri);
        assert_eq!(req.uri.path(), "/same");
        assert_eq!(req.raw_path(), b"http://x.example/same");
    }

    #[test]
    fn absolute_form_naming_another_host_is_refused() {
        let err = request_header(parts("http://other.example/x", &[("host", "x.example")]));
        assert!(matches!(err, Err(HeadError::Authority(_))), "{err:?}");
    }

    #[test]
    fn duplicate_host_is_refused() {
        let err = request_header(parts("/", &[("host", "a.example"), ("host", "b.example")]));
        assert!(matches!(err, Err(HeadError::Authority(_))), "{err:?}");
    }

    #[test]
    fn userinfo_in_host_is_refused() {
        let err = request_header(parts("/", &[("host", "user@a.example")]));
        assert!(matches!(err, Err(HeadError::Authority(_))), "{err:?}");
    }

    #[test]
    fn hyper_head_leaves_framing_to_hyper() {
        let mut resp = ResponseHeader::build(200, None).expect("head");
        resp.insert_header("transfer-encoding", "chunked")
            .expect("te");
        resp.insert_header("trailer", "x-sum").expect("trailer");
        resp.insert_header("content-type", "text/plain")
            .expect("ct");
        let head = hyper_head(&resp);
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.headers.get(TRANSFER_ENCODING).is_none());
        assert_eq!(
            head.headers.get("trailer").map(|v| v.as_bytes()),
            Some(&b"x-sum"[..])
        );
        assert_eq!(head.headers.len(), 2);
    }

    #[test]
    fn hyper_head_keeps_an_upgrade() {
        let mut resp = ResponseHeader::build(101, None).expect("head");
        resp.insert_header("connection", "upgrade").expect("c");
        resp.insert_header("upgrade", "websocket").expect("u");
        let head = hyper_head(&resp);
        assert_eq!(head.status, StatusCode::SWITCHING_PROTOCOLS);
        assert!(head.headers.contains_key("upgrade"));
        assert!(head.headers.contains_key("connection"));
    }

    #[test]
    fn refusal_carries_the_code_and_closes() {
        let resp = refusal(ErrorCode::BadRequest);
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            resp.headers()
                .get(sluice_proto::error_code::ERROR_CODE_HEADER)
                .and_then(|v| v.to_str().ok()),
            Some(ErrorCode::BadRequest.to_string().as_str())
        );
        assert_eq!(
            resp.headers().get(CONNECTION).map(|v| v.as_bytes()),
            Some(&b"close"[..])
        );
    }
}

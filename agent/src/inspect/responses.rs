//! The inspector's response bodies and the small responses its API answers with: empty,
//! JSON, and ngrok's error shape. A leaf, so the API and the page both build on it.

use bytes::Bytes;
use http::header::CONTENT_TYPE;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use serde_json::{json, Value};
use std::convert::Infallible;

/// Body of the inspector's responses.
pub(super) type ApiBody = BoxBody<Bytes, Infallible>;

/// A body from bytes.
pub(super) fn full(b: impl Into<Bytes>) -> ApiBody {
    Full::new(b.into()).boxed()
}

/// An empty response with `status`.
pub(super) fn empty(status: StatusCode) -> Response<ApiBody> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// `v` as a JSON response with `status`.
pub(super) fn json_response(status: StatusCode, v: &Value) -> Response<ApiBody> {
    let mut resp = Response::new(full(v.to_string()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// ngrok's error shape: `{status_code, msg}`.
pub(super) fn error(status: StatusCode, msg: impl Into<String>) -> Response<ApiBody> {
    json_response(
        status,
        &json!({ "status_code": status.as_u16(), "msg": msg.into() }),
    )
}

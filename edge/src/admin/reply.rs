//! The admin API's answers: JSON bodies, and the error body (`model::ErrorBody`) for the
//! control plane's errors and for the listener's own ([`Fault`]: auth, routing, bodies).

use super::api::AdminError;
use super::model::{ErrorBody, Page};
use bytes::Bytes;
use http::header::{ALLOW, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Method, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use std::time::Duration;

/// What the listener answers with.
pub(crate) type Reply = Response<Full<Bytes>>;

/// The listener's own refusals, before the control plane is asked. Codes are in
/// docs/errors.md, "Admin API".
#[derive(Debug)]
pub(crate) enum Fault {
    /// No admin token was sent (401).
    NoToken,
    /// The credential sent is not an accepted admin token (401).
    BadToken,
    /// This address sent too many wrong tokens; it may retry after this long (429).
    TooManyFailures(Duration),
    /// No such path in the API (404).
    NoPath,
    /// The path exists, for these methods only (405).
    NoMethod(Vec<Method>),
    /// The body is over the limit, in bytes (413).
    TooLarge(usize),
    /// The body is not declared as JSON (415).
    NotJson,
    /// The body is not JSON, or not this call's JSON; serde says where (400).
    BadJson(String),
    /// The body could not be read (400).
    BodyRead(String),
    /// The answer could not be written as JSON (500): a defect, never the caller's fault.
    Encode(String),
}

/// The realm of the `WWW-Authenticate` challenge.
const CHALLENGE: &str = "Bearer realm=\"sluice-admin\"";

impl Fault {
    fn status(&self) -> StatusCode {
        match self {
            Fault::NoToken | Fault::BadToken => StatusCode::UNAUTHORIZED,
            Fault::TooManyFailures(_) => StatusCode::TOO_MANY_REQUESTS,
            Fault::NoPath => StatusCode::NOT_FOUND,
            Fault::NoMethod(_) => StatusCode::METHOD_NOT_ALLOWED,
            Fault::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Fault::NotJson => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Fault::BadJson(_) | Fault::BodyRead(_) => StatusCode::BAD_REQUEST,
            Fault::Encode(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Fault::NoToken | Fault::BadToken => "ERR_SLUICE_7101",
            Fault::BadJson(_) | Fault::BodyRead(_) => "ERR_SLUICE_7102",
            Fault::NoPath => "ERR_SLUICE_7103",
            Fault::NoMethod(_) => "ERR_SLUICE_7105",
            Fault::TooLarge(_) => "ERR_SLUICE_7113",
            Fault::NotJson => "ERR_SLUICE_7115",
            Fault::TooManyFailures(_) => "ERR_SLUICE_7129",
            Fault::Encode(_) => "ERR_SLUICE_7500",
        }
    }

    fn msg(&self) -> String {
        match self {
            Fault::NoToken => {
                "no admin token: send it as 'Authorization: Bearer TOKEN' (never in the URL)".into()
            }
            Fault::BadToken => "the admin token is not accepted by this edge".into(),
            Fault::TooManyFailures(left) => format!(
                "too many wrong admin tokens from this address; try again in {} s",
                retry_seconds(*left)
            ),
            Fault::NoPath => "no such path in the admin API (see /openapi.json)".into(),
            Fault::NoMethod(allowed) => format!("method not allowed here; use {}", list(allowed)),
            Fault::TooLarge(limit) => format!("the request body is over {limit} bytes"),
            Fault::NotJson => {
                "the request body must be JSON (Content-Type: application/json)".into()
            }
            Fault::BadJson(e) => format!("request body: {e}"),
            Fault::BodyRead(e) => format!("reading the request body: {e}"),
            Fault::Encode(e) => format!("encoding the answer: {e}"),
        }
    }

    /// The error answer, with the headers its status calls for.
    pub(crate) fn reply(&self) -> Reply {
        let mut reply = error(self.status(), self.code(), self.msg());
        let headers = reply.headers_mut();
        match self {
            Fault::NoToken => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(CHALLENGE));
            }
            Fault::BadToken => {
                let value = format!("{CHALLENGE}, error=\"invalid_token\"");
                if let Ok(v) = HeaderValue::from_str(&value) {
                    headers.insert(WWW_AUTHENTICATE, v);
                }
            }
            Fault::TooManyFailures(left) => {
                headers.insert(RETRY_AFTER, HeaderValue::from(retry_seconds(*left)));
            }
            Fault::NoMethod(allowed) => {
                if let Ok(v) = HeaderValue::from_str(&list(allowed)) {
                    headers.insert(ALLOW, v);
                }
            }
            _ => {}
        }
        reply
    }
}

/// Whole seconds, rounded up and at least 1: `Retry-After: 0` would invite a retry that is
/// refused again.
fn retry_seconds(left: Duration) -> u64 {
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
}

fn list(methods: &[Method]) -> String {
    methods
        .iter()
        .map(Method::as_str)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The answer for a control-plane error.
pub(crate) fn admin_error(e: &AdminError) -> Reply {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    error(status, e.code(), e.to_string())
}

fn error(status: StatusCode, code: &str, msg: String) -> Reply {
    let body = ErrorBody {
        error_code: code.to_string(),
        status_code: status.as_u16(),
        msg,
    };
    // An ErrorBody (strings and a number) always serializes.
    json_bytes(status, serde_json::to_vec(&body).unwrap_or_default())
}

/// `value` as JSON with `status`.
pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    match serde_json::to_vec(value) {
        Ok(body) => json_bytes(status, body),
        Err(e) => Fault::Encode(e.to_string()).reply(),
    }
}

/// Bytes that are JSON already (the OpenAPI document).
pub(crate) fn json_bytes(status: StatusCode, body: impl Into<Bytes>) -> Reply {
    let mut reply = Response::new(Full::new(body.into()));
    *reply.status_mut() = status;
    reply
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    reply
}

/// 204, no body.
pub(crate) fn no_content() -> Reply {
    let mut reply = Response::new(Full::new(Bytes::new()));
    *reply.status_mut() = StatusCode::NO_CONTENT;
    reply
}

/// The answer to a call that returns one object (`status`: 200, or 201 for a create).
pub(crate) fn one<T: Serialize>(status: StatusCode, r: Result<T, AdminError>) -> Reply {
    match r {
        Ok(v) => json(status, &v),
        Err(e) => admin_error(&e),
    }
}

/// The answer to a list call: every object in one page under `name`.
pub(crate) fn page<T: Serialize>(name: &str, r: Result<Vec<T>, AdminError>) -> Reply {
    one(StatusCode::OK, r.map(|items| Page::all(name, items)))
}

/// The answer to a delete or a stop: 204.
pub(crate) fn done(r: Result<(), AdminError>) -> Reply {
    match r {
        Ok(()) => no_content(),
        Err(e) => admin_error(&e),
    }
}

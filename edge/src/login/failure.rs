//! [`Failure`]: why a sign-in failed, shown as an HTML page with a `sluice-error-code`, and
//! the redirects the flow answers with.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, LOCATION};
use http::{HeaderValue, Response, StatusCode};
use sluice_policy::codes;

/// Why a sign-in failed: an HTML page with a `sluice-error-code`, never a redirect.
pub(super) struct Failure {
    status: StatusCode,
    code: u32,
    message: String,
}

impl Failure {
    pub(super) fn new(status: StatusCode, code: u32, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub(super) fn provider(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_GATEWAY,
            codes::LOGIN_PROVIDER_FAILED,
            message,
        )
    }
}

impl Failure {
    /// The HTML error page (logged; no cookie changes).
    pub(super) fn page(self) -> Response<Bytes> {
        tracing::warn!(code = self.code, message = %self.message, "sign-in failed");
        codes::html_page(
            self.status,
            "Sign-in failed",
            &self.message,
            Some(self.code),
        )
    }
}

/// A `302` to `location`, never cached.
pub(super) fn redirect(location: &str) -> Response<Bytes> {
    let mut res = Response::new(Bytes::new());
    *res.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(location) {
        res.headers_mut().insert(LOCATION, v);
    }
    res.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// The pending cookie is missing, spent or too old.
pub(super) fn pending_failure() -> Failure {
    Failure::new(
        StatusCode::BAD_REQUEST,
        codes::LOGIN_NOT_STARTED,
        "This sign-in was not started in this browser, or it took longer than 10 minutes.",
    )
}

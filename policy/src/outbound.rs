//! The interface through which http-request calls other servers: the edge sends the calls
//! (network I/O, under the operator's outbound rules); this crate only describes them and
//! reads the answers.

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

/// The largest response body a call may return (ngrok's cap); a larger one fails the call with
/// [`CallError::TooLarge`].
pub const MAX_RESPONSE_BODY: usize = 256 * 1024;

/// One attempt of an http-request call, as the action rendered it.
#[derive(Debug, Clone)]
pub struct Call {
    /// GET, POST, PUT, PATCH, DELETE or OPTIONS.
    pub method: Method,
    /// An absolute `http://` or `https://` URL, query parameters appended.
    pub url: String,
    /// The configured headers and the ones the action adds (`user-agent`, `x-forwarded-for`,
    /// the hop count).
    pub headers: HeaderMap,
    /// The rendered `body` (empty when the config has none).
    pub body: Bytes,
    /// Redirects to follow before the call fails with [`CallError::TooManyRedirects`].
    pub max_redirects: u32,
    /// What is left of the action's `timeout` for this attempt, redirects included.
    pub timeout: Duration,
}

/// A server's answer to a [`Call`] (after any redirects).
#[derive(Debug, Clone)]
pub struct Answer {
    /// The final response's status.
    pub status: StatusCode,
    /// Its headers.
    pub headers: HeaderMap,
    /// At most [`MAX_RESPONSE_BODY`] bytes.
    pub body: Bytes,
    /// The address the last hop connected to, when known.
    pub resolved_ip: Option<IpAddr>,
    /// From sending the call to the end of the body.
    pub elapsed: Duration,
}

/// Why a call has no answer. Each kind has its `sluice-error-code` ([`CallError::code`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError {
    /// The response body is larger than [`MAX_RESPONSE_BODY`].
    #[error("the response body is larger than 256 KiB")]
    TooLarge,
    /// No complete answer within the time left.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// More redirects than `max_redirects`, or a call that would loop back through too many
    /// http-request actions.
    #[error("{0}")]
    Loop(String),
    /// The target is an address the edge's outbound rules keep policies away from.
    #[error("{0}")]
    Refused(String),
    /// Anything else: DNS, connection, TLS, a broken response.
    #[error("{0}")]
    Failed(String),
}

impl CallError {
    /// The error code a failed call reports (docs/errors.md).
    pub fn code(&self) -> u32 {
        use crate::codes;
        match self {
            CallError::TooLarge => codes::HTTP_REQUEST_TOO_LARGE,
            CallError::Timeout(_) => codes::HTTP_REQUEST_TIMEOUT,
            CallError::Loop(_) => codes::HTTP_REQUEST_LOOP,
            CallError::Refused(_) => codes::HTTP_REQUEST_REFUSED,
            CallError::Failed(_) => codes::HTTP_REQUEST_FAILED,
        }
    }

    /// The status of the response that `on_error: halt` answers with: 504 for a timeout,
    /// 502 otherwise (another server failed us).
    pub fn status(&self) -> StatusCode {
        match self {
            CallError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

/// What [`HttpCaller::call`] returns.
pub type CallFuture<'a> = Pin<Box<dyn Future<Output = Result<Answer, CallError>> + Send + 'a>>;

/// Sends http-request's calls; given to the engine with
/// [`Engine::with_http_caller`](crate::Engine::with_http_caller). Without one (offline
/// evaluation) every call fails with [`CallError::Failed`].
pub trait HttpCaller: Send + Sync {
    /// Sends one attempt and reads its answer, within `call.timeout`.
    fn call(&self, call: Call) -> CallFuture<'_>;
}

//! Responses the edge writes itself: error pages with their `sluice-error-code` header, and
//! whole responses (policy answers, redirects) written in one go.

use crate::policy::heads::overwrite_head;
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use sluice_proto::error_code::{ErrorCode, ERROR_CODE_HEADER};

/// The response head for an edge error: status, `sluice-error-code`, plain-text body length.
pub fn error_head(code: ErrorCode, body_len: usize) -> pingora::Result<ResponseHeader> {
    let mut head = ResponseHeader::build(code.status(), Some(4))?;
    head.insert_header(ERROR_CODE_HEADER, code.to_string())?;
    head.insert_header("content-type", "text/plain; charset=utf-8")?;
    head.insert_header("content-length", body_len.to_string())?;
    head.insert_header("cache-control", "no-store")?;
    Ok(head)
}

/// The short human body for `code`.
pub fn error_body(code: ErrorCode) -> Bytes {
    Bytes::from(code.body())
}

/// Writes the error response for `code` to the client.
pub async fn respond(session: &mut Session, code: ErrorCode) -> pingora::Result<()> {
    write_error(session, code, false).await
}

/// Writes the error response for a request that failed while being proxied; the client
/// connection is not reused after it. pingora closes its own HTTP/1 connections then; the
/// HTTP/1.x bridge (a custom session to pingora) learns it from `Connection: close`, which its
/// server honours.
pub async fn respond_failure(session: &mut Session, code: ErrorCode) -> pingora::Result<()> {
    let close = session.as_downstream().is_custom();
    write_error(session, code, close).await
}

/// Writes `code`'s error head and body, with `Connection: close` when `close`.
async fn write_error(session: &mut Session, code: ErrorCode, close: bool) -> pingora::Result<()> {
    let body = error_body(code);
    let mut head = error_head(code, body.len())?;
    if close {
        head.insert_header(http::header::CONNECTION, "close")?;
    }
    session.write_response_header(Box::new(head), false).await?;
    session.write_response_body(Some(body), true).await
}

/// Sends a whole response the policy or the edge generated (policy answers, redirects,
/// ACME and auth-host answers).
pub async fn send(session: &mut Session, resp: http::Response<Bytes>) -> pingora::Result<()> {
    let (parts, body) = resp.into_parts();
    let mut head = ResponseHeader::build(parts.status, Some(parts.headers.len() + 1))?;
    overwrite_head(&mut head, &parts, body.len())?;
    session
        .write_response_header(Box::new(head), body.is_empty())
        .await?;
    if !body.is_empty() {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

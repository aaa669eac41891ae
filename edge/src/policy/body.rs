//! Reads a whole request body for policies whose actions need it (verify-webhook) before they
//! run, keeping it in pingora's retry buffer so the same bytes are then sent to the agent.

use bytes::{Bytes, BytesMut};
use pingora::proxy::Session;

/// The largest body the edge buffers: pingora's retry buffer (64 KiB), which is what forwards
/// the already-read body to the upstream afterwards.
pub const MAX_BUFFERED_BODY: usize = 64 * 1024;

/// The request body, or `None` when it is larger than [`MAX_BUFFERED_BODY`] (then the
/// request must be refused: the part already read can no longer reach the upstream).
pub async fn read_whole(session: &mut Session) -> pingora::Result<Option<Bytes>> {
    let declared = session
        .req_header()
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BUFFERED_BODY as u64) {
        return Ok(None);
    }
    session.enable_retry_buffering();
    let mut body = BytesMut::new();
    while let Some(chunk) = session.read_request_body().await? {
        if body.len() + chunk.len() > MAX_BUFFERED_BODY {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    if session.retry_buffer_truncated() {
        return Ok(None);
    }
    Ok(Some(body.freeze()))
}

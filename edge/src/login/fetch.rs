//! Bounded HTTP GETs of identity-provider documents (JWKS, discovery, user info): one home
//! for the accept header, the status check and the size cap. The URLs come from policies, so
//! every fetch goes through a [`GuardedClient`].

use crate::outbound::guarded::{describe, GuardedClient};

/// Larger documents are refused (real ones are a few KiB).
pub const MAX_DOCUMENT: usize = 1024 * 1024;

/// Why a document could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The server answered, with a status other than success.
    #[error("status {0}")]
    Status(http::StatusCode),
    /// No usable answer: connection, timeout, body, size.
    #[error("{0}")]
    Failed(String),
}

/// The body of `url` (JSON asked for; with a bearer token when given), at most
/// [`MAX_DOCUMENT`] bytes; the error names what failed.
pub async fn get_document(
    client: &GuardedClient,
    url: &str,
    bearer: Option<&str>,
) -> Result<Vec<u8>, FetchError> {
    client
        .check_str(url)
        .map_err(|e| FetchError::Failed(e.to_string()))?;
    let mut req = client
        .client()
        .get(url)
        .header(http::header::ACCEPT, "application/json");
    if let Some(token) = bearer {
        req = req.bearer_auth(token);
    }
    let failed = |e: reqwest::Error| FetchError::Failed(describe(&e).unwrap_or_else(|r| r));
    let mut res = req.send().await.map_err(failed)?;
    if !res.status().is_success() {
        return Err(FetchError::Status(res.status()));
    }
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(failed)? {
        if body.len() + chunk.len() > MAX_DOCUMENT {
            return Err(FetchError::Failed("document larger than 1 MiB".into()));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

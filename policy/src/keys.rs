//! The interface through which jwt-validation gets signing keys: the edge fetches and caches
//! JWKS documents (network I/O); this crate only asks for them and reads them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub use jsonwebtoken::jwk::JwkSet;

/// What [`KeySource::key_set`] returns.
pub type KeysFuture<'a> = Pin<Box<dyn Future<Output = Result<Arc<JwkSet>, KeyError>> + Send + 'a>>;

/// A source of JWKS documents by URL, given to the engine with
/// [`Engine::with_key_source`](crate::Engine::with_key_source).
pub trait KeySource: Send + Sync {
    /// The key set served at `url`: cached, or fetched when absent or stale. `refresh` asks for
    /// a fresh copy because a token names a `kid` the cached set lacks (key rotation); the
    /// source may refuse to refetch too often and answer from its cache.
    fn key_set<'a>(&'a self, url: &'a str, refresh: bool) -> KeysFuture<'a>;
}

/// Why a key set could not be had (unreachable, not JSON, not a JWKS document).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("signing keys from {url} unavailable: {reason}")]
pub struct KeyError {
    /// The JWKS URL.
    pub url: String,
    /// What went wrong.
    pub reason: String,
}

/// Why bytes are not a JWKS document.
#[derive(Debug, thiserror::Error)]
#[error("not a JWKS document: {0}")]
pub struct JwksError(serde_json::Error);

/// The message, for callers that keep reasons as text (the edge's JWKS cache puts it in a
/// [`KeyError`]).
impl From<JwksError> for String {
    fn from(e: JwksError) -> Self {
        e.to_string()
    }
}

/// A JWKS document parsed from its JSON text. The error is any type a [`JwksError`] converts
/// into, so a caller returning its own error (or a `String`) returns this result directly.
pub fn parse_jwks<E: From<JwksError>>(json: &[u8]) -> Result<JwkSet, E> {
    serde_json::from_slice(json).map_err(|e| JwksError(e).into())
}

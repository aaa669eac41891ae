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

/// A JWKS document parsed from its JSON text.
pub fn parse_jwks(json: &[u8]) -> Result<JwkSet, String> {
    serde_json::from_slice(json).map_err(|e| format!("not a JWKS document: {e}"))
}

//! jwt-validation's key source: JWKS documents fetched over HTTP(S) and cached per URL, so a
//! request pays for a fetch only on first use, after the cache time, or on key rotation.

use super::fetch::FetchError;
use crate::outbound::{AddressRules, GuardedClient};
use parking_lot::Mutex;
use sluice_policy::{parse_jwks, JwkSet, JwksError, KeyError, KeySource, KeysFuture};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a fetched key set is used before it is fetched again (ngrok: about 15 minutes).
const CACHE_FOR: Duration = Duration::from_secs(15 * 60);
/// A token with an unknown `kid` refetches the set at most this often per URL, so forged
/// tokens cannot make the edge hammer the identity provider.
const MIN_REFRESH: Duration = Duration::from_secs(5);
/// Whole fetch, connect included.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a JWKS document could not be had; the message becomes [`KeyError::reason`].
#[derive(Debug, thiserror::Error)]
enum JwksFetchError {
    /// The document could not be fetched.
    #[error(transparent)]
    Fetch(#[from] FetchError),
    /// It is not a JWKS document.
    #[error(transparent)]
    Parse(#[from] JwksError),
}

struct Cached {
    set: Arc<JwkSet>,
    fetched: Instant,
}

/// The edge's JWKS cache, shared by every endpoint's engine.
pub struct JwksCache {
    client: GuardedClient,
    entries: Mutex<HashMap<String, Cached>>,
}

impl JwksCache {
    /// An empty cache with its own HTTP client, which reaches only what `rules` allow (the
    /// URLs come from policies).
    pub fn new(rules: &AddressRules) -> Result<Self, reqwest::Error> {
        let builder = reqwest::Client::builder().timeout(FETCH_TIMEOUT);
        let client = GuardedClient::new(rules, builder, 3)?;
        Ok(Self {
            client,
            entries: Mutex::new(HashMap::new()),
        })
    }

    /// The cached set for `url` when it may still be used for this lookup.
    fn usable(&self, url: &str, refresh: bool) -> Option<Arc<JwkSet>> {
        let entries = self.entries.lock();
        let c = entries.get(url)?;
        let age = c.fetched.elapsed();
        let fresh_enough = if refresh {
            age < MIN_REFRESH
        } else {
            age < CACHE_FOR
        };
        fresh_enough.then(|| c.set.clone())
    }

    async fn fetch(&self, url: &str) -> Result<JwkSet, JwksFetchError> {
        let body = super::fetch::get_document(&self.client, url, None).await?;
        parse_jwks(&body)
    }

    async fn lookup(&self, url: &str, refresh: bool) -> Result<Arc<JwkSet>, KeyError> {
        if let Some(set) = self.usable(url, refresh) {
            return Ok(set);
        }
        match self.fetch(url).await {
            Ok(set) => {
                let set = Arc::new(set);
                tracing::debug!(%url, keys = set.keys.len(), "fetched JWKS");
                self.entries.lock().insert(
                    url.to_string(),
                    Cached {
                        set: set.clone(),
                        fetched: Instant::now(),
                    },
                );
                Ok(set)
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(%url, %reason, "JWKS fetch failed");
                // A stale copy beats no keys while the provider is briefly unreachable.
                let stale = self.entries.lock().get(url).map(|c| c.set.clone());
                stale.ok_or(KeyError {
                    url: url.to_string(),
                    reason,
                })
            }
        }
    }
}

impl KeySource for JwksCache {
    fn key_set<'a>(&'a self, url: &'a str, refresh: bool) -> KeysFuture<'a> {
        Box::pin(self.lookup(url, refresh))
    }
}

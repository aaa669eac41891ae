//! Connecting to the cluster store: one place for the client's settings (call and connect
//! timeouts, how fast it reconnects) and for naming the store in errors without its password.

use super::claims::CALL_LIMIT;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// Longest wait between two attempts to reconnect to the store, in milliseconds: with the
/// client's default backoff (up to 6.4 s between attempts) a store back after a short outage
/// stayed unused for seconds while every call waited on the sleeping reconnect and timed out.
const RECONNECT_MAX_DELAY_MS: u64 = 250;

/// The store did not answer, or refused.
#[derive(Debug, thiserror::Error)]
#[error("cluster store {store}: {source}")]
pub struct StoreError {
    /// The store's address (without credentials).
    pub store: String,
    /// What the client said.
    #[source]
    pub source: redis::RedisError,
}

/// The store's address as errors show it: `url` without its credentials.
pub fn shown(url: &str) -> String {
    url.rsplit('@').next().unwrap_or_default().to_string()
}

/// A client for the store at `url` (`redis://` or `rediss://`) and a connection that
/// reconnects by itself; the store must answer now.
pub async fn connect(url: &str) -> Result<(redis::Client, ConnectionManager), StoreError> {
    let failed = |source| StoreError {
        store: shown(url),
        source,
    };
    let client = redis::Client::open(url).map_err(failed)?;
    let settings = ConnectionManagerConfig::new()
        .set_connection_timeout(CALL_LIMIT)
        .set_response_timeout(CALL_LIMIT)
        .set_max_delay(RECONNECT_MAX_DELAY_MS);
    let conn = client
        .get_connection_manager_with_config(settings)
        .await
        .map_err(failed)?;
    Ok((client, conn))
}

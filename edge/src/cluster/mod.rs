//! Several edges as one service (docs/cluster.md): the `cluster:` section (`config.rs`), this
//! edge's endpoint claims in the shared store (`claims.rs`), and the keys edges must share or
//! keep apart (`members.rs`). [`join`] connects, checks and starts renewing. Rate-limit
//! buckets (`rate_limits.rs`) and sign-in state (`sign_in.rs`) are shared too, set up before
//! the policy services by `shared.rs`.

pub mod claims;
pub mod config;
pub mod members;
pub mod rate_limits;
pub mod shared;
pub mod sign_in;

use claims::{Claims, CALL_LIMIT, RENEW_EVERY};
use config::ClusterConfig;
use members::{MemberError, Members};
use prometheus::IntCounterVec;
use redis::aio::ConnectionManagerConfig;
use std::sync::Arc;
use tracing::info;

/// Why this edge could not join its cluster.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The store did not answer.
    #[error("cluster store {store}: {source}")]
    Store {
        /// The store's address (without credentials).
        store: String,
        /// What the client said.
        #[source]
        source: redis::RedisError,
    },
    /// Another live edge conflicts.
    #[error("cluster: {0}")]
    Member(#[from] MemberError),
}

/// Connects to the store in `config` (which must answer now), checks this edge's keys against
/// the other live edges, and returns its claims with the task that renews them and its entry.
pub async fn join(
    config: &ClusterConfig,
    reset_key: &[u8],
    session_key: &[u8],
    errors: IntCounterVec,
) -> Result<(Arc<Claims>, tokio::task::JoinHandle<()>), JoinError> {
    let failed = |source| JoinError::Store {
        store: config
            .store
            .rsplit('@')
            .next()
            .unwrap_or_default()
            .to_string(),
        source,
    };
    let client = redis::Client::open(config.store.as_str()).map_err(failed)?;
    let settings = ConnectionManagerConfig::new()
        .set_connection_timeout(CALL_LIMIT)
        .set_response_timeout(CALL_LIMIT);
    let conn = client
        .get_connection_manager_with_config(settings)
        .await
        .map_err(failed)?;
    let members = Members::join(
        conn.clone(),
        &config.edge_id,
        &config.peer_secret,
        reset_key,
        session_key,
    )
    .await?;
    let claims = Claims::new(conn, &config.edge_id, errors);
    info!(edge_id = %config.edge_id, "joined the cluster");
    let renewing = tokio::spawn(renew_forever(claims.clone(), members));
    Ok((claims, renewing))
}

/// Renews the claims and the membership every [`RENEW_EVERY`] until aborted.
async fn renew_forever(claims: Arc<Claims>, members: Members) {
    let mut tick = tokio::time::interval(RENEW_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        members.renew().await;
        claims.renew().await;
    }
}

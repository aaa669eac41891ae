//! [`SharedState`]: what the cluster store shares beyond endpoint claims, built before the
//! policy services that use it: rate-limit buckets (`rate_limits.rs`) and the sign-in state
//! (`sign_in.rs`), over one connection of their own, plus the subscription that follows the
//! other edges' logouts.

use super::config::ClusterConfig;
use super::rate_limits::SharedRateLimits;
use super::sign_in::{ClusterSignIn, FollowError};
use super::store;
use crate::login::Revocations;
use prometheus::IntCounterVec;
use std::sync::Arc;

/// Why the shared state could not be set up at start.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// The store did not answer (or refused).
    #[error("cluster store {store}: {reason}")]
    Store {
        /// The store's address (without credentials).
        store: String,
        /// What went wrong.
        reason: String,
    },
}

/// The shared rate limits and sign-in state, and the task that follows the other edges'
/// logouts (abort it at shutdown).
pub struct SharedState {
    /// Rate-limit buckets for every endpoint's engine.
    pub rate_limits: Arc<SharedRateLimits>,
    /// Logouts and one-time codes for the sign-in service.
    pub sign_in: Arc<ClusterSignIn>,
    /// Follows the logouts published by the other edges.
    pub following: tokio::task::JoinHandle<()>,
}

impl SharedState {
    /// Connects to the store in `config` (which must answer now), reads the cluster's logouts
    /// into `revoked`, and starts following them. Rate-limit decisions follow the config's
    /// `rate_limit_fallback` when the store does not answer; failed calls are counted in
    /// `errors`.
    pub async fn connect(
        config: &ClusterConfig,
        revoked: Arc<Revocations>,
        errors: IntCounterVec,
    ) -> Result<Self, SharedError> {
        let failed = |reason: String| SharedError::Store {
            store: store::shown(&config.store),
            reason,
        };
        let (client, conn) = store::connect(&config.store)
            .await
            .map_err(|e| failed(e.source.to_string()))?;
        let rate_limits =
            SharedRateLimits::new(conn.clone(), config.rate_limit_fallback, errors.clone());
        let sign_in = ClusterSignIn::new(client, conn, revoked, errors);
        // Before serving: the logouts the cluster knows.
        sign_in
            .resync()
            .await
            .map_err(|e: FollowError| failed(e.to_string()))?;
        let following = tokio::spawn(sign_in.clone().follow());
        Ok(Self {
            rate_limits,
            sign_in,
            following,
        })
    }
}

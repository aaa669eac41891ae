//! Connecting to the cluster store: one place for the client's settings (call and connect
//! timeouts, how fast it reconnects), for naming the store in errors without its password, and
//! for following a pub/sub channel ([`follow`]: the mirror, the admin rows and each edge's
//! messages use it).

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

/// What a task following one pub/sub channel of the store does with it.
#[async_trait::async_trait]
pub trait Follower: Send + Sync {
    /// A message arrived on the channel.
    async fn on_message(&self, payload: String);
    /// Time to read the whole state again: on each (re)subscription (a message may have been
    /// missed meanwhile), every resync period, and after a subscription failed.
    async fn on_resync(&self) {}
}

/// Follows `channel` for `follower` until aborted, calling [`Follower::on_resync`] on each
/// subscription and every `resync_every` (if any). A subscription that fails (counted in
/// `errors{op}`) or ends is taken again after a second; what the follower keeps serves
/// meanwhile.
pub async fn follow(
    client: redis::Client,
    channel: &str,
    resync_every: Option<std::time::Duration>,
    follower: &dyn Follower,
    errors: &prometheus::IntCounterVec,
    op: &str,
) {
    use futures_util::StreamExt;
    loop {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        match tokio::time::timeout(CALL_LIMIT, subscribed).await {
            Ok(Ok(mut pubsub)) => {
                follower.on_resync().await;
                let mut messages = pubsub.on_message();
                let mut resync = resync_every.map(|period| {
                    let first = tokio::time::Instant::now() + period;
                    let mut every = tokio::time::interval_at(first, period);
                    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    every
                });
                loop {
                    tokio::select! {
                        message = messages.next() => match message {
                            Some(m) => match m.get_payload::<String>() {
                                Ok(payload) => follower.on_message(payload).await,
                                Err(e) => tracing::debug!("an unreadable message on {channel}: {e}"),
                            },
                            None => break,
                        },
                        () = async {
                            match resync.as_mut() {
                                Some(every) => drop(every.tick().await),
                                None => std::future::pending().await,
                            }
                        } => follower.on_resync().await,
                    }
                }
            }
            _ => {
                errors.with_label_values(&[op]).inc();
                follower.on_resync().await;
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

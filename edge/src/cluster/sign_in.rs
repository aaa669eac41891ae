//! [`ClusterSignIn`]: logouts and the auth host's one-time codes in the cluster store, so a
//! session ended on one edge is refused on all of them within a second, and a code issued on
//! one edge is swapped once, on any edge.
//!
//! A logout is a key `sluice:revoked:{session id}` holding the session's end (Unix seconds)
//! and expiring then, published on the channel `sluice:revoked` as `SESSION-ID END`. Each edge
//! follows the channel into its own revocation set (memory and state-dir file), which is all
//! a request looks at: no store call per request. Whenever it (re)subscribes, it then reads
//! every key (SCAN), so nothing published while it was away is missed, and writes back (and
//! publishes) the logouts it knows that the store lacks: its own made while the store was
//! unreachable, or everything after the store lost its data.
//!
//! A code is a key `sluice:code:{id}` holding `SECRET-DIGEST|SEALED` for [`CODE_TTL`]: the
//! SHA-256 of the code's secret half, and the finished sign-in sealed with the session keys
//! every edge shares (the store never reads it). One Lua script compares the digest and
//! deletes the key in the same step, so only one swap, on any edge, gets it; a wrong secret
//! leaves it for its owner.

use super::claims::CALL_LIMIT;
use crate::login::{Revocations, SharedFuture, SharedSignIn, CODE_TTL};
use futures_util::StreamExt as _;
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands as _, Script};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, warn};

/// The channel logouts are published on.
const CHANNEL: &str = "sluice:revoked";

/// How often the subscription is checked (a PING on it) and missed writes are retried; also
/// the pause before subscribing again after a failure.
const CHECK_EVERY: Duration = Duration::from_millis(500);

/// Takes the code KEYS[1] when its secret digest is ARGV[1]: the sealed sign-in, else nil.
const TAKE: &str = r"
local v = redis.call('GET', KEYS[1])
if not v then return false end
local sep = string.find(v, '|', 1, true)
if not sep or string.sub(v, 1, sep - 1) ~= ARGV[1] then return false end
redis.call('DEL', KEYS[1])
return string.sub(v, sep + 1)
";

/// Why following the other edges' logouts stopped (it starts again after [`CHECK_EVERY`]).
#[derive(Debug, thiserror::Error)]
pub enum FollowError {
    /// The store refused or dropped a call.
    #[error("{0}")]
    Store(#[from] redis::RedisError),
    /// The store did not answer within the call limit.
    #[error("no answer in time")]
    Timeout,
    /// The subscription ended (the store went away).
    #[error("the subscription ended")]
    Closed,
}

/// A store call bounded by [`CALL_LIMIT`].
async fn bounded<T>(call: impl Future<Output = redis::RedisResult<T>>) -> Result<T, FollowError> {
    match tokio::time::timeout(CALL_LIMIT, call).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(FollowError::Timeout),
    }
}

/// This edge's side of the sign-in state the cluster shares.
pub struct ClusterSignIn {
    client: redis::Client,
    conn: ConnectionManager,
    take: Script,
    /// This edge's revocation set, which requests read.
    revoked: Arc<Revocations>,
    /// A logout could not be written: the next check writes back what the store lacks.
    unwritten: AtomicBool,
    /// The subscription is up (so its failure is logged once per outage).
    subscribed: AtomicBool,
    /// Store calls that failed, by operation (`revoke`, `code`, `revocations`).
    errors: IntCounterVec,
}

impl ClusterSignIn {
    /// Shares logouts (into `revoked`) and codes over `conn`; `client` opens the subscription.
    /// Failed calls are counted in `errors`.
    pub fn new(
        client: redis::Client,
        conn: ConnectionManager,
        revoked: Arc<Revocations>,
        errors: IntCounterVec,
    ) -> Arc<Self> {
        Arc::new(Self {
            client,
            conn,
            take: Script::new(TAKE),
            revoked,
            unwritten: AtomicBool::new(false),
            subscribed: AtomicBool::new(false),
            errors,
        })
    }

    fn revoked_key(session_id: &str) -> String {
        format!("sluice:revoked:{session_id}")
    }

    fn code_key(id: &str) -> String {
        format!("sluice:code:{id}")
    }

    fn failed(&self, op: &str, why: &dyn std::fmt::Display) {
        self.errors.with_label_values(&[op]).inc();
        warn!(op, "a sign-in call to the cluster store failed: {why}");
    }

    /// Writes one logout and publishes it.
    async fn write(&self, session_id: &str, until: u64) -> Result<(), FollowError> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("SET")
            .arg(Self::revoked_key(session_id))
            .arg(until)
            .arg("EXAT")
            .arg(until)
            .ignore()
            .publish(CHANNEL, format!("{session_id} {until}"))
            .ignore();
        bounded(pipe.query_async::<()>(&mut conn)).await
    }

    /// Reads every logout in the store into this edge's set, then writes back (and publishes)
    /// the live ones this edge knows that the store lacks.
    pub async fn resync(&self) -> Result<(), FollowError> {
        let mut conn = self.conn.clone();
        let mut stored = std::collections::HashSet::new();
        let mut cursor: u64 = 0;
        loop {
            let mut scan = redis::cmd("SCAN");
            scan.arg(cursor)
                .arg("MATCH")
                .arg("sluice:revoked:*")
                .arg("COUNT")
                .arg(1000);
            let (next, keys): (u64, Vec<String>) = bounded(scan.query_async(&mut conn)).await?;
            if !keys.is_empty() {
                let ends: Vec<Option<u64>> = bounded(conn.mget(&keys)).await?;
                for (key, end) in keys.iter().zip(ends) {
                    let Some(sid) = key.strip_prefix("sluice:revoked:") else {
                        continue;
                    };
                    if let Some(end) = end {
                        self.revoked.learn(sid, end);
                    }
                    stored.insert(sid.to_string());
                }
            }
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        for (sid, until) in self.revoked.live() {
            if !stored.contains(&sid) {
                self.write(&sid, until).await?;
            }
        }
        Ok(())
    }

    /// Follows the other edges' logouts until aborted: subscribes, reads the store again
    /// ([`Self::resync`]), then learns each published logout; checks the subscription every
    /// [`CHECK_EVERY`] and starts again when it fails.
    pub async fn follow(self: Arc<Self>) {
        // Logged once per outage, not at every attempt.
        let mut warned = false;
        loop {
            if let Err(e) = self.follow_once().await {
                self.errors.with_label_values(&["revocations"]).inc();
                self.unwritten.store(true, Ordering::Relaxed);
                if self.subscribed.swap(false, Ordering::Relaxed) {
                    warned = false;
                }
                if !warned {
                    warn!("following the cluster's logouts stopped, retrying every {CHECK_EVERY:?}: {e}");
                    warned = true;
                }
            }
            tokio::time::sleep(CHECK_EVERY).await;
        }
    }

    async fn follow_once(&self) -> Result<(), FollowError> {
        let pubsub = bounded(self.client.get_async_pubsub()).await?;
        let (mut sink, mut messages) = pubsub.split();
        bounded(sink.subscribe(CHANNEL)).await?;
        // After subscribing: a logout published from here on arrives as a message.
        self.resync().await?;
        self.unwritten.store(false, Ordering::Relaxed);
        self.subscribed.store(true, Ordering::Relaxed);
        info!("following the cluster's logouts");
        let mut check = tokio::time::interval(CHECK_EVERY);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                message = messages.next() => {
                    let message = message.ok_or(FollowError::Closed)?;
                    let text: String = message.get_payload().unwrap_or_default();
                    if let Some((sid, until)) = text.split_once(' ') {
                        if let Ok(until) = until.parse() {
                            self.revoked.learn(sid, until);
                        }
                    }
                }
                _ = check.tick() => {
                    bounded(sink.ping::<redis::Value>()).await?;
                    if self.unwritten.swap(false, Ordering::Relaxed) {
                        self.resync().await?;
                    }
                }
            }
        }
    }
}

impl SharedSignIn for ClusterSignIn {
    fn revoke<'a>(&'a self, session_id: &'a str, until: u64) -> SharedFuture<'a, ()> {
        Box::pin(async move {
            if let Err(e) = self.write(session_id, until).await {
                self.failed("revoke", &e);
                self.unwritten.store(true, Ordering::Relaxed);
            }
        })
    }

    fn keep_code<'a>(
        &'a self,
        id: &'a str,
        secret_digest: &'a str,
        sealed: String,
    ) -> SharedFuture<'a, bool> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut set = redis::cmd("SET");
            set.arg(Self::code_key(id))
                .arg(format!("{secret_digest}|{sealed}"))
                .arg("PX")
                .arg(CODE_TTL.as_millis() as u64);
            match bounded(set.query_async::<()>(&mut conn)).await {
                Ok(()) => true,
                Err(e) => {
                    self.failed("code", &e);
                    false
                }
            }
        })
    }

    fn take_code<'a>(
        &'a self,
        id: &'a str,
        secret_digest: &'a str,
    ) -> SharedFuture<'a, Option<String>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let mut call = self.take.prepare_invoke();
            call.key(Self::code_key(id)).arg(secret_digest);
            match bounded(call.invoke_async::<Option<String>>(&mut conn)).await {
                Ok(sealed) => sealed,
                Err(e) => {
                    self.failed("code", &e);
                    None
                }
            }
        })
    }
}

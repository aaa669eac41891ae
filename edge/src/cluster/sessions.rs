//! [`SharedSessions`]: the agent sessions of every edge, listed in the cluster store so that the
//! admin API of any edge lists them all and stops one wherever it is (docs/cluster.md).
//!
//! Each edge writes its whole list as the hash `sluice:sessions:{edge-id}` (session id → JSON
//! [`SharedSession`]) whenever a session comes or goes, and again with every renewal; the hash
//! lives two leases, so a dead edge's list goes with it. A stop for a session another edge
//! holds is a message to that edge (`control.rs`); the caller then waits until the session has
//! left that edge's list.

use super::claims::{CALL_LIMIT, LEASE, RENEW_EVERY};
use super::control::{self, Message};
use crate::tunnel::directory::{Directory, SessionEntry};
use prometheus::IntCounterVec;
use redis::aio::ConnectionManager;
use redis::Script;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

/// How long a stop waits for the holding edge to close the session.
const STOP_WAIT: Duration = Duration::from_secs(1);

/// Replaces an edge's list (KEYS[1]) with ARGV's `ID, JSON` pairs after ARGV[1], the hash's
/// life in ms; an empty list deletes it.
const WRITE: &str = r"
redis.call('DEL', KEYS[1])
for i = 2, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1])
end
if #ARGV > 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return 0
";

/// Every session of every edge listed in `sluice:edges`, as JSON.
const READ: &str = r"
local out = {}
for _, edge in ipairs(redis.call('HKEYS', 'sluice:edges')) do
  for _, session in ipairs(redis.call('HVALS', 'sluice:sessions:' .. edge)) do
    table.insert(out, session)
  end
end
return out
";

/// One agent session as the cluster lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SharedSession {
    /// The edge that holds it.
    pub edge_id: String,
    /// `ses_…`.
    pub id: String,
    /// Its authtoken's digest, hex.
    pub owner: String,
    /// The agent's release.
    pub agent_version: String,
    /// The agent's address as that edge sees it.
    pub remote: String,
    /// When it was admitted, in ms since the Unix epoch.
    pub started_ms: u64,
    /// The URLs of its endpoints.
    pub endpoints: Vec<String>,
    /// `quic` or `tcp`.
    pub transport: String,
}

impl SharedSession {
    /// `entry`, held by edge `edge_id`.
    pub fn of(entry: &SessionEntry, edge_id: &str) -> Self {
        Self {
            edge_id: edge_id.to_string(),
            id: entry.handle.id.clone(),
            owner: entry.handle.owner.hex(),
            agent_version: entry.agent_version.clone(),
            remote: entry.remote.to_string(),
            started_ms: entry
                .started
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
            endpoints: entry.endpoints.clone(),
            transport: entry.handle.link.conn.transport().to_string(),
        }
    }
}

/// The cluster store did not answer.
#[derive(Debug, thiserror::Error)]
#[error("the cluster store is unreachable: {0}")]
pub struct SessionsError(String);

/// This edge's view of the cluster's session lists.
pub struct SharedSessions {
    conn: ConnectionManager,
    edge_id: String,
    write: Script,
    read: Script,
    /// Store calls that failed (`sessions`).
    errors: IntCounterVec,
}

impl SharedSessions {
    /// The lists as edge `edge_id` sees and writes them over `conn`.
    pub fn new(conn: ConnectionManager, edge_id: &str, errors: IntCounterVec) -> Arc<Self> {
        Arc::new(Self {
            conn,
            edge_id: edge_id.to_string(),
            write: Script::new(WRITE),
            read: Script::new(READ),
            errors,
        })
    }

    /// This edge's id.
    pub fn edge_id(&self) -> &str {
        &self.edge_id
    }

    /// Writes this edge's list whenever `directory` changes, and every [`RENEW_EVERY`] (which
    /// puts it back after the store lost it), until aborted.
    pub async fn publish_forever(self: Arc<Self>, directory: Arc<Directory>) {
        loop {
            self.publish(&directory).await;
            tokio::select! {
                () = directory.changed() => {}
                () = tokio::time::sleep(RENEW_EVERY) => {}
            }
        }
    }

    /// Writes this edge's list once.
    async fn publish(&self, directory: &Directory) {
        let mut call = self.write.prepare_invoke();
        call.key(list_key(&self.edge_id))
            .arg(2 * LEASE.as_millis() as u64);
        for entry in directory.all() {
            let shared = SharedSession::of(&entry, &self.edge_id);
            call.arg(&shared.id)
                .arg(serde_json::to_string(&shared).unwrap_or_default());
        }
        let mut conn = self.conn.clone();
        if !matches!(
            tokio::time::timeout(CALL_LIMIT, call.invoke_async::<()>(&mut conn)).await,
            Ok(Ok(()))
        ) {
            self.errors.with_label_values(&["sessions"]).inc();
        }
    }

    /// Every edge's sessions, oldest first.
    pub async fn all(&self) -> Result<Vec<SharedSession>, SessionsError> {
        let mut conn = self.conn.clone();
        let call = self.read.prepare_invoke();
        let listed = self
            .bounded(call.invoke_async::<Vec<String>>(&mut conn))
            .await?;
        let mut all: Vec<SharedSession> = listed
            .iter()
            .filter_map(|json| serde_json::from_str(json).ok())
            .collect();
        all.sort_by(|a, b| (a.started_ms, &a.id).cmp(&(b.started_ms, &b.id)));
        Ok(all)
    }

    /// Session `id`, on whichever edge holds it.
    pub async fn get(&self, id: &str) -> Result<Option<SharedSession>, SessionsError> {
        Ok(self.all().await?.into_iter().find(|s| s.id == id))
    }

    /// Asks the edge holding `session` to close it with the operator's stop, and waits (up to
    /// a second) until it has left that edge's list.
    pub async fn stop(&self, session: &SharedSession) -> Result<(), SessionsError> {
        let stop = Message::Stop {
            session: session.id.clone(),
        };
        self.bounded(control::send(&self.conn, &session.edge_id, &stop))
            .await?;
        let deadline = tokio::time::Instant::now() + STOP_WAIT;
        while tokio::time::Instant::now() < deadline {
            let mut cmd = redis::cmd("HEXISTS");
            cmd.arg(list_key(&session.edge_id)).arg(&session.id);
            let mut conn = self.conn.clone();
            if !self.bounded(cmd.query_async::<bool>(&mut conn)).await? {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }

    /// `call` within [`CALL_LIMIT`], a failure counted.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, SessionsError> {
        let failed = |why: String| {
            self.errors.with_label_values(&["sessions"]).inc();
            SessionsError(why)
        };
        match tokio::time::timeout(CALL_LIMIT, call).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => Err(failed(e.to_string())),
            Err(_) => Err(failed("no answer in time".into())),
        }
    }
}

/// Edge `edge_id`'s list.
fn list_key(edge_id: &str) -> String {
    format!("sluice:sessions:{edge_id}")
}

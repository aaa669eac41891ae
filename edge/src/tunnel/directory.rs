//! [`Directory`]: the agent sessions online, with what the operator's session list shows
//! (credential, agent release, address, endpoints, start time), so one can be found and
//! stopped, or every session of a deleted credential closed.

use super::authtoken::TokenId;
use super::handle::SessionHandle;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// A session as the directory lists it.
#[derive(Debug)]
pub struct SessionEntry {
    /// The live session.
    pub handle: Arc<SessionHandle>,
    /// The agent's release, as it said in its hello (cut to 64 characters).
    pub agent_version: String,
    /// The agent's address.
    pub remote: SocketAddr,
    /// When it was admitted.
    pub started: SystemTime,
    /// The URLs of its endpoints, in the agent's order.
    pub endpoints: Vec<String>,
}

/// The live sessions by id.
#[derive(Debug, Default)]
pub struct Directory {
    sessions: Mutex<HashMap<String, Arc<SessionEntry>>>,
    /// Signalled when a session is listed or leaves (one waiter: the cluster's session list).
    changes: tokio::sync::Notify,
}

impl Directory {
    /// Lists `entry` until the returned guard is dropped (when its session ends).
    pub fn register(self: &Arc<Self>, entry: SessionEntry) -> Listed {
        let id = entry.handle.id.clone();
        self.sessions.lock().insert(id.clone(), Arc::new(entry));
        self.changes.notify_one();
        Listed {
            directory: self.clone(),
            id,
        }
    }

    /// Waits until a session is listed or leaves. A change while nobody waits is kept for the
    /// next wait, so a waiter that was busy misses none.
    pub async fn changed(&self) {
        self.changes.notified().await;
    }

    /// Every session, oldest first.
    pub fn all(&self) -> Vec<Arc<SessionEntry>> {
        let mut all: Vec<_> = self.sessions.lock().values().cloned().collect();
        all.sort_by(|a, b| (a.started, &a.handle.id).cmp(&(b.started, &b.handle.id)));
        all
    }

    /// The session `id`.
    pub fn get(&self, id: &str) -> Option<Arc<SessionEntry>> {
        self.sessions.lock().get(id).cloned()
    }

    /// The sessions of credential `token`.
    pub fn of(&self, token: TokenId) -> Vec<Arc<SessionEntry>> {
        self.sessions
            .lock()
            .values()
            .filter(|e| e.handle.owner == token)
            .cloned()
            .collect()
    }

    /// Endpoints held by `token`'s live sessions other than those of agent run `run_id` (which
    /// a reconnecting run replaces).
    pub fn endpoints_of(&self, token: TokenId, run_id: &str) -> usize {
        self.sessions
            .lock()
            .values()
            .filter(|e| e.handle.owner == token && e.handle.run_id != run_id)
            .filter(|e| e.handle.is_alive())
            .map(|e| e.endpoints.len())
            .sum()
    }
}

/// A session's entry in the [`Directory`], removed when dropped.
#[derive(Debug)]
pub struct Listed {
    directory: Arc<Directory>,
    id: String,
}

impl Drop for Listed {
    fn drop(&mut self) {
        self.directory.sessions.lock().remove(&self.id);
        self.directory.changes.notify_one();
    }
}

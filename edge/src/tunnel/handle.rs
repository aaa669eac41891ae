//! [`SessionHandle`]: one live agent session as the rest of the edge holds it (the routes it
//! serves, the connector that opens streams on it).

use super::admission::SessionSlot;
use super::authtoken::TokenId;
use super::liveness::Liveness;
use super::stream::{AgentStream, StreamPool};
use prometheus::IntGauge;
use sluice_proto::link::Link;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Why no stream to the agent could be had.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The session ended: nothing reached the agent, so the exchange may go elsewhere.
    #[error("the agent's session ended: {0}")]
    Gone(String),
    /// The agent granted no stream in time (it is at its concurrent-stream limit).
    #[error("no stream granted in time")]
    Busy,
}

/// A live agent session, shared by every route it holds.
#[derive(Debug)]
pub struct SessionHandle {
    /// Edge-assigned id (`ses_…`).
    pub id: String,
    /// The authtoken the agent presented.
    pub owner: TokenId,
    /// The agent run this session belongs to (the same across the run's reconnects).
    pub run_id: String,
    /// The agent's link (QUIC, or HTTP/2 over TLS over TCP).
    pub conn: Link,
    /// Streams kept open between requests.
    pub streams: StreamPool,
    /// The open-streams gauge, raised while a stream to this agent lives.
    pub streams_open: IntGauge,
    /// Requests waiting on the agent, for the session's liveness watch.
    pub liveness: Arc<Liveness>,
    /// The agent said it is stopping: pools pick it for no new request.
    leaving: AtomicBool,
    /// This session's place in its token's session count, freed when the session ends or is
    /// replaced.
    slot: Mutex<Option<SessionSlot>>,
}

impl SessionHandle {
    /// A session of agent run `run_id` on `conn`, not yet counted against its token's limit; its streams are
    /// counted in `streams_open`.
    pub fn new(
        id: String,
        owner: TokenId,
        run_id: String,
        conn: Link,
        streams_open: IntGauge,
    ) -> Self {
        Self {
            id,
            owner,
            run_id,
            conn,
            streams: StreamPool::default(),
            streams_open,
            liveness: Arc::default(),
            leaving: AtomicBool::new(false),
            slot: Mutex::new(None),
        }
    }

    /// Marks the session as leaving (the agent is stopping).
    pub fn leave(&self) {
        self.leaving.store(true, Ordering::Relaxed);
    }

    /// Whether the agent said it is stopping.
    pub fn is_leaving(&self) -> bool {
        self.leaving.load(Ordering::Relaxed)
    }

    /// Keeps `slot` (this session's place in its token's count) until the session ends.
    pub fn hold_slot(&self, slot: SessionSlot) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
    }

    /// Frees this session's place in its token's session count.
    pub fn release_slot(&self) {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether the link is still up.
    pub fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }

    /// A stream for a new exchange: an idle one from the pool, else a new one if the agent
    /// grants it within `wait`.
    pub async fn stream(&self, wait: Duration) -> Result<AgentStream, OpenError> {
        if !self.is_alive() {
            return Err(OpenError::Gone("closed".to_string()));
        }
        if let Some(stream) = self.streams.take() {
            return Ok(stream);
        }
        match tokio::time::timeout(wait, self.conn.open_bi()).await {
            Err(_) => Err(OpenError::Busy),
            Ok(Err(e)) => Err(OpenError::Gone(e.to_string())),
            Ok(Ok((send, recv))) => Ok(AgentStream::new(send, recv, &self.streams_open)),
        }
    }
}

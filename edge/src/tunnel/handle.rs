//! [`SessionHandle`]: one live agent session as the rest of the edge holds it (the routes it
//! serves, the connector that opens streams on it).

use super::admission::SessionSlot;
use super::authtoken::TokenId;
use super::stream::StreamLink;
use prometheus::IntGauge;
use sluice_proto::link::Link;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A live agent session, shared by every route it holds.
#[derive(Debug)]
pub struct SessionHandle {
    /// Edge-assigned id (`ses_…`).
    pub id: String,
    /// The authtoken the agent presented.
    pub owner: TokenId,
    /// The agent run this session belongs to (the same across the run's reconnects).
    pub run_id: String,
    /// The agent's link with the streams kept open on it.
    pub link: Arc<StreamLink>,
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
            link: Arc::new(StreamLink::new(conn, streams_open)),
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
        self.link.is_alive()
    }
}

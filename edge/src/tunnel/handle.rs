//! [`SessionHandle`]: one live agent session as the rest of the edge holds it (the routes it
//! serves, the connector that opens streams on it).

use super::admission::SessionSlot;
use super::authtoken::TokenId;
use std::sync::Mutex;

/// A live agent session, shared by every route it holds.
#[derive(Debug)]
pub struct SessionHandle {
    /// Edge-assigned id (`ses_…`).
    pub id: String,
    /// The authtoken the agent presented.
    pub owner: TokenId,
    /// The agent's QUIC connection.
    pub conn: quinn::Connection,
    /// This session's place in its token's session count, freed when the session ends or is
    /// replaced.
    slot: Mutex<Option<SessionSlot>>,
}

impl SessionHandle {
    /// A session on `conn`, not yet counted against its token's limit.
    pub fn new(id: String, owner: TokenId, conn: quinn::Connection) -> Self {
        Self {
            id,
            owner,
            conn,
            slot: Mutex::new(None),
        }
    }

    /// Keeps `slot` (this session's place in its token's count) until the session ends.
    pub fn hold_slot(&self, slot: SessionSlot) {
        *self.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
    }

    /// Frees this session's place in its token's session count.
    pub fn release_slot(&self) {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether the QUIC connection is still up.
    pub fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

//! The TCP link's shared state: how it ended, what arrived, the round trip; read by both halves
//! of every stream and by the link's background tasks.

use crate::link::error::{Closed, StreamError};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use tokio::sync::watch;

/// The link's state both halves of every stream and the background tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(super) closed: watch::Sender<Option<Closed>>,
    pub(super) arrivals: AtomicU64,
    pub(super) rtt_micros: AtomicU64,
    pub(super) remote: SocketAddr,
}

impl Shared {
    pub(super) fn new(remote: SocketAddr) -> Arc<Self> {
        Arc::new(Self {
            closed: watch::Sender::new(None),
            arrivals: AtomicU64::new(0),
            rtt_micros: AtomicU64::new(0),
            remote,
        })
    }

    /// Records how the link ended; the first reason stays. Whether this call ended it.
    pub(super) fn end(&self, reason: Closed) -> bool {
        self.closed.send_if_modified(|now| {
            if now.is_some() {
                return false;
            }
            *now = Some(reason);
            true
        })
    }

    pub(super) fn reason(&self) -> Option<Closed> {
        self.closed.borrow().clone()
    }

    pub(super) async fn ended(&self) -> Closed {
        let mut rx = self.closed.subscribe();
        let reason = match rx.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone(),
            Err(_) => None,
        };
        reason.unwrap_or(Closed::Local)
    }

    /// A stream error for a failure that is the link's: its end reason when known.
    pub(crate) fn stream_error(&self, why: &str) -> StreamError {
        StreamError::Connection(
            self.reason()
                .unwrap_or_else(|| Closed::Lost(why.to_string())),
        )
    }
}

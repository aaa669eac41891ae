//! The sink side of a destination's bounded queue: receiving events (in batches), noticing
//! shutdown, and the destination's counters.

use prometheus::{IntCounter, IntGauge};
use tokio::sync::{mpsc, watch};

/// One destination's counters (children of the `destination`-labelled metric families).
#[derive(Clone)]
pub struct Counters {
    /// Events in the queue.
    pub queued: IntGauge,
    /// Events delivered.
    pub exported: IntCounter,
    /// Events dropped (queue full, or undeliverable at shutdown).
    pub dropped: IntCounter,
    /// Failed delivery attempts.
    pub errors: IntCounter,
}

/// What a sink task reads from.
pub struct Inbox {
    rx: mpsc::Receiver<String>,
    shutdown: watch::Receiver<bool>,
    /// The destination's counters.
    pub counters: Counters,
}

impl Inbox {
    /// An inbox over `rx` that ends its waits when `shutdown` turns true.
    pub fn new(
        rx: mpsc::Receiver<String>,
        shutdown: watch::Receiver<bool>,
        counters: Counters,
    ) -> Self {
        Self {
            rx,
            shutdown,
            counters,
        }
    }

    /// Whether shutdown was asked for.
    pub fn shutting_down(&self) -> bool {
        *self.shutdown.borrow()
    }

    /// Waits for the next event; `None` once shutdown is asked and the queue is empty.
    pub async fn next(&mut self) -> Option<String> {
        loop {
            if self.shutting_down() {
                return self.try_next();
            }
            tokio::select! {
                line = self.rx.recv() => return line.inspect(|_| self.counters.queued.dec()),
                changed = self.shutdown.changed() => {
                    if changed.is_err() {
                        // The exporter is gone: drain what is left, then stop.
                        return self.try_next();
                    }
                }
            }
        }
    }

    /// The next event if one is queued right now.
    pub fn try_next(&mut self) -> Option<String> {
        let line = self.rx.try_recv().ok()?;
        self.counters.queued.dec();
        Some(line)
    }

    /// Waits until shutdown is asked (for backoff sleeps that should end early).
    pub async fn until_shutdown(&mut self) {
        while !self.shutting_down() {
            if self.shutdown.changed().await.is_err() {
                return;
            }
        }
    }
}

//! Log export: every completed request becomes an `http_request_complete.v0` event
//! ([`event`]), which each configured destination may filter ([`filter`]) and narrow
//! ([`fields`]) before queueing it for its sink (a JSON-lines file or stdout, or batched HTTP
//! POSTs). Emitting never waits: a full queue drops the event and counts it. See docs/events.md.

pub mod config;
pub mod event;
pub mod fields;
pub mod file_sink;
pub mod filter;
pub mod http_sink;
mod queue;

use crate::metrics::EdgeMetrics;
use crate::record::{ConnectionRecord, RequestRecord};
use config::{EventDestination, Sink};
use filter::EventFilter;
use queue::{Counters, Inbox};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// A destination as the request path sees it: its choices and its queue.
struct Destination {
    filter: Option<EventFilter>,
    fields: Vec<String>,
    queue: mpsc::Sender<String>,
    counters: Counters,
}

/// The edge's event exporter: the destinations and their sink tasks.
pub struct EventExport {
    destinations: Vec<Destination>,
    shutdown: watch::Sender<bool>,
    tasks: parking_lot::Mutex<Vec<JoinHandle<()>>>,
}

impl EventExport {
    /// Starts one sink task per destination. Filters were checked when the config was read;
    /// one that still fails to compile here is reported the same way.
    pub fn start(
        destinations: &[EventDestination],
        metrics: &EdgeMetrics,
    ) -> Result<Self, config::EventConfigError> {
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = Vec::new();
        let mut live = Vec::new();
        for (index, d) in destinations.iter().enumerate() {
            let filter = d
                .filter
                .as_deref()
                .map(EventFilter::compile)
                .transpose()
                .map_err(|e| {
                    config::EventConfigError::at(index, config::DestinationError::Filter(e))
                })?;
            let name = d.name.as_str();
            let counters = Counters {
                queued: metrics.events_queued.with_label_values(&[name]),
                exported: metrics.events_exported.with_label_values(&[name]),
                dropped: metrics.events_dropped.with_label_values(&[name]),
                errors: metrics.events_export_errors.with_label_values(&[name]),
            };
            let (tx, rx) = mpsc::channel(d.queue_size);
            let inbox = Inbox::new(rx, shutdown_rx.clone(), counters.clone());
            tasks.push(match d.sink.clone() {
                Sink::File(sink) => tokio::spawn(sink.run(inbox)),
                Sink::Http(sink) => tokio::spawn(sink.run(inbox)),
            });
            live.push(Destination {
                filter,
                fields: d.fields.clone(),
                queue: tx,
                counters,
            });
        }
        Ok(Self {
            destinations: live,
            shutdown,
            tasks: parking_lot::Mutex::new(tasks),
        })
    }

    /// Builds the request's event and offers it to every destination. Never waits.
    pub fn emit(&self, req: &RequestRecord<'_>) {
        if self.destinations.is_empty() {
            return;
        }
        self.offer(
            event::HTTP_REQUEST_COMPLETE,
            &Value::Null,
            event::object(req),
        );
    }

    /// Builds a finished TCP connection's event and offers it to every destination. Never
    /// waits.
    pub fn emit_connection(&self, conn: &ConnectionRecord<'_>) {
        if self.destinations.is_empty() {
            return;
        }
        self.offer(
            event::TCP_CONNECTION_CLOSED,
            &Value::Null,
            event::connection_object(conn),
        );
    }

    /// Offers an audit event (an admin API change, `credential_created.v0`, …) to every
    /// destination: `principal` says who made the change, `object` what it is now. Never
    /// waits.
    pub fn emit_audit(&self, event_type: &str, principal: Value, object: Value) {
        if self.destinations.is_empty() {
            return;
        }
        self.offer(event_type, &principal, object);
    }

    /// Offers an event's object to every destination whose filter accepts it, narrowed to
    /// its fields.
    fn offer(&self, event_type: &str, principal: &Value, object: Value) {
        let cel_object = self
            .destinations
            .iter()
            .any(|d| d.filter.is_some())
            .then(|| filter::to_cel(&object));
        let id = event::new_event_id();
        let now = SystemTime::now();
        for d in &self.destinations {
            if let (Some(f), Some(ev)) = (&d.filter, &cel_object) {
                if !f.accepts(ev) {
                    continue;
                }
            }
            let object = if d.fields.is_empty() {
                object.clone()
            } else {
                fields::select(&object, &d.fields)
            };
            let line = event::envelope(event_type, &id, now, principal, object).to_string();
            match d.queue.try_send(line) {
                Ok(()) => d.counters.queued.inc(),
                Err(_) => d.counters.dropped.inc(),
            }
        }
    }

    /// Asks every sink to write out what is queued and waits for them, at most `limit`.
    pub async fn shutdown(&self, limit: Duration) {
        let _ = self.shutdown.send(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        let wait_all = async {
            for t in tasks {
                let _ = t.await;
            }
        };
        let _ = tokio::time::timeout(limit, wait_all).await;
    }
}

//! [`AgentLinks`]: per-agent link statistics (RTT; lost packets on QUIC links), read from the
//! links at scrape time, so an idle edge does no work for them.

use parking_lot::Mutex;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{GaugeVec, IntCounterVec, Opts};
use sluice_proto::link::Link;
use std::collections::BTreeMap;
use std::sync::Arc;

/// At most this many sessions (by id order) get series; the rest are left out of the scrape so a
/// flood of agents cannot grow it without bound (summing them would not make a valid counter).
pub const SESSION_SERIES_CAP: usize = 100;

/// The live agent connections, by session id, and the collector reporting on them.
#[derive(Clone, Default)]
pub struct AgentLinks {
    conns: Arc<Mutex<BTreeMap<String, Link>>>,
}

impl AgentLinks {
    /// Starts reporting on `conn` as `session`.
    pub fn add(&self, session: &str, conn: Link) {
        self.conns.lock().insert(session.to_string(), conn);
    }

    /// Stops reporting on `session`.
    pub fn remove(&self, session: &str) {
        self.conns.lock().remove(session);
    }

    /// Metric vectors for one scrape; built fresh so ended sessions leave no stale series.
    fn vectors() -> Result<(GaugeVec, IntCounterVec), prometheus::Error> {
        let rtt = GaugeVec::new(
            Opts::new(
                "agent_quic_rtt_seconds",
                "Smoothed QUIC round-trip time to each connected agent.",
            )
            .namespace(super::register::NAMESPACE),
            &["session"],
        )?;
        let lost = IntCounterVec::new(
            Opts::new(
                "agent_quic_lost_packets_total",
                "QUIC packets lost on each connected agent's connection since it was established.",
            )
            .namespace(super::register::NAMESPACE),
            &["session"],
        )?;
        Ok((rtt, lost))
    }
}

impl Collector for AgentLinks {
    fn desc(&self) -> Vec<&Desc> {
        // The descriptors must outlive `self`'s borrow; they are built once per process.
        static DESCS: std::sync::LazyLock<Vec<Desc>> = std::sync::LazyLock::new(|| {
            AgentLinks::vectors()
                .map(|(rtt, lost)| rtt.desc().into_iter().chain(lost.desc()).cloned().collect())
                .unwrap_or_default()
        });
        DESCS.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let Ok((rtt, lost)) = Self::vectors() else {
            return Vec::new();
        };
        for (session, conn) in self.conns.lock().iter().take(SESSION_SERIES_CAP) {
            rtt.with_label_values(&[session.as_str()])
                .set(conn.rtt().as_secs_f64());
            if let Some(lost_packets) = conn.lost_packets() {
                lost.with_label_values(&[session.as_str()])
                    .inc_by(lost_packets);
            }
        }
        rtt.collect().into_iter().chain(lost.collect()).collect()
    }
}

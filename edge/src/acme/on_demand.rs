//! On-demand issuance: a TLS handshake for a name no certificate covers asks for one, but only
//! for names the operator allows and within a per-hour budget, so nobody can make the edge
//! order certificates for arbitrary names.

use super::config::OnDemandConfig;
use crate::hostname::Hostname;
use crate::metrics::TlsMetrics;
use parking_lot::Mutex;
use std::collections::{HashSet, VecDeque};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info};

const WINDOW: Duration = Duration::from_secs(3600);

/// The gate between handshakes and the ACME client.
pub struct OnDemand {
    config: OnDemandConfig,
    state: Mutex<State>,
    orders: mpsc::UnboundedSender<String>,
    metrics: TlsMetrics,
}

struct State {
    /// Names already handed to the client (or managed from the start): asked for once.
    requested: HashSet<String>,
    /// When recent on-demand orders were let through, oldest first.
    recent: VecDeque<Instant>,
}

impl OnDemand {
    /// A gate sending allowed names to `orders`; `managed` are names the client already owns.
    pub fn new(
        config: OnDemandConfig,
        managed: impl IntoIterator<Item = String>,
        orders: mpsc::UnboundedSender<String>,
        metrics: TlsMetrics,
    ) -> Self {
        Self {
            config,
            state: Mutex::new(State {
                requested: managed.into_iter().collect(),
                recent: VecDeque::new(),
            }),
            orders,
            metrics,
        }
    }

    /// Whether the operator allows a certificate for `host`.
    pub fn allows(&self, host: &Hostname) -> bool {
        !host.is_wildcard() && self.config.allow.iter().any(|p| p.covers(host))
    }

    /// Called from the handshake with an SNI name nothing covers. Never blocks on the network.
    pub fn request(&self, name: &str) {
        let Ok(host) = Hostname::parse(name) else {
            return;
        };
        let mut st = self.state.lock();
        if st.requested.contains(host.as_str()) {
            return;
        }
        if !self.allows(&host) {
            debug!(name, "no on-demand certificate: name not allowed");
            self.metrics
                .acme_on_demand_refused
                .with_label_values(&["not_allowed"])
                .inc();
            return;
        }
        let now = Instant::now();
        while st.recent.front().is_some_and(|t| now - *t > WINDOW) {
            st.recent.pop_front();
        }
        if st.recent.len() >= self.config.max_per_hour as usize {
            info!(
                name,
                limit = self.config.max_per_hour,
                "no on-demand certificate: hourly limit reached"
            );
            self.metrics
                .acme_on_demand_refused
                .with_label_values(&["rate_limited"])
                .inc();
            return;
        }
        st.recent.push_back(now);
        st.requested.insert(host.to_string());
        info!(name, "ordering an on-demand certificate");
        let _ = self.orders.send(host.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_names_within_the_budget() {
        let metrics = TlsMetrics::register(&prometheus::Registry::new()).expect("metrics");
        let (tx, mut rx) = mpsc::unbounded_channel();
        let od = OnDemand::new(
            OnDemandConfig {
                allow: vec![Hostname::parse("*.example.com").expect("p")],
                max_per_hour: 2,
            },
            ["managed.example.com".to_string()],
            tx,
            metrics.clone(),
        );
        for name in [
            "a.example.com",
            "a.example.com",
            "evil.test",
            "managed.example.com",
            "b.example.com",
            "c.example.com",
            "not a name",
        ] {
            od.request(name);
        }
        assert_eq!(rx.try_recv().ok().as_deref(), Some("a.example.com"));
        assert_eq!(rx.try_recv().ok().as_deref(), Some("b.example.com"));
        assert!(rx.try_recv().is_err());
        let refused = |why: &str| {
            metrics
                .acme_on_demand_refused
                .with_label_values(&[why])
                .get()
        };
        assert_eq!(refused("not_allowed"), 1);
        assert_eq!(refused("rate_limited"), 1);
    }
}

//! [`EdgeMetrics`]: the metric handles the edge updates, and counting one finished request.

use super::labels;
use super::quic::AgentLinks;
use super::register::{counter, counter_vec, gauge, gauge_vec, opts};
use crate::record::{ConnectionRecord, RequestRecord};
use prometheus::process_collector::ProcessCollector;
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Registry,
};

/// Request duration buckets, in seconds: tunnelled requests take from about a millisecond to
/// the upstream timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// Metric handles the edge updates.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// The registry everything is registered in.
    pub registry: Registry,
    /// HTTP requests completed, by endpoint label and status class.
    pub http_requests: IntCounterVec,
    /// Request duration from arrival to the end of logging, by endpoint label.
    pub http_duration: HistogramVec,
    /// Request body bytes read from clients, by endpoint label.
    pub http_request_bytes: IntCounterVec,
    /// Response body bytes sent to clients, by endpoint label.
    pub http_response_bytes: IntCounterVec,
    /// Responses that carried a `sluice-error-code`, by code.
    pub http_error_codes: IntCounterVec,
    /// Requests currently in flight at the edge.
    pub requests_in_flight: IntGauge,
    /// Requests forward-internal handed to an internal endpoint, by endpoint label and the
    /// target's URL.
    pub http_forwards: IntCounterVec,
    /// Traffic-policy action outcomes, by action type and decision.
    pub policy_outcomes: IntCounterVec,
    /// Traffic-policy problems at run time, by endpoint.
    pub policy_errors: IntCounterVec,
    /// TCP endpoint connections finished, by outcome.
    pub tcp_connections: IntCounterVec,
    /// Bytes TCP endpoint connections moved, by direction (`in` from clients, `out` to them).
    pub tcp_bytes: IntCounterVec,
    /// TCP endpoint connections open, by endpoint URL.
    pub tcp_connections_open: IntGaugeVec,
    /// Agent sessions connected.
    pub agent_sessions: IntGauge,
    /// Agent sessions connected, by the transport of their link (`quic`, `tcp`).
    pub agent_sessions_by_transport: IntGaugeVec,
    /// Calls to the cluster store that failed, by operation.
    pub store_errors: IntCounterVec,
    /// Agent connections that failed their transport's handshake or were rejected, by reason.
    pub agent_connect_failures: IntCounterVec,
    /// QUIC streams to agents currently open.
    pub quic_streams_open: IntGauge,
    /// Streams on links between edges currently open (both directions: requests this edge
    /// forwards, and requests it relays for another edge).
    pub peer_streams_open: IntGauge,
    /// Requests another edge forwarded here that this edge relayed to its agent.
    pub relayed_requests: IntCounter,
    /// Live agent connections, for per-agent QUIC statistics at scrape time.
    pub agent_links: AgentLinks,
    /// Events waiting in each export destination's queue.
    pub events_queued: IntGaugeVec,
    /// Events dropped because a destination's queue was full, by destination.
    pub events_dropped: IntCounterVec,
    /// Events delivered, by destination.
    pub events_exported: IntCounterVec,
    /// Failed delivery attempts (each is retried), by destination.
    pub events_export_errors: IntCounterVec,
}

impl EdgeMetrics {
    /// Creates and registers the metrics, including the process collector on Linux.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let r = &registry;
        let endpoint = &["endpoint"];
        let destination = &["destination"];
        let http_duration = HistogramVec::new(
            HistogramOpts::from(opts(
                "http_request_duration_seconds",
                "Time from a request's arrival at the edge to its completion.",
            ))
            .buckets(DURATION_BUCKETS.to_vec()),
            endpoint,
        )?;
        registry.register(Box::new(http_duration.clone()))?;
        let events_queued = IntGaugeVec::new(
            opts(
                "events_queue_depth",
                "Events waiting in an export destination's queue.",
            ),
            destination,
        )?;
        registry.register(Box::new(events_queued.clone()))?;
        let tcp_connections_open = IntGaugeVec::new(
            opts(
                "tcp_connections_open",
                "Connections to TCP endpoints open, by endpoint URL.",
            ),
            endpoint,
        )?;
        registry.register(Box::new(tcp_connections_open.clone()))?;
        let agent_links = AgentLinks::default();
        registry.register(Box::new(agent_links.clone()))?;
        registry.register(Box::new(ProcessCollector::for_self()))?;
        Ok(Self {
            http_requests: counter_vec(
                r,
                "http_requests_total",
                "HTTP requests completed by the edge.",
                &["endpoint", "status_class"],
            )?,
            http_duration,
            http_request_bytes: counter_vec(
                r,
                "http_request_body_bytes_total",
                "Request body bytes read from clients.",
                endpoint,
            )?,
            http_response_bytes: counter_vec(
                r,
                "http_response_body_bytes_total",
                "Response body bytes sent to clients.",
                endpoint,
            )?,
            http_error_codes: counter_vec(
                r,
                "http_error_responses_total",
                "Responses carrying a sluice-error-code, by code.",
                &["error_code"],
            )?,
            requests_in_flight: gauge(r, "http_requests_in_flight", "HTTP requests in flight.")?,
            http_forwards: counter_vec(
                r,
                "http_forwards_total",
                "Requests forward-internal handed to an internal endpoint, by the public endpoint's label and the target's URL.",
                &["endpoint", "target"],
            )?,
            policy_outcomes: counter_vec(
                r,
                "policy_action_outcomes_total",
                "Traffic-policy actions run, by action type and decision.",
                &["action", "decision"],
            )?,
            policy_errors: counter_vec(
                r,
                "policy_errors_total",
                "Traffic-policy problems at run time: an expression that failed to evaluate (its rule did not match) or a jwt-validation key fetch that failed.",
                endpoint,
            )?,
            tcp_connections: counter_vec(
                r,
                "tcp_connections_total",
                "Connections to TCP endpoints finished, by how they ended.",
                &["outcome"],
            )?,
            tcp_bytes: counter_vec(
                r,
                "tcp_bytes_total",
                "Bytes moved by connections to TCP endpoints: in from clients, out to them.",
                &["direction"],
            )?,
            tcp_connections_open,
            agent_sessions: gauge(r, "agent_sessions", "Agent sessions connected.")?,
            agent_sessions_by_transport: gauge_vec(
                r,
                "agent_transport_sessions",
                "Agent sessions connected, by the transport of their link (quic or tcp).",
                &["transport"],
            )?,
            store_errors: counter_vec(
                r,
                "store_errors_total",
                "Calls to the cluster store that failed (claim, renew, release, mirror, subscribe, rate_limit, revoke, code, revocations, admin).",
                &["op"],
            )?,
            agent_connect_failures: counter_vec(
                r,
                "agent_connect_failures_total",
                "Agent connections that failed their transport's handshake (quic_handshake, tcp_handshake) or were rejected.",
                &["reason"],
            )?,
            quic_streams_open: gauge(r, "quic_streams_open", "QUIC streams to agents open.")?,
            peer_streams_open: gauge(
                r,
                "peer_streams_open",
                "Streams open on links between the edges of a cluster.",
            )?,
            relayed_requests: counter(
                r,
                "relayed_requests_total",
                "Requests another edge of the cluster forwarded here and this edge relayed to its agent.",
            )?,
            agent_links,
            events_queued,
            events_dropped: counter_vec(
                r,
                "events_dropped_total",
                "Events dropped because an export destination's queue was full.",
                destination,
            )?,
            events_exported: counter_vec(
                r,
                "events_exported_total",
                "Events delivered to an export destination.",
                destination,
            )?,
            events_export_errors: counter_vec(
                r,
                "events_export_errors_total",
                "Failed attempts to deliver events to a destination (each is retried).",
                destination,
            )?,
            registry,
        })
    }

    /// Counts one completed request.
    pub fn record(&self, req: &RequestRecord<'_>) {
        let endpoint = req.endpoint_label;
        self.http_requests
            .with_label_values(&[endpoint, labels::status_class(req.status)])
            .inc();
        self.http_duration
            .with_label_values(&[endpoint])
            .observe(req.duration.as_secs_f64());
        self.http_request_bytes
            .with_label_values(&[endpoint])
            .inc_by(req.request_body_bytes as u64);
        self.http_response_bytes
            .with_label_values(&[endpoint])
            .inc_by(req.response_body_bytes as u64);
        if let Some(code) = &req.error_code {
            self.http_error_codes
                .with_label_values(&[labels::error_code(code)])
                .inc();
        }
        let policy_errors: usize = req.policies.iter().map(|p| p.errors().len()).sum();
        if policy_errors > 0 {
            self.policy_errors
                .with_label_values(&[endpoint])
                .inc_by(policy_errors as u64);
        }
        for outcome in req.policies.iter().flat_map(|p| p.outcomes()) {
            self.policy_outcomes
                .with_label_values(&[outcome.action, labels::decision(outcome.decision)])
                .inc();
        }
        for target in req.forwarded_to {
            self.http_forwards
                .with_label_values(&[endpoint, &target.url])
                .inc();
        }
    }

    /// Counts one finished TCP endpoint connection.
    pub fn record_connection(&self, conn: &ConnectionRecord<'_>) {
        self.tcp_connections
            .with_label_values(&[conn.outcome])
            .inc();
        self.tcp_bytes
            .with_label_values(&["in"])
            .inc_by(conn.bytes_in);
        self.tcp_bytes
            .with_label_values(&["out"])
            .inc_by(conn.bytes_out);
        if let Some(policy) = conn.policy {
            for outcome in policy.outcomes() {
                self.policy_outcomes
                    .with_label_values(&[outcome.action, labels::decision(outcome.decision)])
                    .inc();
            }
        }
    }
}

//! Prometheus metrics: one registry per edge, served on the metrics listener.

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};

/// Metric handles the edge updates.
#[derive(Clone)]
pub struct EdgeMetrics {
    /// The registry everything is registered in.
    pub registry: Registry,
    /// HTTP requests completed, by status class (`2xx`…) and error code (empty when none).
    pub http_requests: IntCounterVec,
    /// Agent sessions currently connected.
    pub agent_sessions: IntGauge,
    /// Agent connections that failed the QUIC or control handshake.
    pub agent_connect_failures: IntCounter,
    /// Requests currently in flight at the edge.
    pub requests_in_flight: IntGauge,
}

impl EdgeMetrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("sluice_edge".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests completed by the edge.",
            ),
            &["status_class", "error_code"],
        )?;
        let agent_sessions = IntGauge::new("agent_sessions", "Agent sessions connected.")?;
        let agent_connect_failures = IntCounter::new(
            "agent_connect_failures_total",
            "Agent connections that failed the QUIC or control handshake.",
        )?;
        let requests_in_flight =
            IntGauge::new("http_requests_in_flight", "HTTP requests in flight.")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(agent_sessions.clone()))?;
        registry.register(Box::new(agent_connect_failures.clone()))?;
        registry.register(Box::new(requests_in_flight.clone()))?;
        Ok(Self {
            registry,
            http_requests,
            agent_sessions,
            agent_connect_failures,
            requests_in_flight,
        })
    }
}

/// Serves the registry in the Prometheus text format at `/metrics`.
pub struct MetricsApp {
    registry: Registry,
}

impl MetricsApp {
    /// An app over `metrics`' registry.
    pub fn new(metrics: &EdgeMetrics) -> Self {
        Self {
            registry: metrics.registry.clone(),
        }
    }
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        if session.req_header().uri.path() != "/metrics" {
            return text(
                404,
                "not found; metrics are at /metrics\n".into(),
                "text/plain",
            );
        }
        let encoder = TextEncoder::new();
        let mut buf = Vec::new();
        match encoder.encode(&self.registry.gather(), &mut buf) {
            Ok(()) => text(200, buf, encoder.format_type()),
            Err(e) => text(
                500,
                format!("encoding metrics: {e}\n").into_bytes(),
                "text/plain",
            ),
        }
    }
}

fn text(status: u16, body: Vec<u8>, content_type: &str) -> http::Response<Vec<u8>> {
    let mut resp = http::Response::new(body);
    *resp.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::OK);
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

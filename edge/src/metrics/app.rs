//! [`MetricsApp`]: the metrics listener: the edge's registry in the Prometheus text format at
//! `/metrics`, and the probes an orchestrator asks (`/healthz`, `/readyz`).

use crate::store::Store;
use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, Registry, TextEncoder};
use tokio::sync::watch;

/// Serves one registry at `/metrics` and the health probes; every other path is a 404.
pub struct MetricsApp {
    registry: Registry,
    /// Turns true when the edge starts shutting down.
    draining: watch::Receiver<bool>,
    /// The state store, which must answer for the edge to be ready.
    store: Store,
}

impl MetricsApp {
    /// An app over `registry`; `/readyz` says not ready once `draining` turns true, or while
    /// `store` does not answer.
    pub fn new(registry: Registry, draining: watch::Receiver<bool>, store: Store) -> Self {
        Self {
            registry,
            draining,
            store,
        }
    }
}

#[async_trait]
impl ServeHttp for MetricsApp {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        match session.req_header().uri.path() {
            "/metrics" => {}
            // The process answers: it is alive.
            "/healthz" => return text(200, b"ok\n".to_vec(), "text/plain"),
            // Every listener was bound before this one served (the edge binds them all before
            // it starts any service), so ready means not shutting down (a balancer stops
            // sending new clients while requests in flight finish) and the store answering.
            "/readyz" if *self.draining.borrow() => {
                return text(503, b"shutting down\n".to_vec(), "text/plain")
            }
            "/readyz" => {
                return match self.store.ping().await {
                    Ok(()) => text(200, b"ready\n".to_vec(), "text/plain"),
                    Err(e) => text(503, format!("{e}\n").into_bytes(), "text/plain"),
                }
            }
            _ => {
                return text(
                    404,
                    "not found; metrics are at /metrics, probes at /healthz and /readyz\n".into(),
                    "text/plain",
                )
            }
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

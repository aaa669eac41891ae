//! [`MetricsApp`]: serves the edge's registry in the Prometheus text format at `/metrics`.

use async_trait::async_trait;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use prometheus::{Encoder, Registry, TextEncoder};

/// Serves one registry at `/metrics`; every other path is a 404.
pub struct MetricsApp {
    registry: Registry,
}

impl MetricsApp {
    /// An app over `registry`.
    pub fn new(registry: Registry) -> Self {
        Self { registry }
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

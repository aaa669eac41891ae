//! An upstream that records every request it receives (method, target, headers, body), for
//! tests that must prove what reached the local app, e.g. a replay from the inspector.

use crate::upstream::{full, serve, Upstream};
use http::Response;
use http_body_util::BodyExt;
use std::sync::{Arc, Mutex};

/// One request as the app received it.
#[derive(Debug, Clone)]
pub struct Received {
    /// Method.
    pub method: String,
    /// Request target (`/path?query`).
    pub uri: String,
    /// Headers, names lowercase, in arrival order.
    pub headers: Vec<(String, String)>,
    /// The whole body, lossily decoded.
    pub body: String,
}

impl Received {
    /// The first value of header `name` (lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a recording app has received so far.
#[derive(Clone, Default)]
pub struct Recorded(Arc<Mutex<Vec<Received>>>);

impl Recorded {
    /// Every request so far, in arrival order.
    pub fn all(&self) -> Vec<Received> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// Starts an app that records each request and answers `200 application/json
/// {"received": N}` (N counting from 1).
pub async fn recording_app() -> anyhow::Result<(Upstream, Recorded)> {
    let recorded = Recorded::default();
    let log = recorded.clone();
    let upstream = serve(move |req| {
        let log = log.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = match body.collect().await {
                Ok(b) => String::from_utf8_lossy(&b.to_bytes()).into_owned(),
                Err(e) => format!("<body error: {e}>"),
            };
            let received = Received {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                headers: parts
                    .headers
                    .iter()
                    .map(|(n, v)| {
                        (
                            n.to_string(),
                            String::from_utf8_lossy(v.as_bytes()).into_owned(),
                        )
                    })
                    .collect(),
                body,
            };
            let n = {
                let mut all = log.0.lock().unwrap_or_else(|p| p.into_inner());
                all.push(received);
                all.len()
            };
            let mut resp = Response::new(full(serde_json::json!({ "received": n }).to_string()));
            resp.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static("application/json"),
            );
            resp
        }
    })
    .await?;
    Ok((upstream, recorded))
}

//! A client for the agent's request inspector API, with bounded waits.

use crate::eventually;
use anyhow::{bail, Context as _};
use serde_json::Value;
use std::time::Duration;

/// Talks to an inspector at `base` (`http://127.0.0.1:PORT`).
pub struct InspectorClient {
    /// `http://HOST:PORT`.
    pub base: String,
    http: reqwest::Client,
}

impl InspectorClient {
    /// A client for the inspector at `addr`.
    pub fn new(addr: std::net::SocketAddr) -> Self {
        Self::at(format!("http://{addr}"))
    }

    /// A client for the inspector at `base`.
    pub fn at(base: String) -> Self {
        Self {
            base,
            http: crate::client(),
        }
    }

    /// `GET path`, expecting 200 JSON.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self.http.get(format!("{}{path}", self.base)).send().await?;
        let status = resp.status();
        let text = resp.text().await?;
        if !status.is_success() {
            bail!("GET {path}: {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("GET {path}: {text}"))
    }

    /// The captured requests, newest first.
    pub async fn requests(&self) -> anyhow::Result<Vec<Value>> {
        let list = self.get("/api/requests/http?limit=1000").await?;
        Ok(list["requests"].as_array().cloned().unwrap_or_default())
    }

    /// Waits (up to 20 s) for a captured request with request target `uri` whose response
    /// body has been captured completely or cut, and returns it.
    pub async fn wait_for(&self, uri: &str) -> anyhow::Result<Value> {
        eventually(
            Duration::from_secs(20),
            &format!("inspector to capture {uri}"),
            || async {
                self.requests()
                    .await
                    .ok()?
                    .into_iter()
                    .find(|r| r["request"]["uri"] == uri && r["response"]["body"].is_object())
            },
        )
        .await
    }

    /// `POST /api/requests/http` with `body`: status and response text.
    pub async fn replay(&self, body: &Value) -> anyhow::Result<(u16, String)> {
        let resp = self
            .http
            .post(format!("{}/api/requests/http", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await?;
        Ok((resp.status().as_u16(), resp.text().await?))
    }
}

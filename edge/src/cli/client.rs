//! [`AdminClient`]: calls the admin API with the bearer token and turns its error bodies into
//! errors that say the API's `msg` and `error_code`.

use anyhow::{anyhow, bail, Context};
use reqwest::Method;
use sluice_edge::admin::model::ErrorBody;
use std::time::Duration;

/// How long one call may take, connection included.
const CALL_LIMIT: Duration = Duration::from_secs(30);

/// A client of one edge's admin API.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// A successful answer's body (empty for 204).
pub struct Answer {
    /// The JSON text as received.
    pub body: String,
}

impl AdminClient {
    /// A client for the API at `base` (`http://127.0.0.1:9190`) with `token`.
    pub fn new(base: &str, token: String) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(CALL_LIMIT)
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_string(),
            token,
        })
    }

    /// `method path` with `body` as JSON, when given. An error answer becomes an error naming
    /// the API's message and code.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(serde_json::to_vec(body)?);
        }
        let resp = req
            .send()
            .await
            .with_context(|| format!("cannot reach the admin API at {}", self.base))?;
        let status = resp.status();
        let body = resp
            .text()
            .await
            .with_context(|| format!("reading the answer from {url}"))?;
        if status.is_success() {
            return Ok(Answer { body });
        }
        match serde_json::from_str::<ErrorBody>(&body) {
            Ok(e) => bail!("{} ({}, HTTP {})", e.msg, e.error_code, e.status_code),
            Err(_) => Err(anyhow!(
                "HTTP {status} from {url}, not the admin API's answer: {}",
                body.chars().take(200).collect::<String>()
            )),
        }
    }
}

//! http-request's calls: sent with the guarded client, redirects followed one at a time (each
//! target checked against the rules), the body read up to its cap, all within the call's time.

use super::guarded::{describe, GuardedClient};
use super::rules::AddressRules;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, LOCATION};
use http::{Method, StatusCode};
use sluice_policy::{Answer, Call, CallError, CallFuture, HttpCaller, MAX_RESPONSE_BODY};
use std::time::Instant;
use url::Url;

/// The edge's client for policies' calls, shared by every endpoint.
pub struct PolicyCaller {
    http: GuardedClient,
}

impl PolicyCaller {
    /// A client under `rules`; it follows redirects itself, one hop at a time, so
    /// `max_redirects` is per call.
    pub fn new(rules: &AddressRules) -> Result<Self, reqwest::Error> {
        Ok(Self {
            http: GuardedClient::new(rules, reqwest::Client::builder(), 0)?,
        })
    }

    async fn send(&self, call: Call) -> Result<Answer, CallError> {
        let started = Instant::now();
        let Call {
            mut method,
            url,
            mut headers,
            mut body,
            max_redirects,
            timeout: _,
        } = call;
        let mut url = Url::parse(&url).map_err(|e| CallError::Failed(format!("`{url}`: {e}")))?;
        let mut redirects = 0;
        loop {
            self.http
                .check(&url)
                .map_err(|e| CallError::Refused(e.to_string()))?;
            let res = self
                .http
                .client()
                .request(method.clone(), url.clone())
                .headers(headers.clone())
                .body(body.clone())
                .send()
                .await
                .map_err(classify)?;
            let Some(next) = redirect_target(&res, &url) else {
                return read_answer(res, started).await;
            };
            if max_redirects == 0 {
                // Following nothing: the redirect itself is the answer.
                return read_answer(res, started).await;
            }
            if redirects == max_redirects {
                return Err(CallError::Loop(format!(
                    "more than {max_redirects} redirects (max_redirects)"
                )));
            }
            redirects += 1;
            let status = res.status();
            if status == StatusCode::SEE_OTHER
                || (matches!(status, StatusCode::MOVED_PERMANENTLY | StatusCode::FOUND)
                    && method == Method::POST)
            {
                // As browsers do: the next request is a GET without the body.
                method = Method::GET;
                body = Bytes::new();
                headers.remove(CONTENT_TYPE);
                headers.remove(CONTENT_LENGTH);
            }
            if next.host_str() != url.host_str() {
                // Credentials meant for one server do not follow a redirect to another.
                headers.remove(AUTHORIZATION);
                headers.remove(COOKIE);
            }
            url = next;
        }
    }
}

impl HttpCaller for PolicyCaller {
    fn call(&self, call: Call) -> CallFuture<'_> {
        Box::pin(async move {
            let timeout = call.timeout;
            tokio::time::timeout(timeout, self.send(call))
                .await
                .unwrap_or(Err(CallError::Timeout(timeout)))
        })
    }
}

/// Where a redirect response points, resolved against the URL it answered.
fn redirect_target(res: &reqwest::Response, url: &Url) -> Option<Url> {
    if !res.status().is_redirection() || res.status() == StatusCode::NOT_MODIFIED {
        return None;
    }
    let location = res.headers().get(LOCATION)?.to_str().ok()?;
    url.join(location)
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"))
}

/// The answer, its body read up to [`MAX_RESPONSE_BODY`].
async fn read_answer(mut res: reqwest::Response, started: Instant) -> Result<Answer, CallError> {
    let status = res.status();
    let headers = std::mem::take(res.headers_mut());
    let resolved_ip = res.remote_addr().map(|a| a.ip());
    let mut body = Vec::new();
    while let Some(chunk) = res.chunk().await.map_err(classify)? {
        if body.len() + chunk.len() > MAX_RESPONSE_BODY {
            return Err(CallError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Answer {
        status,
        headers,
        body: body.into(),
        resolved_ip,
        elapsed: started.elapsed(),
    })
}

/// A client error as the call's: the rules' refusal, or a failure naming its root cause.
fn classify(e: reqwest::Error) -> CallError {
    match describe(&e) {
        Err(refused) => CallError::Refused(refused),
        Ok(failed) => CallError::Failed(failed),
    }
}

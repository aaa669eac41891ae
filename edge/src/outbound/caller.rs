//! http-request's calls: sent with the guarded client, redirects followed one at a time (each
//! target checked against the rules), the body read up to its cap, all within the call's time.
//! A call to an internal endpoint goes to the edge itself with a ticket (`internal.rs`).

use super::guarded::{describe, GuardedClient};
use super::internal::{InternalCalls, TICKET_HEADER};
use super::rules::AddressRules;
use crate::tunnel::authtoken::TokenId;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, COOKIE, HOST, LOCATION};
use http::{HeaderMap, HeaderValue, Method, StatusCode};
use sluice_policy::{
    Answer, Call, CallError, CallFuture, HttpCaller, InternalEndpoints, InternalUrl,
    MAX_RESPONSE_BODY,
};
use std::sync::Arc;
use std::time::Instant;
use url::Url;

/// The edge's client for policies' calls, shared by every endpoint. Used as it is, it serves
/// the operator's policies for hosts no agent holds, which belong to no namespace; an
/// endpoint's engine gets [`PolicyCaller::for_owner`].
pub struct PolicyCaller {
    http: GuardedClient,
    /// For calls to the edge's own listener (internal endpoints): the address rules do not
    /// apply to the edge itself.
    own: reqwest::Client,
    calls: Arc<InternalCalls>,
}

/// Whose namespace a call may reach internal endpoints in.
struct Owner {
    token: TokenId,
    internal: Arc<dyn InternalEndpoints>,
}

/// [`PolicyCaller`] for one endpoint's engine: internal targets are looked up in its owner's
/// namespace.
struct OwnerCaller {
    caller: Arc<PolicyCaller>,
    owner: Owner,
}

impl PolicyCaller {
    /// A client under `rules`; it follows redirects itself, one hop at a time, so
    /// `max_redirects` is per call. Internal endpoints are called through `calls`.
    pub fn new(rules: &AddressRules, calls: Arc<InternalCalls>) -> Result<Self, reqwest::Error> {
        let own = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            http: GuardedClient::new(rules, reqwest::Client::builder(), 0)?,
            own,
            calls,
        })
    }

    /// The caller for an endpoint owned by `token`, whose internal endpoints `internal` sees.
    pub fn for_owner(
        self: &Arc<Self>,
        token: TokenId,
        internal: Arc<dyn InternalEndpoints>,
    ) -> Arc<dyn HttpCaller> {
        Arc::new(OwnerCaller {
            caller: self.clone(),
            owner: Owner { token, internal },
        })
    }

    /// Sends one hop: to the edge itself for an internal endpoint, else through the guarded
    /// client.
    async fn hop(
        &self,
        owner: Option<&Owner>,
        method: &Method,
        url: &Url,
        headers: &HeaderMap,
        body: &Bytes,
    ) -> Result<reqwest::Response, CallError> {
        let Some(target) = internal_target(url) else {
            self.http
                .check(url)
                .map_err(|e| CallError::Refused(e.to_string()))?;
            let req = self.http.client().request(method.clone(), url.clone());
            return send(req, headers, body).await;
        };
        let target = target?;
        let owner = owner.ok_or_else(|| {
            CallError::Failed(format!(
                "`{target}`: internal endpoints are reachable from an endpoint's own policy, \
                 not from an operator policy for a host no agent holds"
            ))
        })?;
        owner
            .internal
            .check(&target)
            .map_err(|e| CallError::Failed(e.to_string()))?;
        let ticket = self.calls.issue(owner.token, target);
        let mut own_url = url.clone();
        let (ip, port) = (self.calls.own_addr().ip(), self.calls.own_addr().port());
        let set = own_url
            .set_scheme("http")
            .and_then(|()| own_url.set_ip_host(ip))
            .and_then(|()| own_url.set_port(Some(port)));
        set.map_err(|()| CallError::Failed(format!("`{url}`: cannot be sent to the edge")))?;
        let mut headers = headers.clone();
        if let Some(host) = url.host_str().and_then(|h| HeaderValue::from_str(h).ok()) {
            headers.insert(HOST, host);
        }
        let id = HeaderValue::from_str(&ticket.id)
            .map_err(|_| CallError::Failed("ticket is not a header value".into()))?;
        headers.insert(TICKET_HEADER, id);
        let req = self.own.request(method.clone(), own_url);
        // The ticket lives until the edge has the request's head (or the call failed).
        let res = send(req, &headers, body).await;
        drop(ticket);
        res
    }

    async fn send(&self, call: Call, owner: Option<&Owner>) -> Result<Answer, CallError> {
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
            let res = self.hop(owner, &method, &url, &headers, &body).await?;
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

impl PolicyCaller {
    /// One call, within its time.
    async fn call_within(&self, call: Call, owner: Option<&Owner>) -> Result<Answer, CallError> {
        let timeout = call.timeout;
        tokio::time::timeout(timeout, self.send(call, owner))
            .await
            .unwrap_or(Err(CallError::Timeout(timeout)))
    }
}

impl HttpCaller for PolicyCaller {
    fn call(&self, call: Call) -> CallFuture<'_> {
        Box::pin(self.call_within(call, None))
    }
}

impl HttpCaller for OwnerCaller {
    fn call(&self, call: Call) -> CallFuture<'_> {
        Box::pin(self.caller.call_within(call, Some(&self.owner)))
    }
}

/// Sends a prepared request with the call's headers and body.
async fn send(
    req: reqwest::RequestBuilder,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<reqwest::Response, CallError> {
    req.headers(headers.clone())
        .body(body.clone())
        .send()
        .await
        .map_err(classify)
}

/// The internal endpoint a URL names (`NAME.internal`), checked; `None` for any other host.
fn internal_target(url: &Url) -> Option<Result<InternalUrl, CallError>> {
    let host = url.host_str().filter(|h| h.ends_with(".internal"))?;
    let text = match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    };
    Some(InternalUrl::parse(&text).map_err(CallError::Failed))
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

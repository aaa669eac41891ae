//! Forwarding one request to its endpoint's handler — a pooled upstream client, the file
//! server, or an application service — with the watchers (inspector, status screen) seeing it
//! on the way. The request arrives from the edge's frames (`stream.rs`) or from a replay.

use super::body::{idle_timeout, ProxyBody};
use super::handler::{self, Handler, HandlerError, Route, TcpTarget};
use super::location_rewrite::{self, PublicOrigin};
use super::observe::{Observers, RequestMeta};
use crate::config::agent::AgentConfig;
use crate::config::endpoint::{EndpointConfig, HostHeader, UpstreamProtocol};
use bytes::Bytes;
use http::header::{HeaderValue, HOST};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper_util::client::legacy::ResponseFuture;
use sluice_proto::error_code::{ErrorCode, AGENT_ERROR_HEADER, ERROR_CODE_HEADER};
use sluice_proto::frame::ResponseHead;
use sluice_proto::headers::{is_upgrade, strip_hop_by_hop};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

/// What forwarding a request produced.
pub(crate) enum Forwarded {
    /// A response, with the upstream's side of an upgrade when it answered `101`.
    Response {
        /// The response the edge gets.
        response: Response<ProxyBody>,
        /// The upstream connection after a `101`.
        upgrade: Option<hyper::upgrade::OnUpgrade>,
    },
    /// No response: the edge answers with the code.
    Failed(Failure),
}

/// Why the agent produced no response.
#[derive(Debug, Clone)]
pub(crate) struct Failure {
    /// The code the edge answers with.
    pub(crate) code: ErrorCode,
    /// What happened, for the logs of both sides.
    pub(crate) cause: String,
}

impl Failure {
    fn new(code: ErrorCode, cause: impl Into<String>) -> Self {
        Self {
            code,
            cause: cause.into(),
        }
    }
}

/// Forwards requests to each endpoint's handler; shared by every stream of every session.
pub struct Forwarder {
    routes: Vec<Route>,
    upstream_timeout: Duration,
    observers: Observers,
}

impl Forwarder {
    /// A forwarder for the config's endpoints (clients, file servers and services built here,
    /// so a bad CA file or a missing directory is reported before going online).
    pub fn new(config: &AgentConfig) -> Result<Self, HandlerError> {
        Ok(Self {
            routes: handler::routes(config)?,
            upstream_timeout: config.upstream_timeout,
            observers: Observers::new(),
        })
    }

    /// The same forwarder, with `observers` watching every exchange.
    pub fn with_observers(mut self, observers: Observers) -> Self {
        self.observers = observers;
        self
    }

    /// The watchers of every exchange and connection.
    pub(crate) fn observers(&self) -> &Observers {
        &self.observers
    }

    /// Where the connections of endpoint `endpoint` go, if it is a `tcp://` or `tls://` one.
    pub(crate) fn tcp_target(&self, endpoint: usize) -> Option<&TcpTarget> {
        match &self.routes.get(endpoint)?.handler {
            Handler::Tcp(target) => Some(target),
            _ => None,
        }
    }

    /// Forwards a request that arrived from the edge; 1xx responses from an HTTP upstream
    /// (100 Continue) are passed to `informational` as they come.
    pub(crate) async fn forward_from_edge(
        &self,
        req: Request<ProxyBody>,
        meta: &RequestMeta,
        informational: mpsc::UnboundedSender<ResponseHead>,
    ) -> Forwarded {
        self.forward_watched(req, meta, Some(informational)).await
    }

    /// Forwards one request to the handler of `meta.endpoint` (replays of captured requests);
    /// a failure comes back as the agent's error response, marked with
    /// [`AGENT_ERROR_HEADER`].
    pub async fn forward(
        &self,
        req: Request<ProxyBody>,
        meta: &RequestMeta,
    ) -> Response<ProxyBody> {
        match self.forward_watched(req, meta, None).await {
            Forwarded::Response { response, .. } => response,
            Forwarded::Failed(failure) => agent_error(failure.code),
        }
    }

    /// Runs the watchers around [`Self::forward_to_handler`]. They see the agent's error page
    /// when forwarding failed, so the inspector shows what the client got.
    async fn forward_watched(
        &self,
        req: Request<ProxyBody>,
        meta: &RequestMeta,
        informational: Option<mpsc::UnboundedSender<ResponseHead>>,
    ) -> Forwarded {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let (mut req, exchange) = self.observers.request(meta, req);
        authority_as_host(&mut req);
        let forwarded = self.forward_to_handler(req, meta, informational).await;
        let (forwarded, status) = match forwarded {
            Ok((response, upgrade)) => {
                let response = exchange.response(finish_response(response));
                let status = response.status().as_u16();
                (Forwarded::Response { response, upgrade }, status)
            }
            Err(failure) => {
                warn!(code = %failure.code, cause = %failure.cause, "upstream failed");
                let page = exchange.response(agent_error(failure.code));
                (Forwarded::Failed(failure), page.status().as_u16())
            }
        };
        info!(
            %method,
            path,
            status,
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "forwarded"
        );
        forwarded
    }

    /// The handler's response, and the upstream's upgrade when it switched protocols.
    async fn forward_to_handler(
        &self,
        mut req: Request<ProxyBody>,
        meta: &RequestMeta,
        informational: Option<mpsc::UnboundedSender<ResponseHead>>,
    ) -> Result<(Response<ProxyBody>, Option<hyper::upgrade::OnUpgrade>), Failure> {
        let Some(route) = self.routes.get(meta.endpoint) else {
            return Err(Failure::new(
                ErrorCode::Internal,
                format!("no endpoint {}", meta.endpoint),
            ));
        };
        match &route.handler {
            Handler::Tcp(_) => Err(Failure::new(
                ErrorCode::BadRequest,
                "an HTTP request for a tcp:// or tls:// endpoint",
            )),
            Handler::Files(files) => Ok((files.serve(req).await, None)),
            Handler::App(app) => app.call(req).await.map(|resp| (resp, None)).map_err(|e| {
                Failure::new(
                    ErrorCode::UpstreamUnreachable,
                    format!("the application service failed: {e}"),
                )
            }),
            Handler::Http(client) => {
                let public = PublicOrigin::of(req.headers());
                if let Some(tx) = informational {
                    hyper::ext::on_informational(&mut req, move |info| {
                        let _ = tx.send(ResponseHead {
                            status: info.status(),
                            headers: info.headers().clone(),
                            end_stream: false,
                        });
                    });
                }
                let upstream_req = upstream_request(req, &route.config)?;
                // The client's future owns what it needs, so nothing borrowed crosses the
                // await (hyper wants this future `Send` for every lifetime).
                let mut resp = self.send(client.request(upstream_req)).await?;
                let upgrade = (resp.status() == StatusCode::SWITCHING_PROTOCOLS)
                    .then(|| hyper::upgrade::on(&mut resp));
                Ok((
                    rewrite_location(resp, &route.config, public.as_ref()),
                    upgrade,
                ))
            }
        }
    }

    /// Sends the request upstream; the response body may not stay silent longer than the
    /// upstream timeout either.
    async fn send(&self, upstream: ResponseFuture) -> Result<Response<ProxyBody>, Failure> {
        let resp = match tokio::time::timeout(self.upstream_timeout, upstream).await {
            Err(_) => {
                return Err(Failure::new(
                    ErrorCode::UpstreamTimeout,
                    format!("no response head within {:?}", self.upstream_timeout),
                ))
            }
            Ok(Err(e)) => return Err(classify(&e)),
            Ok(Ok(resp)) => resp,
        };
        // The same limit bounds silence inside the body: a stalled upstream must end in an error
        // the client sees (docs/hardening.md).
        let limit = self.upstream_timeout;
        Ok(resp.map(|b| idle_timeout(b.map_err(Into::into).boxed_unsync(), limit)))
    }
}

/// HTTP/2 carries the public host as `:authority` (the URI); upstreams and handlers read
/// `Host`, as they do for HTTP/1.1.
fn authority_as_host(req: &mut Request<ProxyBody>) {
    if req.headers().contains_key(HOST) {
        return;
    }
    let host = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(host) = host {
        req.headers_mut().insert(HOST, host);
    }
}

/// `--host-header rewrite`: a redirect to the upstream's own address goes to the public URL.
fn rewrite_location(
    mut resp: Response<ProxyBody>,
    endpoint: &EndpointConfig,
    public: Option<&PublicOrigin>,
) -> Response<ProxyBody> {
    if let (HostHeader::Rewrite, Some(public), Some(scheme), Some(authority)) = (
        &endpoint.host_header,
        public,
        endpoint.upstream.scheme(),
        endpoint.upstream.authority(),
    ) {
        location_rewrite::rewrite(resp.headers_mut(), scheme, authority, public);
    }
    resp
}

/// Last touches on a response the agent did not produce itself.
fn finish_response(mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    let upgrade = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    strip_hop_by_hop(resp.headers_mut(), upgrade);
    // Only the agent may say it produced a response; an upstream cannot.
    resp.headers_mut().remove(AGENT_ERROR_HEADER);
    resp.headers_mut().remove(ERROR_CODE_HEADER);
    resp
}

/// Tells an upstream client failure apart: no connection (`ERR_SLUICE_8012`), or a
/// connection on which the upstream reset the request or broke the protocol
/// (`ERR_SLUICE_3004`). The cause chain is kept for the logs.
fn classify(e: &hyper_util::client::legacy::Error) -> Failure {
    let mut cause = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        cause.push_str(": ");
        cause.push_str(&err.to_string());
        source = err.source();
    }
    let code = if e.is_connect() {
        ErrorCode::UpstreamUnreachable
    } else {
        ErrorCode::InvalidUpstreamResponse
    };
    debug!(?e, "upstream request failed");
    Failure::new(code, cause)
}

/// Turns the edge's request into the upstream's: absolute URI, Host per `--host-header`,
/// connection-specific fields removed (`te: trailers` kept).
fn upstream_request(
    req: Request<ProxyBody>,
    endpoint: &EndpointConfig,
) -> Result<Request<ProxyBody>, Failure> {
    let bad = |what: &str| Failure::new(ErrorCode::BadRequest, what.to_string());
    let (mut parts, body) = req.into_parts();
    let upgrade = is_upgrade(&parts.headers);
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = endpoint
        .upstream
        .uri_for(path)
        .ok_or_else(|| Failure::new(ErrorCode::Internal, "the upstream is not HTTP"))?
        .map_err(|_| bad("the request target does not fit the upstream URL"))?;
    // The client's version is the edge's business; hyper's client refuses a request whose
    // version its connection does not speak.
    parts.version = match endpoint.upstream_protocol {
        UpstreamProtocol::Http1 => http::Version::HTTP_11,
        UpstreamProtocol::Http2 => http::Version::HTTP_2,
    };
    strip_hop_by_hop(&mut parts.headers, upgrade);
    match &endpoint.host_header {
        HostHeader::Preserve => {}
        HostHeader::Rewrite => {
            if let Some(authority) = endpoint.upstream.authority() {
                let host = HeaderValue::from_str(authority.as_str())
                    .map_err(|_| bad("the upstream's authority is not a header value"))?;
                parts.headers.insert(HOST, host);
            }
        }
        HostHeader::Value(v) => {
            let host =
                HeaderValue::from_str(v).map_err(|_| bad("--host-header is not a header value"))?;
            parts.headers.insert(HOST, host);
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// The page the agent shows for its own failure (watchers and replays see it), marked with
/// [`AGENT_ERROR_HEADER`].
pub fn agent_error(code: ErrorCode) -> Response<ProxyBody> {
    let body = Bytes::from(code.body());
    let mut resp = Response::new(super::body::full(body));
    *resp.status_mut() = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let headers = resp.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Ok(v) = HeaderValue::from_str(&code.to_string()) {
        headers.insert(AGENT_ERROR_HEADER, v);
    }
    resp
}

//! One proxied request: read the stream header, serve HTTP on the QUIC stream with hyper
//! (HTTP/1.1, or HTTP/2 when the edge relays an HTTP/2 client, so trailers survive), and hand
//! the request to the endpoint's handler: a pooled upstream client, the file server, or an
//! application service.

use super::body::{idle_timeout, ProxyBody};
use super::handler::{self, Handler, HandlerError, Route};
use super::location_rewrite::{self, PublicOrigin};
use super::observe::{Observers, RequestMeta};
use crate::config::agent::AgentConfig;
use crate::config::endpoint::{EndpointConfig, HostHeader, UpstreamProtocol};
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, HOST, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::ResponseFuture;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_proto::codec::read_frame;
use sluice_proto::error_code::{ErrorCode, AGENT_ERROR_HEADER, ERROR_CODE_HEADER};
use sluice_proto::headers::HOP_BY_HOP;
use sluice_proto::quic_io::QuicIo;
use sluice_proto::stream::StreamHeader;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tracing::{debug, info, info_span, Instrument};

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

    /// Serves one edge-opened stream: header frame, then one HTTP exchange (or upgrade).
    pub async fn serve_stream(self: Arc<Self>, mut io: QuicIo) {
        let header: StreamHeader = match read_frame(&mut io).await {
            Ok(h) => h,
            Err(e) => {
                debug!(stream = io.id(), "bad stream header: {e}");
                io.abort();
                return;
            }
        };
        let span = info_span!(
            "stream",
            request_id = %header.request_id,
            stream = io.id(),
            client = %header.client_addr,
        );
        let endpoint = header.endpoint_id as usize;
        if endpoint >= self.routes.len() {
            debug!(parent: &span, endpoint, "stream for unknown endpoint");
            io.abort();
            return;
        }
        let meta = Arc::new(RequestMeta {
            endpoint,
            remote_addr: Some(header.client_addr),
            replay_of: None,
        });
        let answered = Arc::new(Notify::new());
        let this = self.clone();
        let signal = answered.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let (this, signal, meta) = (this.clone(), signal.clone(), meta.clone());
            if req.version() == http::Version::HTTP_2 {
                // One request per stream: over HTTP/2 the edge's connection would otherwise
                // stay open for reuse; GOAWAY lets this request finish and nothing follow.
                signal.notify_one();
            }
            let req = req.map(super::body::boxed);
            async move { Ok::<_, Infallible>(this.forward(req, &meta).await) }
        });
        let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
        builder.http1().keep_alive(false);
        let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
        tokio::pin!(conn);
        let served = async {
            tokio::select! {
                r = conn.as_mut() => r,
                _ = answered.notified() => {
                    conn.as_mut().graceful_shutdown();
                    conn.await
                }
            }
        }
        .instrument(span.clone())
        .await;
        if let Err(e) = served {
            // The QUIC stream is reset on drop, so the edge sees the failure too.
            debug!(parent: &span, "stream ended with error: {e}");
        }
    }

    /// Forwards one request to the handler of `meta.endpoint` (also used to replay captured
    /// requests); agent errors come back as marked error responses.
    pub async fn forward(
        &self,
        req: Request<ProxyBody>,
        meta: &RequestMeta,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let Some(route) = self.routes.get(meta.endpoint) else {
            return agent_error(ErrorCode::Internal);
        };
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let (mut req, exchange) = self.observers.request(meta, req);
        authority_as_host(&mut req);
        let result = match &route.handler {
            Handler::Files(files) => Ok(files.serve(req).await),
            Handler::App(app) => app.call(req).await.map_err(|e| {
                debug!("application service failed: {e}");
                ErrorCode::UpstreamUnreachable
            }),
            Handler::Http(client) => {
                let public = PublicOrigin::of(req.headers());
                let downstream_upgrade =
                    is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
                match upstream_request(req, &route.config) {
                    // The client's future owns what it needs, so nothing borrowed crosses
                    // the await (hyper wants this future `Send` for every lifetime).
                    Ok(upstream_req) => self
                        .send(client.request(upstream_req), downstream_upgrade)
                        .await
                        .map(|resp| rewrite_location(resp, &route.config, public.as_ref())),
                    Err(code) => Err(code),
                }
            }
        };
        let response = match result {
            Ok(resp) => finish_response(resp),
            Err(code) => agent_error(code),
        };
        let response = exchange.response(response);
        info!(
            %method,
            path,
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
            "forwarded"
        );
        response
    }

    async fn send(
        &self,
        upstream: ResponseFuture,
        downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Result<Response<ProxyBody>, ErrorCode> {
        let mut resp = match tokio::time::timeout(self.upstream_timeout, upstream).await {
            Err(_) => return Err(ErrorCode::UpstreamTimeout),
            Ok(Err(e)) => {
                debug!("upstream request failed: {e:?}");
                return Err(classify(&e));
            }
            Ok(Ok(resp)) => resp,
        };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(down) = downstream_upgrade {
                let up = hyper::upgrade::on(&mut resp);
                tokio::spawn(splice_upgraded(down, up).in_current_span());
            }
        }
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
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
        strip_hop_by_hop(resp.headers_mut());
    }
    // Only the agent may say it produced a response; an upstream cannot.
    resp.headers_mut().remove(AGENT_ERROR_HEADER);
    resp.headers_mut().remove(ERROR_CODE_HEADER);
    // hyper's HTTP/1.1 server writes the status line from this; its HTTP/2 server ignores it.
    *resp.version_mut() = http::Version::HTTP_11;
    resp
}

/// Maps an upstream client failure to the code the client sees.
fn classify(e: &hyper_util::client::legacy::Error) -> ErrorCode {
    if e.is_connect() {
        return ErrorCode::UpstreamUnreachable;
    }
    let mut source = std::error::Error::source(e);
    while let Some(err) = source {
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            if h.is_parse() || h.is_incomplete_message() {
                return ErrorCode::InvalidUpstreamResponse;
            }
        }
        source = err.source();
    }
    ErrorCode::UpstreamUnreachable
}

/// Copies bytes both ways between the upgraded edge stream and the upgraded upstream
/// connection (websockets).
async fn splice_upgraded(down: hyper::upgrade::OnUpgrade, up: hyper::upgrade::OnUpgrade) {
    let (down, up) = match tokio::try_join!(down, up) {
        Ok(pair) => pair,
        Err(e) => {
            debug!("upgrade failed: {e}");
            return;
        }
    };
    let (mut down, mut up) = (TokioIo::new(down), TokioIo::new(up));
    if let Err(e) = tokio::io::copy_bidirectional(&mut down, &mut up).await {
        debug!("upgraded connection ended: {e}");
    }
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Drops the fixed hop-by-hop headers and every header the `Connection` header names
/// (RFC 9110 §7.6.1), which must be read before `Connection` itself goes.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<String> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_ascii_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    for name in named.iter().map(String::as_str).chain(HOP_BY_HOP) {
        headers.remove(name);
    }
}

/// Turns the edge's request into the upstream's: absolute URI, Host per `--host-header`,
/// and no `Connection: close` (the edge's per-stream framing must not defeat upstream pooling).
fn upstream_request(
    req: Request<ProxyBody>,
    endpoint: &EndpointConfig,
) -> Result<Request<ProxyBody>, ErrorCode> {
    let (mut parts, body) = req.into_parts();
    let upgrade = is_upgrade(&parts.headers);
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = endpoint
        .upstream
        .uri_for(path)
        .ok_or(ErrorCode::Internal)?
        .map_err(|_| ErrorCode::BadRequest)?;
    // The edge speaks HTTP/2 on the stream to HTTP/2 clients whatever the upstream speaks;
    // hyper's client refuses a request whose version its connection does not speak.
    parts.version = match endpoint.upstream_protocol {
        UpstreamProtocol::Http1 => http::Version::HTTP_11,
        UpstreamProtocol::Http2 => http::Version::HTTP_2,
    };
    if upgrade {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        strip_hop_by_hop(&mut parts.headers);
    }
    match &endpoint.host_header {
        HostHeader::Preserve => {}
        HostHeader::Rewrite => {
            if let Some(authority) = endpoint.upstream.authority() {
                let host =
                    HeaderValue::from_str(authority.as_str()).map_err(|_| ErrorCode::BadRequest)?;
                parts.headers.insert(HOST, host);
            }
        }
        HostHeader::Value(v) => {
            let host = HeaderValue::from_str(v).map_err(|_| ErrorCode::BadRequest)?;
            parts.headers.insert(HOST, host);
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// A response the agent produced itself, marked for the edge with [`AGENT_ERROR_HEADER`].
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

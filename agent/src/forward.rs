//! One proxied request: read the stream header, serve HTTP/1.1 on the QUIC stream with hyper,
//! and forward to the upstream over pooled keep-alive connections.

use crate::config::{EndpointConfig, HostHeader};
use crate::observe::{Observers, RequestMeta};
use crate::upstream_tls;
use bytes::Bytes;
use http::header::{HeaderMap, HeaderValue, CONNECTION, HOST, UPGRADE};
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use sluice_proto::codec::read_frame;
use sluice_proto::error_code::{ErrorCode, AGENT_ERROR_HEADER, ERROR_CODE_HEADER};
use sluice_proto::headers::HOP_BY_HOP;
use sluice_proto::quic_io::QuicIo;
use sluice_proto::stream::StreamHeader;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::{debug, info, info_span, Instrument};

/// Body type of everything the agent sends and receives.
pub type ProxyBody = BoxBody<Bytes, hyper::Error>;

/// Forwards requests to upstreams; shared by every stream of every session.
pub struct Forwarder {
    client: Client<HttpsConnector<HttpConnector>, ProxyBody>,
    upstream_timeout: Duration,
    observers: Observers,
}

impl Forwarder {
    /// A forwarder with a keep-alive pool to `http://` and `https://` upstreams.
    pub fn new(
        upstream_timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, rustls::Error> {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        // The https connector hands `http://` URIs to the plain connector.
        connector.enforce_http(false);
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(upstream_tls::client_config()?)
            .https_or_http()
            .enable_http1()
            .wrap_connector(connector);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .build(connector);
        Ok(Self {
            client,
            upstream_timeout,
            observers: Observers::new(),
        })
    }

    /// The same forwarder, with `observers` watching every exchange.
    pub fn with_observers(mut self, observers: Observers) -> Self {
        self.observers = observers;
        self
    }

    /// Serves one edge-opened stream: header frame, then one HTTP/1.1 exchange (or upgrade).
    pub async fn serve_stream(self: Arc<Self>, mut io: QuicIo, endpoints: Arc<[EndpointConfig]>) {
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
        let Some(endpoint) = endpoints.get(header.endpoint_id as usize).cloned() else {
            debug!(parent: &span, endpoint = header.endpoint_id, "stream for unknown endpoint");
            io.abort();
            return;
        };
        let endpoint = Arc::new(endpoint);
        let meta = Arc::new(RequestMeta {
            endpoint: header.endpoint_id as usize,
            remote_addr: Some(header.client_addr),
            replay_of: None,
        });
        let this = self.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let (this, endpoint, meta) = (this.clone(), endpoint.clone(), meta.clone());
            let req = req.map(|b| b.boxed());
            async move { Ok::<_, Infallible>(this.forward(req, &endpoint, &meta).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            .keep_alive(false)
            .serve_connection(TokioIo::new(io), service)
            .with_upgrades()
            .instrument(span.clone())
            .await;
        if let Err(e) = served {
            // The QUIC stream is reset on drop, so the edge sees the failure too.
            debug!(parent: &span, "stream ended with error: {e}");
        }
    }

    /// Forwards one request to `endpoint`'s upstream (also used to replay captured requests);
    /// agent errors come back as marked error responses.
    pub async fn forward(
        &self,
        req: Request<ProxyBody>,
        endpoint: &EndpointConfig,
        meta: &RequestMeta,
    ) -> Response<ProxyBody> {
        let started = Instant::now();
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let (mut req, exchange) = self.observers.request(meta, req);
        let downstream_upgrade = is_upgrade(req.headers()).then(|| hyper::upgrade::on(&mut req));
        let response = match upstream_request(req, endpoint) {
            Ok(upstream_req) => self.send(upstream_req, downstream_upgrade).await,
            Err(_) => agent_error(ErrorCode::BadRequest),
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
        upstream_req: Request<ProxyBody>,
        downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    ) -> Response<ProxyBody> {
        let mut resp =
            match tokio::time::timeout(self.upstream_timeout, self.client.request(upstream_req))
                .await
            {
                Err(_) => return agent_error(ErrorCode::UpstreamTimeout),
                Ok(Err(e)) => return agent_error(classify(&e)),
                Ok(Ok(resp)) => resp,
            };
        if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
            if let Some(down) = downstream_upgrade {
                let up = hyper::upgrade::on(&mut resp);
                tokio::spawn(splice_upgraded(down, up).in_current_span());
            }
        } else {
            strip_hop_by_hop(resp.headers_mut());
        }
        // Only the agent may say it produced a response; an upstream cannot.
        resp.headers_mut().remove(AGENT_ERROR_HEADER);
        resp.headers_mut().remove(ERROR_CODE_HEADER);
        // The edge speaks HTTP/1.1 on the stream whatever version the upstream answered with.
        *resp.version_mut() = http::Version::HTTP_11;
        resp.map(|b| b.boxed())
    }
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
) -> Result<Request<ProxyBody>, http::Error> {
    let (mut parts, body) = req.into_parts();
    let upgrade = is_upgrade(&parts.headers);
    let path = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = endpoint.upstream.uri_for(path)?;
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
            let host = HeaderValue::from_str(endpoint.upstream.authority().as_str())?;
            parts.headers.insert(HOST, host);
        }
        HostHeader::Value(v) => {
            parts.headers.insert(HOST, HeaderValue::from_str(v)?);
        }
    }
    Ok(Request::from_parts(parts, body))
}

/// A response the agent produced itself, marked for the edge with [`AGENT_ERROR_HEADER`].
pub fn agent_error(code: ErrorCode) -> Response<ProxyBody> {
    let body = Bytes::from(code.body());
    let mut resp = Response::new(Full::new(body).map_err(|never| match never {}).boxed());
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

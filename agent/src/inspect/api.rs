//! The inspector's HTTP server: JSON API in the ngrok agent's shape (plus `/api/connections`
//! for TCP connections), live updates as Server-Sent Events, replay, and the web page.

use super::guard::{HostAllowList, Refused};
use super::page;
use super::render::{self, LinkInfo, TunnelInfo};
use super::replay::{self, ReplayError, ReplayRequest};
use super::responses::{empty, error, json_response, ApiBody};
use super::store::{Change, Store};
use crate::config::endpoint::EndpointConfig;
use crate::forward::forwarder::Forwarder;
use crate::forward::observe::RequestMeta;
use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Limited, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use sluice_proto::error_code::AGENT_ERROR_HEADER;
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::broadcast::error::RecvError;
use tracing::{debug, info_span, Instrument};

/// Most requests `GET /api/requests/http` returns without `limit` (ngrok's default).
const DEFAULT_LIST_LIMIT: usize = 50;
/// How often an idle event stream gets a comment, so proxies and browsers keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// Everything the API handlers share.
pub(super) struct Api {
    pub store: Arc<Store>,
    pub tunnels: Arc<RwLock<Vec<TunnelInfo>>>,
    pub links: Arc<RwLock<BTreeMap<usize, LinkInfo>>>,
    pub endpoints: Arc<[EndpointConfig]>,
    pub forwarder: Arc<Forwarder>,
    pub allow: HostAllowList,
}

/// A list request's parameters, see [`Api::list_query`].
struct ListQuery {
    limit: usize,
    endpoint: Option<usize>,
    tunnels: Vec<TunnelInfo>,
}

/// Accepts connections on `listener` until the task is dropped.
pub(super) async fn serve(listener: TcpListener, api: Arc<Api>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                debug!("inspector accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let api = api.clone();
        tokio::spawn(
            async move {
                let service = service_fn(move |req| {
                    let api = api.clone();
                    async move { Ok::<_, Infallible>(api.handle(req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!("inspector connection: {e}");
                }
            }
            .instrument(info_span!("inspector", %peer)),
        );
    }
}

impl Api {
    async fn handle(self: Arc<Self>, req: Request<Incoming>) -> Response<ApiBody> {
        if let Err(Refused(status, msg)) = self.allow.check(req.method(), req.headers()) {
            return error(status, msg);
        }
        let path = req.uri().path().to_string();
        let method = req.method().clone();
        if let Some(id) = path.strip_prefix("/api/requests/http/") {
            return match method {
                Method::GET => match self.store.get(id) {
                    Some(e) => {
                        json_response(StatusCode::OK, &render::exchange(&e, &self.tunnels()))
                    }
                    None => error(StatusCode::NOT_FOUND, format!("no captured request '{id}'")),
                },
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
            };
        }
        if let Some(id) = path.strip_prefix("/api/connections/") {
            return match method {
                Method::GET => match self.store.connection(id) {
                    Some(c) => json_response(
                        StatusCode::OK,
                        &render::connection(&c, &self.tunnels(), Instant::now()),
                    ),
                    None => error(StatusCode::NOT_FOUND, format!("no connection '{id}'")),
                },
                _ => error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
            };
        }
        match (method, path.as_str()) {
            (Method::GET, "/" | "/index.html") => page::response(),
            (Method::GET, "/api/connections") => self.connection_list(req.uri().query()),
            (Method::DELETE, "/api/connections") => {
                self.store.clear_connections();
                empty(StatusCode::NO_CONTENT)
            }
            (Method::GET, "/api/tunnels") => self.tunnel_list(),
            (Method::GET, "/api/requests/http") => self.request_list(req.uri().query()),
            (Method::DELETE, "/api/requests/http") => {
                self.store.clear();
                empty(StatusCode::NO_CONTENT)
            }
            (Method::POST, "/api/requests/http") => match self.replay(req).await {
                Ok(()) => empty(StatusCode::NO_CONTENT),
                Err(e) => error(e.status, e.msg),
            },
            (Method::GET, "/api/events") => self.events(),
            (
                _,
                "/" | "/api/tunnels" | "/api/requests/http" | "/api/connections" | "/api/events",
            ) => error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed here"),
            _ => error(StatusCode::NOT_FOUND, format!("no such page: {path}")),
        }
    }

    fn tunnels(&self) -> Vec<TunnelInfo> {
        self.tunnels
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn tunnel_list(&self) -> Response<ApiBody> {
        let tunnels: Vec<Value> = self
            .tunnels()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let conns = self.store.connection_counts(i);
                json!({
                    "name": t.name,
                    "uri": format!("/api/tunnels/{}", t.name),
                    "public_url": t.public_url,
                    "proto": t.public_url.split("://").next().unwrap_or("http"),
                    "config": { "addr": t.upstream, "inspect": true },
                    // Not ngrok's: how the agent reaches the edge (quic, or tcp when UDP is blocked).
                    "transport": t.transport,
                    "metrics": { "conns": { "count": conns.total, "gauge": conns.open } },
                })
            })
            .collect();
        json_response(
            StatusCode::OK,
            &json!({
                "tunnels": tunnels,
                "uri": "/api/tunnels",
                // Not ngrok's: the agent's links to the edges (several in a cluster).
                "links": render::links(&self.links.read().unwrap_or_else(|p| p.into_inner())),
            }),
        )
    }

    fn request_list(&self, query: Option<&str>) -> Response<ApiBody> {
        let ListQuery {
            limit,
            endpoint,
            tunnels,
        } = match self.list_query(query) {
            Ok(q) => q,
            Err((status, msg)) => return error(status, msg),
        };
        let requests: Vec<Value> = self
            .store
            .list(limit, endpoint)
            .iter()
            .map(|e| render::exchange(e, &tunnels))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({ "uri": "/api/requests/http", "requests": requests }),
        )
    }

    fn connection_list(&self, query: Option<&str>) -> Response<ApiBody> {
        let ListQuery {
            limit,
            endpoint,
            tunnels,
        } = match self.list_query(query) {
            Ok(q) => q,
            Err((status, msg)) => return error(status, msg),
        };
        let now = Instant::now();
        let connections: Vec<Value> = self
            .store
            .connections(limit, endpoint)
            .iter()
            .map(|c| render::connection(c, &tunnels, now))
            .collect();
        json_response(
            StatusCode::OK,
            &json!({ "uri": "/api/connections", "connections": connections }),
        )
    }

    /// A list's `limit` and `tunnel_name` (as an endpoint index), with the tunnels they were
    /// read against; the error answer when either is bad.
    fn list_query(&self, query: Option<&str>) -> Result<ListQuery, (StatusCode, String)> {
        let mut limit = DEFAULT_LIST_LIMIT;
        let mut tunnel = None;
        for (k, v) in form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
            match &*k {
                "limit" => {
                    limit = v.parse().map_err(|_| {
                        (
                            StatusCode::BAD_REQUEST,
                            format!("limit: not a number: '{v}'"),
                        )
                    })?;
                }
                "tunnel_name" => tunnel = Some(v.into_owned()),
                _ => {}
            }
        }
        let tunnels = self.tunnels();
        let endpoint = match tunnel {
            None => None,
            Some(name) => Some(tunnels.iter().position(|t| t.name == name).ok_or_else(|| {
                (
                    StatusCode::BAD_REQUEST,
                    format!("tunnel_name: no tunnel '{name}'"),
                )
            })?),
        };
        Ok(ListQuery {
            limit,
            endpoint,
            tunnels,
        })
    }

    /// Sends the rebuilt request to the upstream and returns once its response head is back;
    /// the response body is read in the background so its capture completes.
    async fn replay(&self, req: Request<Incoming>) -> Result<(), ReplayError> {
        let bad = |status, msg: String| ReplayError { status, msg };
        let max = self.store.limits().body_limit * 2 + 64 * 1024;
        let bytes = Limited::new(req.into_body(), max)
            .collect()
            .await
            .map_err(|e| bad(StatusCode::PAYLOAD_TOO_LARGE, format!("replay body: {e}")))?
            .to_bytes();
        let edit: ReplayRequest = serde_json::from_slice(&bytes)
            .map_err(|e| bad(StatusCode::BAD_REQUEST, format!("replay body: {e}")))?;
        let original = self.store.get(&edit.id).ok_or_else(|| {
            bad(
                StatusCode::NOT_FOUND,
                format!("no captured request '{}'", edit.id),
            )
        })?;
        let endpoint = match &edit.tunnel_name {
            None => original.endpoint,
            Some(name) => self
                .tunnels()
                .iter()
                .position(|t| &t.name == name)
                .ok_or_else(|| {
                    bad(
                        StatusCode::BAD_REQUEST,
                        format!("tunnel_name: no tunnel '{name}'"),
                    )
                })?,
        };
        let config = self
            .endpoints
            .get(endpoint)
            .ok_or_else(|| bad(StatusCode::BAD_REQUEST, format!("no endpoint {endpoint}")))?;
        let upstream_req = replay::build(&original, &edit)?;
        let meta = RequestMeta {
            endpoint,
            remote_addr: None,
            replay_of: Some(edit.id.clone()),
        };
        let resp = self.forwarder.forward(upstream_req, &meta).await;
        let failed = resp.headers().get(AGENT_ERROR_HEADER).cloned();
        tokio::spawn(drain(resp.into_body()).in_current_span());
        match failed {
            Some(code) => Err(bad(
                StatusCode::BAD_GATEWAY,
                format!(
                    "replay to {} failed: {}",
                    config.upstream,
                    code.to_str().unwrap_or("agent error")
                ),
            )),
            None => Ok(()),
        }
    }

    fn events(&self) -> Response<ApiBody> {
        let rx = self.store.subscribe();
        let hello = futures_util::stream::once(async {
            Ok::<_, Infallible>(Frame::data(Bytes::from_static(
                b"retry: 1000\n: connected\n\n",
            )))
        });
        let changes = futures_util::stream::unfold(rx, |mut rx| async move {
            let text = match tokio::time::timeout(KEEP_ALIVE, rx.recv()).await {
                Err(_) => ": keep-alive\n\n".to_string(),
                Ok(Ok(Change::Updated(id))) => {
                    format!("event: update\ndata: {}\n\n", json!({ "id": id }))
                }
                Ok(Ok(Change::Cleared)) => "event: cleared\ndata: {}\n\n".to_string(),
                Ok(Ok(Change::Connection(id))) => {
                    format!("event: connection\ndata: {}\n\n", json!({ "id": id }))
                }
                Ok(Ok(Change::ConnectionsCleared)) => {
                    "event: connections_cleared\ndata: {}\n\n".to_string()
                }
                // The listener missed changes: it should reload the list.
                Ok(Err(RecvError::Lagged(_))) => "event: lagged\ndata: {}\n\n".to_string(),
                Ok(Err(RecvError::Closed)) => return None,
            };
            Some((Ok::<_, Infallible>(Frame::data(Bytes::from(text))), rx))
        });
        let body = StreamBody::new(futures_util::StreamExt::chain(hello, changes));
        let mut resp = Response::new(BodyExt::boxed(body));
        let h = resp.headers_mut();
        h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        resp
    }
}

async fn drain(mut body: crate::forward::body::ProxyBody) {
    while let Some(frame) = body.frame().await {
        if frame.is_err() {
            break;
        }
    }
}

//! [`serve`]: the admin API's HTTP/1.1 listener: each request is routed ([`super::routes`]),
//! let in by its bearer token ([`super::auth`]), its JSON body read within a cap, and answered
//! by the control plane ([`Admin`]).
//!
//! hyper serves it directly rather than pingora (which the public and metrics listeners use):
//! the admin API needs request bodies read whole under a cap, the caller's address per request,
//! and nothing of pingora's proxy phases; and a small hyper server runs the same in the edge
//! and in tests that give it another [`Admin`].

use super::api::{Actor, Admin};
use super::auth::{AdminTokens, Gate, Refusal};
use super::reply::{done, json_bytes, one, page, Fault, Reply};
use super::routes::{route, Miss, Op};
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::de::DeserializeOwned;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tracing::{debug, info, warn};

/// The OpenAPI document, served at `/openapi.json` as committed.
pub const OPENAPI: &str = include_str!("../../../docs/admin-api.openapi.json");

/// The largest request body read, in bytes; the API's bodies are a few hundred.
pub const MAX_BODY: usize = 64 * 1024;

/// How long a client has to send a request head (and so how long an idle connection stays).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Connections served at once; more wait in the kernel's backlog. Operators and their scripts
/// are few; the cap keeps a runaway script from exhausting file descriptors.
const MAX_CONNECTIONS: usize = 64;

/// How long shutdown waits for calls in flight before cutting them.
const DRAIN_LIMIT: Duration = Duration::from_secs(5);

/// What every connection shares.
struct Api {
    gate: Gate,
    admin: Arc<dyn Admin>,
}

/// Serves the admin API on `listener` until `shutdown` turns true, then lets calls in flight
/// finish (up to a few seconds) and returns. `tokens` are the accepted admin tokens; `admin`
/// answers every call.
pub async fn serve(
    listener: TcpListener,
    tokens: AdminTokens,
    admin: Arc<dyn Admin>,
    mut shutdown: watch::Receiver<bool>,
) {
    let api = Arc::new(Api {
        gate: Gate::new(tokens),
        admin,
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    while !*shutdown.borrow() {
        let accepted = tokio::select! {
            _ = shutdown.changed() => break,
            // Reap finished connections so the set does not grow with every one served.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => tokio::select! {
                    _ = shutdown.changed() => break,
                    accepted = listener.accept() => (slot, accepted),
                },
                Err(_) => break,
            },
        };
        match accepted {
            (slot, Ok((stream, peer))) => {
                let (api, shutdown) = (api.clone(), shutdown.clone());
                connections.spawn(async move {
                    connection(api, stream, peer, shutdown).await;
                    drop(slot);
                });
            }
            // Out of file descriptors and the like: the next accept may work; do not spin.
            (_, Err(e)) => {
                warn!("admin API: accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let drained = tokio::time::timeout(DRAIN_LIMIT, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("admin API: calls still in flight after {DRAIN_LIMIT:?} were cut");
    }
}

/// One client connection, until it closes or the edge shuts down (then the call in flight
/// finishes and the connection closes).
async fn connection(
    api: Arc<Api>,
    stream: TcpStream,
    peer: SocketAddr,
    mut shutdown: watch::Receiver<bool>,
) {
    let service = hyper::service::service_fn(move |req| {
        let api = api.clone();
        async move { Ok::<_, std::convert::Infallible>(api.answer(req, peer.ip()).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let result = tokio::select! {
        r = conn.as_mut() => r,
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        debug!(%peer, "admin API connection: {e}");
    }
}

impl Api {
    /// The answer to one request; logs the call (path, status, who), never its body or query.
    async fn answer(&self, req: Request<Incoming>, remote: IpAddr) -> Reply {
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let (reply, who) = match self.route_and_call(req, remote).await {
            Ok((reply, op, actor)) => (reply, Some((op, actor))),
            Err(fault) => (fault.reply(), None),
        };
        let status = reply.status().as_u16();
        match who {
            Some((op, Some(actor))) if op.is_change() => {
                let op = op.name();
                info!(op, %method, %path, status, actor = %actor.token_id, %remote, "admin API call")
            }
            _ => debug!(%method, %path, status, %remote, "admin API call"),
        }
        reply
    }

    /// Routes, admits and calls: the reply with the operation and who called it, or the
    /// listener's own refusal.
    async fn route_and_call(
        &self,
        req: Request<Incoming>,
        remote: IpAddr,
    ) -> Result<(Reply, Op, Option<Actor>), Fault> {
        let routed = route(req.method(), req.uri().path());
        if let Ok((op, _)) = &routed {
            if op.is_public() {
                return Ok((openapi(), *op, None));
            }
        }
        // Everything else, unknown paths included, is for admins only: no probing without a
        // token.
        let actor = self
            .gate
            .admit(req.headers(), remote)
            .map_err(|refusal| match refusal {
                Refusal::Missing => Fault::NoToken,
                Refusal::Invalid => Fault::BadToken,
                Refusal::LockedOut(left) => Fault::TooManyFailures(left),
            })?;
        let (op, id) = routed.map_err(|miss| match miss {
            Miss::NoPath => Fault::NoPath,
            Miss::NoMethod(allowed) => Fault::NoMethod(allowed),
        })?;
        let id = id.unwrap_or_default();
        let reply = self.call(op, &id, &actor, req).await?;
        Ok((reply, op, Some(actor)))
    }

    /// Asks the control plane for `op`; `Err` when the request's body is unusable.
    async fn call(
        &self,
        op: Op,
        id: &str,
        actor: &Actor,
        req: Request<Incoming>,
    ) -> Result<Reply, Fault> {
        use Op::*;
        let (a, created) = (&*self.admin, StatusCode::CREATED);
        let ok = StatusCode::OK;
        Ok(match op {
            ListCredentials => page("credentials", a.credentials().await),
            CreateCredential => one(created, a.create_credential(actor, body(req).await?).await),
            GetCredential => one(ok, a.credential(id).await),
            UpdateCredential => one(ok, a.update_credential(actor, id, body(req).await?).await),
            DeleteCredential => done(a.delete_credential(actor, id).await),
            ListReservedDomains => page("reserved_domains", a.reserved_domains().await),
            CreateReservedDomain => one(
                created,
                a.create_reserved_domain(actor, body(req).await?).await,
            ),
            GetReservedDomain => one(ok, a.reserved_domain(id).await),
            DeleteReservedDomain => done(a.delete_reserved_domain(actor, id).await),
            ListReservedAddrs => page("reserved_addrs", a.reserved_addrs().await),
            CreateReservedAddr => one(
                created,
                a.create_reserved_addr(actor, body(req).await?).await,
            ),
            GetReservedAddr => one(ok, a.reserved_addr(id).await),
            DeleteReservedAddr => done(a.delete_reserved_addr(actor, id).await),
            ListTunnelSessions => page("tunnel_sessions", a.tunnel_sessions().await),
            GetTunnelSession => one(ok, a.tunnel_session(id).await),
            StopTunnelSession => done(a.stop_tunnel_session(actor, id).await),
            ListEndpoints => page("endpoints", a.endpoints().await),
            CreateEndpoint => one(created, a.create_endpoint(actor, body(req).await?).await),
            GetEndpoint => one(ok, a.endpoint(id).await),
            DeleteEndpoint => done(a.delete_endpoint(actor, id).await),
            OpenApi => openapi(),
        })
    }
}

fn openapi() -> Reply {
    json_bytes(StatusCode::OK, Bytes::from_static(OPENAPI.as_bytes()))
}

/// The request's JSON body as `T`: declared as JSON, at most [`MAX_BODY`] bytes, and exactly
/// `T`'s fields (the model refuses unknown ones).
async fn body<T: DeserializeOwned>(req: Request<Incoming>) -> Result<T, Fault> {
    let (parts, incoming) = req.into_parts();
    if !is_json(&parts.headers) {
        return Err(Fault::NotJson);
    }
    let declared = parts
        .headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return Err(Fault::TooLarge(MAX_BODY));
    }
    let bytes = Limited::new(incoming, MAX_BODY)
        .collect()
        .await
        .map_err(
            |e| match e.downcast_ref::<http_body_util::LengthLimitError>() {
                Some(_) => Fault::TooLarge(MAX_BODY),
                None => Fault::BodyRead(e.to_string()),
            },
        )?
        .to_bytes();
    // serde reads a struct from a JSON array too (`[null, null]` would be an empty create):
    // the API's bodies are objects, as the document says.
    if bytes.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(Fault::BadJson(
            "the body must be a JSON object, e.g. {}".into(),
        ));
    }
    serde_json::from_slice(&bytes).map_err(|e| Fault::BadJson(e.to_string()))
}

/// Whether the body is declared `application/json` (parameters such as `charset` allowed).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

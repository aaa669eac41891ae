//! One agent session: handshake (auth, hostname claims), then route lifetime tied to the QUIC
//! connection.

use crate::auth::TokenId;
use crate::endpoint_policy;
use crate::hostname::{requested_scheme, Hostname};
use crate::routes::Route;
use crate::state::EdgeState;
use crate::tunnel::admission::SessionSlot;
use sluice_proto::codec::{read_frame, write_frame};
use sluice_proto::control::{
    BoundEndpoint, EndpointRequest, Hello, HelloReply, Rejection, Welcome,
};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::stream::Scheme;
use sluice_proto::{close_code, PROTOCOL_VERSION};
use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::{debug, info, info_span, warn, Instrument};

/// A live agent session, shared by every route it holds.
#[derive(Debug)]
pub struct SessionHandle {
    /// Edge-assigned id (`ses_…`).
    pub id: String,
    /// The authtoken the agent presented.
    pub owner: TokenId,
    /// The agent's QUIC connection.
    pub conn: quinn::Connection,
    /// This session's place in its token's session count, freed when the session ends or is
    /// replaced.
    slot: Mutex<Option<SessionSlot>>,
}

impl SessionHandle {
    /// Frees this session's place in its token's session count.
    fn release_slot(&self) {
        self.slot.lock().unwrap_or_else(|p| p.into_inner()).take();
    }

    /// Whether the QUIC connection is still up.
    pub fn is_alive(&self) -> bool {
        self.conn.close_reason().is_none()
    }
}

/// A new random id with a readable prefix, e.g. `ses_3f9c…`.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{:016x}", rand::random::<u64>())
}

fn reject(code: ErrorCode, message: impl Into<String>) -> Rejection {
    Rejection {
        code,
        message: message.into(),
    }
}

/// Serves one incoming agent connection until it closes.
pub async fn serve(incoming: quinn::Incoming, state: Arc<EdgeState>) {
    let remote = incoming.remote_address();
    let session_id = new_id("ses");
    let span = info_span!("agent_session", session = %session_id, %remote);
    async move {
        let conn = match incoming.await {
            Ok(conn) => conn,
            Err(e) => {
                debug!("QUIC handshake failed: {e}");
                state
                    .metrics
                    .agent_connect_failures
                    .with_label_values(&["quic_handshake"])
                    .inc();
                return;
            }
        };
        let routes = match handshake(&conn, &state, &session_id, remote.ip()).await {
            Ok(routes) => routes,
            Err(rejection) => {
                warn!(code = %rejection.code, "agent rejected: {}", rejection.message);
                // Rejection codes are a fixed set, so they make a bounded label.
                state
                    .metrics
                    .agent_connect_failures
                    .with_label_values(&[&rejection.code.to_string()])
                    .inc();
                return;
            }
        };
        state.metrics.agent_sessions.inc();
        state.metrics.agent_links.add(&session_id, conn.clone());
        let reason = conn.closed().await;
        state.metrics.agent_links.remove(&session_id);
        state.metrics.agent_sessions.dec();
        for route in &routes {
            state.routes.release(&route.hostname, &session_id);
        }
        if let Some(route) = routes.first() {
            route.session.release_slot();
        }
        info!(%reason, "agent session ended, routes released");
    }
    .instrument(span)
    .await
}

/// Reads the agent's [`Hello`], admits it or not, and answers. On success the control stream
/// stays open for the life of the session.
async fn handshake(
    conn: &quinn::Connection,
    state: &Arc<EdgeState>,
    session_id: &str,
    remote: IpAddr,
) -> Result<Vec<Arc<Route>>, Rejection> {
    let accepted = tokio::time::timeout(state.handshake_timeout, read_hello(conn))
        .await
        .ok()
        .flatten();
    let Some((mut send, recv_half, hello)) = accepted else {
        conn.close(close_code::PROTOCOL.into(), b"handshake");
        return Err(reject(ErrorCode::HandshakeFailed, "no valid hello in time"));
    };
    match admit(&hello, conn, state, session_id, remote) {
        Ok((welcome, routes)) => {
            if write_frame(&mut send, &HelloReply::Welcome(welcome.clone()))
                .await
                .is_err()
            {
                for route in &routes {
                    state.routes.release(&route.hostname, session_id);
                }
                return Err(reject(ErrorCode::HandshakeFailed, "agent went away"));
            }
            for ep in &welcome.endpoints {
                info!(url = %ep.url, "endpoint online");
            }
            // Keep the control stream open: dropping it would finish it and end the session
            // from the agent's point of view.
            tokio::spawn(hold_control_stream(conn.clone(), send, recv_half));
            Ok(routes)
        }
        Err(rejection) => {
            let _ = write_frame(&mut send, &HelloReply::Rejected(rejection.clone())).await;
            let _ = send.finish();
            // Give the agent a moment to read the reason before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(2), conn.closed()).await;
            conn.close(
                close_code::REJECTED.into(),
                rejection.code.to_string().as_bytes(),
            );
            Err(rejection)
        }
    }
}

async fn read_hello(
    conn: &quinn::Connection,
) -> Option<(quinn::SendStream, quinn::RecvStream, Hello)> {
    let (send, mut recv) = conn.accept_bi().await.ok()?;
    let hello = read_frame(&mut recv).await.ok()?;
    Some((send, recv, hello))
}

/// Holds the control stream for the session's life. The agent sends nothing more on it today,
/// so its end (finished, reset, or more than 64 KiB sent) ends the session: otherwise an agent
/// that closed it would keep its hostnames and, its one allowed stream now free, could open
/// another that the edge never reads (docs/hardening.md).
async fn hold_control_stream(
    conn: quinn::Connection,
    send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let ended = recv.read_to_end(64 * 1024).await;
    if conn.close_reason().is_none() {
        debug!(error = ?ended.err(), "agent ended its control stream; closing the session");
        conn.close(close_code::PROTOCOL.into(), b"control stream ended");
    }
    drop(send);
}

/// Checks version and token, resolves hostnames, and claims them all or none.
fn admit(
    hello: &Hello,
    conn: &quinn::Connection,
    state: &EdgeState,
    session_id: &str,
    remote: IpAddr,
) -> Result<(Welcome, Vec<Arc<Route>>), Rejection> {
    if hello.version != PROTOCOL_VERSION {
        return Err(reject(
            ErrorCode::UnsupportedVersion,
            format!(
                "agent speaks protocol {}, this edge speaks {PROTOCOL_VERSION}",
                hello.version
            ),
        ));
    }
    let owner = authenticate(hello, state, remote)?;
    if hello.endpoints.is_empty() {
        return Err(reject(ErrorCode::HandshakeFailed, "no endpoints requested"));
    }
    let session = Arc::new(SessionHandle {
        id: session_id.to_string(),
        owner,
        conn: conn.clone(),
        slot: Mutex::new(None),
    });
    let mut seen = HashSet::new();
    let mut routes = Vec::with_capacity(hello.endpoints.len());
    for (id, request) in (0u32..).zip(&hello.endpoints) {
        let hostname = requested_hostname(request, state)?;
        let scheme = endpoint_scheme(request, state)?;
        if !seen.insert(hostname.clone()) {
            return Err(reject(
                ErrorCode::UrlNotAllowed,
                format!("'{hostname}' is requested twice"),
            ));
        }
        let policy = endpoint_policy::compile(
            state.operator_sources(&hostname).chain(&request.policies),
            &state.services,
        )
        .map_err(|problems| reject(ErrorCode::PolicyInvalid, problems))?;
        routes.push(Arc::new(Route {
            url: state.public_url(&hostname, scheme),
            scheme,
            endpoint: Arc::new(state.endpoint_info(
                format!("{session_id}/{id}"),
                &hostname,
                scheme,
            )),
            hostname,
            endpoint_id: id,
            session: session.clone(),
            policy,
        }));
    }
    let replaced = state
        .routes
        .claim(routes.clone())
        .map_err(|e| reject(ErrorCode::HostnameTaken, e.to_string()))?;
    for old in replaced {
        info!(old_session = %old.session.id, host = %old.hostname, "hostname taken over by the same authtoken");
        old.session.release_slot();
        old.session
            .conn
            .close(close_code::REPLACED.into(), b"replaced by a new session");
    }
    // Counted after the claim, so an agent reconnecting before its old session timed out
    // replaces that session instead of being refused for it.
    let Some(slot) = state.sessions_per_token.acquire(owner) else {
        for route in &routes {
            state.routes.release(&route.hostname, session_id);
        }
        return Err(reject(
            ErrorCode::AgentLimitReached,
            format!(
                "this authtoken already has {} agent sessions online, the edge's limit \
                 (max_agents_per_token)",
                state.sessions_per_token.limit()
            ),
        ));
    };
    *session.slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(slot);
    let endpoints = routes
        .iter()
        .map(|r| BoundEndpoint {
            id: r.endpoint_id,
            url: r.url.clone(),
            hostname: r.hostname.to_string(),
        })
        .collect();
    Ok((
        Welcome {
            session_id: session_id.to_string(),
            endpoints,
        },
        routes,
    ))
}

/// Checks the authtoken, refusing addresses that failed too often recently without looking at
/// the token at all, and logging each failure with its count (never the token).
fn authenticate(hello: &Hello, state: &EdgeState, remote: IpAddr) -> Result<TokenId, Rejection> {
    if let Err(retry) = state.auth_failures.check(remote) {
        return Err(reject(
            ErrorCode::AuthRateLimited,
            format!(
                "too many failed authtoken attempts from {remote}; retry in {} s",
                retry.as_secs().max(1)
            ),
        ));
    }
    state
        .tokens
        .verify(hello.authtoken.expose())
        .ok_or_else(|| {
            let failures = state.auth_failures.record(remote);
            warn!(%remote, failures, "wrong authtoken");
            reject(
                ErrorCode::AuthtokenInvalid,
                ErrorCode::AuthtokenInvalid.message(),
            )
        })
}

/// The endpoint's scheme: the one its URL names, else the edge's default. https:// on an edge
/// without an HTTPS listener is refused rather than silently served over http.
fn endpoint_scheme(request: &EndpointRequest, state: &EdgeState) -> Result<Scheme, Rejection> {
    match request.url.as_deref().and_then(requested_scheme) {
        Some(Scheme::Https) if state.https_port.is_none() => Err(reject(
            ErrorCode::UrlNotAllowed,
            "this edge has no HTTPS listener; ask for an http:// URL",
        )),
        Some(scheme) => Ok(scheme),
        None => Ok(state.default_scheme()),
    }
}

fn requested_hostname(request: &EndpointRequest, state: &EdgeState) -> Result<Hostname, Rejection> {
    let hostname = match &request.url {
        Some(url) => Hostname::from_requested_url(url, &state.domain)
            .map_err(|e| reject(ErrorCode::UrlNotAllowed, e.to_string()))?,
        None => Hostname::random_under(&state.domain),
    };
    if state.auth_hostname.as_ref() == Some(&hostname) {
        return Err(reject(
            ErrorCode::UrlNotAllowed,
            format!("'{hostname}' is this edge's sign-in host (auth_host)"),
        ));
    }
    Ok(hostname)
}

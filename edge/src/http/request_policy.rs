//! The endpoint's `on_http_request` phase inside pingora's `request_filter`: the connection
//! facts policies see, the whole body for actions that read it, and the policy's own answer.

use super::conn::{client_socket, server_port};
use super::ctx::RequestCtx;
use super::respond::send;
use super::state::ProxyState;
use crate::policy::body::{self, MAX_BUFFERED_BODY};
use crate::policy::run::PolicyRun;
use bytes::Bytes;
use pingora::proxy::Session;
use sluice_policy::codes::{error_response, REQUEST_BODY_TOO_LARGE};
use sluice_policy::{ConnInfo, EndpointInfo, Engine};
use std::sync::Arc;
use std::time::SystemTime;

/// Runs `engine`'s on_http_request on the client's request and keeps the run in `ctx` for
/// the response phase. Returns `true` when the policy answered (the response is sent).
pub async fn run(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    engine: &Arc<Engine>,
    endpoint: &Arc<EndpointInfo>,
) -> pingora::Result<bool> {
    let conn = conn_info(state, session, ctx);
    ctx.endpoint = Some(endpoint.clone());
    let body = if engine.reads_request_body() {
        let Some(body) = body::read_whole(session).await? else {
            send(session, body_too_large()).await?;
            return Ok(true);
        };
        Some(body)
    } else {
        None
    };
    let (run, answer) = PolicyRun::request(
        engine,
        conn,
        endpoint.clone(),
        session.req_header_mut(),
        body,
    )
    .await;
    ctx.policy = Some(run);
    match answer {
        Some(resp) => {
            send(session, resp).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

/// The `conn.*` facts policies see.
fn conn_info(state: &ProxyState, session: &Session, ctx: &RequestCtx) -> ConnInfo {
    ConnInfo {
        client_addr: client_socket(session),
        server_port: server_port(session).unwrap_or(state.urls.port_for(ctx.scheme)),
        start: SystemTime::now(),
        tls_version: ctx.tls_version.clone(),
    }
}

/// 413 for a body too large to buffer for the actions that read it.
fn body_too_large() -> http::Response<Bytes> {
    let limit = MAX_BUFFERED_BODY / 1024;
    error_response(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        REQUEST_BODY_TOO_LARGE,
        &format!("This endpoint verifies request bodies of at most {limit} KiB."),
    )
}

//! One endpoint's `on_http_request` phase inside pingora's `request_filter`: the connection
//! facts policies see, the whole body for actions that read it, and what the policy decided.

use super::conn::{client_socket, inet, server_port};
use super::ctx::RequestCtx;
use super::state::ProxyState;
use crate::policy::body::{self, MAX_BUFFERED_BODY};
use crate::policy::run::PolicyRun;
use bytes::Bytes;
use pingora::proxy::Session;
use sluice_policy::codes::{error_response, REQUEST_BODY_TOO_LARGE};
use sluice_policy::{ConnInfo, EndpointInfo, Engine, InternalUrl, RequestVerdict};
use std::sync::Arc;
use std::time::SystemTime;

/// What an endpoint's on_http_request decided.
pub enum Step {
    /// Go on to the member's agent.
    Proxy,
    /// Answer with this (still to pass through the response phases of the endpoints that
    /// forwarded here, see [`super::endpoint_chain`]).
    Answer(http::Response<Bytes>),
    /// Hand the request to this internal endpoint.
    Forward(InternalUrl),
    /// Close the client's connection without a response (close-connection).
    Close,
}

/// Runs `engine`'s on_http_request on the client's request and keeps the run in `ctx` (after
/// the runs of the endpoints that forwarded here) for the response phase.
pub async fn run(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    engine: &Arc<Engine>,
    endpoint: &Arc<EndpointInfo>,
) -> pingora::Result<Step> {
    let conn = conn_info(state, session, ctx);
    let body = if engine.reads_request_body() {
        match whole_body(session, ctx).await? {
            Some(body) => Some(body),
            None => return Ok(Step::Answer(body_too_large())),
        }
    } else {
        None
    };
    let forwarded_from = ctx.forwarded_from();
    // Only a public endpoint with on_tcp_connect rules has an entry: the table's lock stays
    // off every other request's path.
    let phases = &state.connection_phases;
    let connection = match inet(session.server_addr()) {
        Some(local) if forwarded_from.is_empty() && engine.has_tcp_connect_rules() => {
            phases.get(conn.client_addr, local, &endpoint.id)
        }
        _ => None,
    };
    let (run, verdict) = PolicyRun::request(
        engine,
        conn,
        endpoint.clone(),
        session.req_header_mut(),
        body,
        forwarded_from,
        connection,
    )
    .await;
    ctx.policies.push(run);
    Ok(match verdict {
        RequestVerdict::Continue => Step::Proxy,
        RequestVerdict::Respond(resp) => Step::Answer(resp),
        RequestVerdict::Forward(url) => Step::Forward(url),
        RequestVerdict::Close => Step::Close,
    })
}

/// The whole request body, read once per request (an endpoint a request is forwarded to may
/// read it again); `None` when it is too large to buffer.
async fn whole_body(session: &mut Session, ctx: &mut RequestCtx) -> pingora::Result<Option<Bytes>> {
    if ctx.request_body.is_none() {
        ctx.request_body = body::read_whole(session).await?;
    }
    Ok(ctx.request_body.clone())
}

/// The `conn.*` facts policies see.
fn conn_info(state: &ProxyState, session: &Session, ctx: &RequestCtx) -> ConnInfo {
    let mut conn = ConnInfo::new(
        client_socket(session),
        server_port(session).unwrap_or(state.urls.port_for(ctx.scheme)),
        SystemTime::now(),
    );
    conn.server_ip = inet(session.server_addr()).map(|a| a.ip());
    conn.tls.version.clone_from(&ctx.tls_version);
    conn
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

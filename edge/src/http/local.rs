//! Requests the edge answers itself, before or instead of an agent: ACME HTTP-01 tokens, the
//! edge-wide auth host, plain HTTP for an https endpoint, and hosts no agent holds (an
//! operator policy may still answer those).

use super::ctx::RequestCtx;
use super::request_policy::{self, Step};
use super::respond::{respond, send};
use super::state::ProxyState;
use crate::coded_error::{connection_closed_by_policy, edge_error};
use crate::hostname::Hostname;
use crate::login::AuthHostRequest;
use bytes::Bytes;
use pingora::proxy::Session;
use sluice_proto::error_code::ErrorCode;
use sluice_proto::scheme::Scheme;
use std::time::SystemTime;

/// Answers an ACME HTTP-01 validation request for a token the edge's ACME client has
/// pending. Returns `true` when it answered.
pub async fn acme_challenge(state: &ProxyState, session: &mut Session) -> pingora::Result<bool> {
    let Some(challenges) = &state.acme_challenges else {
        return Ok(false);
    };
    let Some(key_auth) = challenges.answer(session.req_header().uri.path()) else {
        return Ok(false);
    };
    let resp = http::Response::builder()
        .header("content-type", "application/octet-stream")
        .body(Bytes::from(key_auth))
        .map_err(|e| edge_error(ErrorCode::Internal, e.to_string()))?;
    send(session, resp).await?;
    Ok(true)
}

/// The edge-wide auth host's start and callback paths, answered by the sign-in service
/// (no agent holds that host). Returns `true` when it answered.
pub async fn auth_host(
    state: &ProxyState,
    session: &mut Session,
    ctx: &RequestCtx,
) -> pingora::Result<bool> {
    let Some(login) = &state.auth_host else {
        return Ok(false);
    };
    let req = session.req_header();
    if !login.is_auth_host_request(&ctx.host, req.uri.path()) {
        return Ok(false);
    }
    let asked = AuthHostRequest {
        method: req.method.clone(),
        uri: req.uri.clone(),
        cookies: req
            .headers
            .get_all(http::header::COOKIE)
            .iter()
            .cloned()
            .collect(),
        now: SystemTime::now(),
    };
    let resp = login
        .answer_auth_host(asked, &|host| state.serves(host))
        .await;
    send(session, resp).await?;
    Ok(true)
}

/// No endpoint of the request's scheme holds its host. A plain-HTTP request for a host with an
/// https endpoint gets a 308 to the https URL when the operator asked for redirects; anything
/// else is answered as if no agent held the host ([`without_agent`]).
pub async fn without_endpoint(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> pingora::Result<bool> {
    let https_held =
        || ctx.scheme == Scheme::Http && state.routes.lookup(Scheme::Https, &ctx.host).is_some();
    if state.redirect_http && https_held() {
        let host = Hostname::parse(&ctx.host)
            .map_err(|e| edge_error(ErrorCode::BadRequest, e.to_string()))?;
        let path = session
            .req_header()
            .uri
            .path_and_query()
            .map_or("/", |pq| pq.as_str());
        let location = format!("{}{path}", state.urls.public_url(&host, Scheme::Https));
        let resp = http::Response::builder()
            .status(http::StatusCode::PERMANENT_REDIRECT)
            .header(http::header::LOCATION, location)
            .body(Bytes::new())
            .map_err(|e| edge_error(ErrorCode::BadRequest, e.to_string()))?;
        send(session, resp).await?;
        return Ok(true);
    }
    without_agent(state, session, ctx).await
}

/// No agent holds the host: an operator policy for it may still answer (maintenance page,
/// redirect); otherwise 404 `EndpointNotFound` (400 when there is no host at all).
pub async fn without_agent(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
) -> pingora::Result<bool> {
    let Ok(host) = Hostname::parse(&ctx.host) else {
        ctx.error_code = Some(ErrorCode::BadRequest);
        respond(session, ErrorCode::BadRequest).await?;
        return Ok(true);
    };
    if let Some((engine, endpoint)) = state.operators.answering(&host) {
        ctx.endpoints.push(endpoint.clone());
        match request_policy::run(state, session, ctx, &engine, &endpoint).await? {
            Step::Answer(resp) => {
                send(session, resp).await?;
                return Ok(true);
            }
            Step::Close => return Err(connection_closed_by_policy()),
            // The operator's policies belong to no authtoken: forward-internal finds nothing
            // from them, so a forward never comes back here.
            Step::Proxy | Step::Forward(_) => {}
        }
    }
    ctx.error_code = Some(ErrorCode::EndpointNotFound);
    respond(session, ErrorCode::EndpointNotFound).await?;
    Ok(true)
}

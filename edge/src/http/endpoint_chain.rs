//! A request's way through its endpoints: a member of the public endpoint, then each internal
//! endpoint forward-internal hands it to, until a policy answers or an agent member takes it.
//!
//! Every endpoint's on_http_request runs in turn on the same request (the Host stays the
//! public one); a response passes back through their on_http_response phases, last endpoint
//! first: here for answers, in `proxy.rs` for the agent's response.

use super::ctx::RequestCtx;
use super::request_policy::{self, Step};
use super::respond::send;
use super::state::ProxyState;
use crate::coded_error::connection_closed_by_policy;
use crate::tunnel::authtoken::TokenId;
use crate::tunnel::routes::{EndpointKey, Route, RouteSet};
use bytes::Bytes;
use pingora::proxy::Session;
use sluice_policy::codes::{self, error_response};
use sluice_policy::{ForwardError, InternalUrl};
use std::sync::Arc;
use tracing::info;

/// Takes the request through a member of `set` (the public endpoint's members) and whatever
/// it forwards to. Returns `true` when the request was answered, `false` when `ctx.route`
/// holds the agent member to proxy it to (and `ctx.route_set` its endpoint's members); a
/// policy's close-connection is an error without a code, so pingora closes the connection
/// and writes nothing.
pub async fn enter(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    set: Arc<RouteSet>,
) -> pingora::Result<bool> {
    let mut set = set;
    loop {
        // A set in the registry is never empty, and a forward's target was checked online.
        let Some(member) = set.pick() else {
            let gone = ForwardError::Offline("the endpoint".to_string());
            return answer(session, ctx, failed(&gone)).await;
        };
        let callers = ctx.policies.len();
        ctx.endpoints.push(member.endpoint.clone());
        // Kept even when the policy answers: the event names the agent session it reached.
        ctx.route = (!member.is_cloud()).then(|| member.clone());
        ctx.route_set = Some(set.clone());
        let step = match &member.policy {
            Some(engine) => {
                request_policy::run(state, session, ctx, engine, &member.endpoint).await?
            }
            None => Step::Proxy,
        };
        match step {
            Step::Close => return Err(connection_closed_by_policy()),
            Step::Answer(resp) => return answer_from(session, ctx, callers, resp).await,
            Step::Proxy if ctx.route.is_some() => return Ok(false),
            Step::Proxy => return answer(session, ctx, no_response(&member)).await,
            Step::Forward(url) => match target(state, &member, &url) {
                Ok(next) => {
                    info!(parent: &ctx.span, from = %member.url, to = %url, "forward-internal");
                    set = next;
                }
                Err(e) => return answer(session, ctx, failed(&e)).await,
            },
        }
    }
}

/// Takes an http-request call from `owner`'s policy to its internal endpoint `target` (the
/// request came back into the edge with a ticket, `outbound/internal.rs`) through that
/// endpoint's members, as a forward would.
pub async fn enter_internal(
    state: &ProxyState,
    session: &mut Session,
    ctx: &mut RequestCtx,
    owner: TokenId,
    target: &InternalUrl,
) -> pingora::Result<bool> {
    let set = EndpointKey::internal(owner, target)
        .and_then(|key| state.routes.lookup_key(&key))
        .filter(|set| set.is_online());
    match set {
        Some(set) => enter(state, session, ctx, set).await,
        None => {
            let gone = ForwardError::Offline(target.to_string());
            answer(session, ctx, failed(&gone)).await
        }
    }
}

/// The members of the internal endpoint `url` in `member`'s namespace. The policy checked that
/// one is online; an endpoint that went offline since is reported as offline.
fn target(
    state: &ProxyState,
    member: &Route,
    url: &InternalUrl,
) -> Result<Arc<RouteSet>, ForwardError> {
    EndpointKey::internal(member.owner(), url)
        .and_then(|key| state.routes.lookup_key(&key))
        .filter(|set| set.is_online())
        .ok_or_else(|| ForwardError::Offline(url.to_string()))
}

/// The edge's answer for a forward that failed after the policy's check.
fn failed(e: &ForwardError) -> http::Response<Bytes> {
    error_response(e.status(), e.code(), &e.to_string())
}

/// A cloud endpoint whose policy ran to its end without answering or forwarding: it has no
/// agent to send the request to.
fn no_response(member: &Route) -> http::Response<Bytes> {
    error_response(
        http::StatusCode::BAD_GATEWAY,
        codes::CLOUD_ENDPOINT_NO_RESPONSE,
        &format!(
            "The cloud endpoint {} has no agent, and its traffic policy did not answer this \
             request.",
            member.url
        ),
    )
}

/// Sends an answer the edge made after every policy so far ran its request phase: it passes
/// through all their response phases.
async fn answer(
    session: &mut Session,
    ctx: &mut RequestCtx,
    resp: http::Response<Bytes>,
) -> pingora::Result<bool> {
    let callers = ctx.policies.len();
    answer_from(session, ctx, callers, resp).await
}

/// Sends an answer that the endpoints before index `callers` of `ctx.policies` still have to
/// see (the one that made it, if a policy did, already ran its response phase on it): their
/// on_http_response phases run on it, last first.
async fn answer_from(
    session: &mut Session,
    ctx: &mut RequestCtx,
    callers: usize,
    resp: http::Response<Bytes>,
) -> pingora::Result<bool> {
    let mut resp = resp;
    for run in ctx.policies[..callers].iter_mut().rev() {
        resp = run.pass_answer(session.req_header_mut(), resp).await;
    }
    send(session, resp).await?;
    Ok(true)
}

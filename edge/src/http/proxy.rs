//! [`EdgeProxy`]: the request path through pingora's phases, in order.
//!
//! `request_filter` (guard, the edge's own answers, route by Host, then the policy's
//! on_http_request) → `upstream_peer` (a QUIC stream to the agent) → `upstream_request_filter`
//! (forwarding headers) → `request_body_filter` (request-body-find-replace) →
//! `upstream_response_filter` (sanitise, then on_http_response) → `response_body_filter`
//! (event-stream rewrites, replacement, compression or replaced bodies) → `fail_to_proxy` (edge error
//! responses) → `logging` (metrics and the access event).

use super::conn::{client_ip, client_socket, tls_version};
use super::ctx::RequestCtx;
use super::endpoint_chain;
use super::forwarding::{prepare_upstream_request, sanitize_upstream_response};
use super::guard;
use super::local;
use super::respond::{respond, respond_failure};
use super::state::ProxyState;
use crate::coded_error::{code_for, edge_error};
use crate::hostname::host_without_port;
use crate::tunnel::connector::agent_peer;
use crate::tunnel::exchange::AgentTarget;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use sluice_proto::error_code::ErrorCode;
use sluice_proto::scheme::Scheme;
use std::sync::Arc;
use std::time::Duration;
use tracing::{info, info_span};

/// The edge's pingora application.
pub struct EdgeProxy {
    state: Arc<ProxyState>,
}

impl EdgeProxy {
    /// A proxy over the public side's state.
    pub fn new(state: Arc<ProxyState>) -> Self {
        Self { state }
    }
}

/// The host a request is for: the absolute-form URI's authority, else the `Host` header.
fn request_host(req: &RequestHeader) -> Option<String> {
    host_without_port(&request_authority(req)?)
}

/// `host[:port]` the client asked for: the URI's authority (HTTP/2's `:authority`), else `Host`.
fn request_authority(req: &RequestHeader) -> Option<String> {
    match req.uri.authority() {
        Some(a) => Some(a.as_str().to_string()),
        None => Some(
            req.headers
                .get(http::header::HOST)?
                .to_str()
                .ok()?
                .to_string(),
        ),
    }
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        self.state.metrics.requests_in_flight.inc();
        RequestCtx::new()
    }

    async fn request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        ctx.tls_version = tls_version(session);
        if ctx.tls_version.is_some() {
            ctx.scheme = Scheme::Https;
        }
        if let Err(code) = guard::check_head(session.req_header())
            .and_then(|()| guard::canonicalize_path(session.req_header_mut()))
        {
            ctx.error_code = Some(code);
            respond(session, code).await?;
            return Ok(true);
        }
        guard::strip_identity_headers(session.req_header_mut());
        let internal_call = self.state.internal_calls.take(session.req_header_mut());
        let req = session.req_header();
        ctx.host = request_host(req).unwrap_or_default();
        ctx.span = info_span!(
            "request",
            id = %ctx.request_id,
            host = %ctx.host,
            method = %req.method,
            path = %req.uri.path(),
            scheme = ctx.scheme.as_str(),
        );
        if let Some((owner, target)) = internal_call {
            return endpoint_chain::enter_internal(&self.state, session, ctx, owner, &target).await;
        }
        if local::acme_challenge(&self.state, session).await? {
            return Ok(true);
        }
        if local::auth_host(&self.state, session, ctx).await? {
            return Ok(true);
        }
        let Some(set) = self.state.routes.lookup(ctx.scheme, &ctx.host) else {
            return local::without_endpoint(&self.state, session, ctx).await;
        };
        endpoint_chain::enter(&self.state, session, ctx, set).await
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        if ctx.route.is_none() {
            return Err(edge_error(
                ErrorCode::Internal,
                "upstream_peer without a route",
            ));
        }
        Ok(Box::new(agent_peer()))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| edge_error(ErrorCode::Internal, "upstream request without a route"))?;
        let (via, endpoint_id, forward) = route
            .carrier(self.state.stream_open_timeout)
            .await
            .ok_or_else(|| {
                edge_error(ErrorCode::AgentOffline, "no link to the endpoint's agent")
            })?;
        prepare_upstream_request(
            upstream_request,
            client_ip(session),
            ctx.scheme.as_str(),
            &ctx.host,
        )?;
        upstream_request.extensions_mut().insert(AgentTarget {
            via,
            endpoint_id,
            forward,
            request_id: ctx.request_id.clone(),
            client_addr: client_socket(session),
            scheme: ctx.scheme,
            open_timeout: self.state.stream_open_timeout,
        });
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        sanitize_upstream_response(upstream_response)?;
        // The last endpoint a request was forwarded to sees the response first.
        for run in ctx.policies.iter_mut().rev() {
            run.response(session.req_header_mut(), upstream_response)
                .await?;
        }
        Ok(())
    }

    /// The request body on its way to the agent, through each endpoint's
    /// request-body-find-replace in the order the request passed them.
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        for run in &mut ctx.policies {
            run.request_body_chunk(body, end_of_stream);
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        for run in ctx.policies.iter_mut().rev() {
            run.body_chunk(session.req_header_mut(), body, end_of_stream);
        }
        Ok(None)
    }

    /// Only a request whose stream to the agent could not be opened (the exchange marks that
    /// error retryable: nothing reached the agent) is tried again, on another live member of
    /// the endpoint running the same policy; pingora then asks `upstream_peer` again. Any other
    /// failure is final, whatever the method.
    fn error_while_proxy(
        &self,
        _peer: &HttpPeer,
        _session: &mut Session,
        e: Box<pingora::Error>,
        ctx: &mut RequestCtx,
        _client_reused: bool,
    ) -> Box<pingora::Error> {
        let mut e = e;
        let moved = e.retry() && ctx.move_to_another_member();
        e.set_retry(moved);
        e
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &pingora::Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let Some(code) = code_for(e) else {
            // The client went away or sent garbage mid-request: nobody to answer.
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        ctx.error_code = Some(code);
        // Once response bytes went out, a new status cannot be sent; closing the connection is
        // the only honest signal left.
        if session.response_written().is_none() {
            if let Err(write_err) = respond_failure(session, code).await {
                info!(parent: &ctx.span, "could not send error response: {write_err}");
            }
        }
        FailToProxy {
            error_code: code.status(),
            can_reuse_downstream: false,
        }
    }

    async fn logging(
        &self,
        session: &mut Session,
        e: Option<&pingora::Error>,
        ctx: &mut RequestCtx,
    ) {
        self.state.metrics.requests_in_flight.dec();
        // The status the client got, error pages included, feeds the circuit breakers.
        let status = session.response_written().map_or(0, |r| r.status.as_u16());
        for run in &mut ctx.policies {
            run.finish(status);
        }
        let label = self.state.operators.endpoint_label(&ctx.host);
        let done = ctx.record(session, e, label);
        if self.state.record_metrics {
            self.state.metrics.record(&done);
        }
        self.state.events.emit(&done);
        // The `log` action's metadata travels with the request's access event.
        let policy_logs: Vec<_> = done.policies.iter().flat_map(|s| s.logs()).collect();
        let policy_logs = if policy_logs.is_empty() {
            String::new()
        } else {
            format!("{policy_logs:?}")
        };
        // A rule whose expression failed did not match: a deny rule then let the request
        // through, so the operator must be able to see it.
        let policy_errors = done
            .policies
            .iter()
            .flat_map(|s| s.errors())
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join("; ");
        info!(
            parent: &ctx.span,
            status = done.status,
            error_code = done.error_code.as_deref().unwrap_or_default(),
            elapsed_ms = done.duration.as_secs_f64() * 1000.0,
            error = done.error.as_deref().unwrap_or_default(),
            %policy_logs,
            %policy_errors,
            "request complete"
        );
    }
}

//! [`EdgeProxy`]: the request path through pingora's phases, in order.
//!
//! `request_filter` (route by Host, then the policy's on_http_request) → `upstream_peer` (a
//! QUIC stream to the agent) → `upstream_request_filter` (forwarding headers) →
//! `upstream_response_filter` (sanitise, then on_http_response) → `response_body_filter`
//! (compression or replaced bodies) → `fail_to_proxy` (edge error responses) → `logging`
//! (metrics and the access event).

use crate::completed::Completed;
use crate::error_response::{code_for, edge_error, respond};
use crate::forwarding::{prepare_upstream_request, sanitize_upstream_response};
use crate::hostname::{host_without_port, Hostname};
use crate::login::AuthHostRequest;
use crate::policy_run::{self, PolicyRun};
use crate::request_body;
use crate::request_guard;
use crate::routes::Route;
use crate::state::EdgeState;
use crate::tunnel::connector::AgentConnector;
use crate::tunnel::session::new_id;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::protocols::l4::socket::SocketAddr as PingoraAddr;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::upstreams::peer::HttpPeer;
use sluice_policy::{ConnInfo, EndpointInfo, Engine};
use sluice_proto::error_code::ErrorCode;
use sluice_proto::stream::{Scheme, StreamHeader};
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tracing::{info, info_span, Span};

/// The edge's pingora application.
pub struct EdgeProxy {
    state: Arc<EdgeState>,
}

impl EdgeProxy {
    /// A proxy over shared edge state.
    pub fn new(state: Arc<EdgeState>) -> Self {
        Self { state }
    }
}

/// Per-request state carried between phases.
pub struct RequestCtx {
    /// Edge-assigned id, also sent to the agent in the stream header.
    pub request_id: String,
    /// The route chosen in `request_filter`.
    pub route: Option<Arc<Route>>,
    /// Set when the edge or agent produced the response.
    pub error_code: Option<ErrorCode>,
    /// The request's span; events for this request are its children.
    pub span: Span,
    /// When the request arrived.
    pub started: Instant,
    /// Host (lowercase, no port).
    pub host: String,
    /// When the request arrived, as wall-clock time for the event's `conn.start_ts`.
    pub started_at: SystemTime,
    /// The endpoint the request reached (agent endpoint or operator endpoint), if any.
    pub endpoint: Option<Arc<EndpointInfo>>,
    /// The endpoint's traffic-policy evaluation, when it has a policy.
    pub policy: Option<PolicyRun>,
    /// How the client reached the edge: `https` on the TLS listener.
    pub scheme: Scheme,
    /// The negotiated TLS version (`1.2`, `1.3`) on the TLS listener.
    pub tls_version: Option<String>,
    /// The client speaks HTTP/2, so the agent hop does too (trailers, gRPC).
    pub agent_h2: bool,
}

/// The host a request is for: the absolute-form URI's authority, else the `Host` header.
fn request_host(req: &RequestHeader) -> Option<String> {
    host_without_port(&request_authority(req)?)
}

fn client_socket(session: &Session) -> Option<SocketAddr> {
    session
        .client_addr()
        .and_then(PingoraAddr::as_inet)
        .copied()
}

fn client_ip(session: &Session) -> Option<IpAddr> {
    client_socket(session).map(|a| a.ip())
}

/// 413 for a body too large to buffer for the actions that read it.
fn body_too_large() -> http::Response<Bytes> {
    let limit = request_body::MAX_BUFFERED_BODY / 1024;
    sluice_policy::codes::error_response(
        http::StatusCode::PAYLOAD_TOO_LARGE,
        sluice_policy::codes::REQUEST_BODY_TOO_LARGE,
        &format!("This endpoint verifies request bodies of at most {limit} KiB."),
    )
}

/// The TLS version of the client's connection as policies see it (`1.2`, `1.3`), `None` on
/// plain HTTP. pingora reports rustls' names (`TLSv1_3`).
fn tls_version(session: &Session) -> Option<String> {
    let digest = session.digest()?.ssl_digest.as_ref()?;
    let v = digest.version.as_ref();
    Some(
        v.strip_prefix("TLSv")
            .map_or_else(|| v.to_string(), |n| n.replace('_', ".")),
    )
}

/// The port the client connected to.
fn server_port(session: &Session) -> Option<u16> {
    session
        .server_addr()
        .and_then(PingoraAddr::as_inet)
        .map(SocketAddr::port)
}

/// pingora pools upstream connections by peer hash; a per-session key keeps one agent's
/// streams from ever being handed to another's requests.
fn session_group_key(session_id: &str) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    session_id.hash(&mut h);
    h.finish()
}

impl EdgeProxy {
    fn conn_info(&self, session: &Session, ctx: &RequestCtx) -> ConnInfo {
        ConnInfo {
            client_addr: client_socket(session).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0))),
            server_port: server_port(session).unwrap_or(self.state.port_for(ctx.scheme)),
            start: SystemTime::now(),
            tls_version: ctx.tls_version.clone(),
        }
    }

    /// Answers an ACME HTTP-01 validation request for a token the edge's ACME client has
    /// pending. Returns `true` when it answered.
    async fn answer_acme_challenge(&self, session: &mut Session) -> pingora::Result<bool> {
        let Some(challenges) = &self.state.acme_challenges else {
            return Ok(false);
        };
        let Some(key_auth) = challenges.answer(session.req_header().uri.path()) else {
            return Ok(false);
        };
        let resp = http::Response::builder()
            .header("content-type", "application/octet-stream")
            .body(Bytes::from(key_auth))
            .map_err(|e| edge_error(ErrorCode::Internal, e.to_string()))?;
        policy_run::send(session, resp).await?;
        Ok(true)
    }

    /// The edge-wide auth host's start and callback paths, answered by the sign-in service
    /// (no agent holds that host). Returns `true` when it answered.
    async fn answer_auth_host(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let Some(login) = &self.state.auth_host else {
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
        let state = &self.state;
        let resp = login
            .answer_auth_host(asked, &|host| state.serves(host))
            .await;
        policy_run::send(session, resp).await?;
        Ok(true)
    }

    /// A plain-HTTP request for an https endpoint: 308 to the https URL when the operator asked
    /// for redirects, else the endpoint does not exist on http (404).
    async fn answer_wrong_scheme(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
    ) -> pingora::Result<bool> {
        if route.scheme == Scheme::Https && self.state.redirect_http {
            let host = Hostname::parse(&ctx.host)
                .map_err(|e| edge_error(ErrorCode::BadRequest, e.to_string()))?;
            let path = session
                .req_header()
                .uri
                .path_and_query()
                .map_or("/", |pq| pq.as_str());
            let location = format!("{}{path}", self.state.public_url(&host, Scheme::Https));
            let resp = http::Response::builder()
                .status(http::StatusCode::PERMANENT_REDIRECT)
                .header(http::header::LOCATION, location)
                .body(Bytes::new())
                .map_err(|e| edge_error(ErrorCode::BadRequest, e.to_string()))?;
            policy_run::send(session, resp).await?;
            return Ok(true);
        }
        self.answer_without_agent(session, ctx).await
    }

    /// Runs `engine`'s on_http_request on the client's request and keeps the run in `ctx` for
    /// the response phase. Returns `true` when the policy answered (the response is sent).
    async fn request_policy(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        engine: &Arc<Engine>,
        endpoint: &Arc<EndpointInfo>,
    ) -> pingora::Result<bool> {
        let conn = self.conn_info(session, ctx);
        ctx.endpoint = Some(endpoint.clone());
        let body = if engine.reads_request_body() {
            let Some(body) = request_body::read_whole(session).await? else {
                policy_run::send(session, body_too_large()).await?;
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
                policy_run::send(session, resp).await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// No agent holds the host: an operator policy for it may still answer (maintenance page,
    /// redirect); otherwise 404 `EndpointNotFound` (400 when there is no host at all).
    async fn answer_without_agent(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<bool> {
        let Ok(host) = Hostname::parse(&ctx.host) else {
            ctx.error_code = Some(ErrorCode::BadRequest);
            respond(session, ErrorCode::BadRequest).await?;
            return Ok(true);
        };
        let operator = self.state.operator.iter().find_map(|o| {
            o.engine
                .as_ref()
                .filter(|_| o.matches(&host))
                .map(|engine| (engine.clone(), o.endpoint.clone()))
        });
        if let Some((engine, endpoint)) = operator {
            if self
                .request_policy(session, ctx, &engine, &endpoint)
                .await?
            {
                return Ok(true);
            }
        }
        ctx.error_code = Some(ErrorCode::EndpointNotFound);
        respond(session, ErrorCode::EndpointNotFound).await?;
        Ok(true)
    }
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

/// An HTTP/2 request to the agent: no connection-specific headers, and `authority` in the URI
/// (pingora builds `:authority` from it, and requires one).
fn h2_to_agent(req: &mut RequestHeader, authority: &str) -> pingora::Result<()> {
    req.remove_header("connection");
    let path = req.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let uri = format!("http://{authority}{path}")
        .parse()
        .map_err(|_| edge_error(ErrorCode::BadRequest, "bad authority"))?;
    req.set_uri(uri);
    Ok(())
}

#[async_trait]
impl ProxyHttp for EdgeProxy {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        self.state.metrics.requests_in_flight.inc();
        RequestCtx {
            request_id: new_id("req"),
            route: None,
            error_code: None,
            span: Span::none(),
            started: Instant::now(),
            started_at: SystemTime::now(),
            host: String::new(),
            endpoint: None,
            policy: None,
            scheme: Scheme::Http,
            tls_version: None,
            agent_h2: false,
        }
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
        if let Err(code) = request_guard::check_head(session.req_header())
            .and_then(|()| request_guard::canonicalize_path(session.req_header_mut()))
        {
            ctx.error_code = Some(code);
            respond(session, code).await?;
            return Ok(true);
        }
        request_guard::strip_identity_headers(session.req_header_mut());
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
        if self.answer_acme_challenge(session).await? {
            return Ok(true);
        }
        if self.answer_auth_host(session, ctx).await? {
            return Ok(true);
        }
        let Some(route) = self.state.routes.lookup(&ctx.host) else {
            return self.answer_without_agent(session, ctx).await;
        };
        if route.scheme != ctx.scheme {
            return self.answer_wrong_scheme(session, ctx, &route).await;
        }
        // Kept even when the policy answers: the event names the endpoint and agent session.
        ctx.endpoint = Some(route.endpoint.clone());
        ctx.route = Some(route.clone());
        if let Some(engine) = &route.policy {
            if self
                .request_policy(session, ctx, engine, &route.endpoint)
                .await?
            {
                return Ok(true);
            }
        }
        ctx.agent_h2 = session.req_header().version == http::Version::HTTP_2;
        Ok(false)
    }

    async fn upstream_peer(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .clone()
            .ok_or_else(|| edge_error(ErrorCode::Internal, "upstream_peer without a route"))?;
        let client_addr = client_socket(session).unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
        let connector = AgentConnector {
            header: StreamHeader {
                endpoint_id: route.endpoint_id,
                request_id: ctx.request_id.clone(),
                client_addr,
                scheme: ctx.scheme,
            },
            session: route.session.clone(),
            open_timeout: self.state.stream_open_timeout,
            streams_open: self.state.metrics.quic_streams_open.clone(),
        };
        // The address is never dialled (custom_l4 opens a QUIC stream instead); it only names
        // the peer in pingora's logs.
        let mut peer = HttpPeer::new(SocketAddr::from(([127, 0, 0, 1], 0)), false, String::new());
        peer.group_key = session_group_key(&route.session.id);
        peer.options.custom_l4 = Some(Arc::new(connector));
        if ctx.agent_h2 {
            // HTTP/2 clients (gRPC) get HTTP/2 on the QUIC stream too: pingora drops HTTP/1.1
            // trailers, HTTP/2 carries them. A per-request key keeps pingora from reusing the
            // stream's h2 connection for another request (the agent also sends GOAWAY).
            peer.options.set_http_version(2, 2);
            peer.group_key = session_group_key(&ctx.request_id);
        }
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        let authority = ctx.agent_h2.then(|| request_authority(upstream_request));
        prepare_upstream_request(
            upstream_request,
            client_ip(session),
            ctx.scheme.as_str(),
            &ctx.host,
        )?;
        if let Some(authority) = authority {
            h2_to_agent(upstream_request, &authority.unwrap_or_default())?;
        }
        Ok(())
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<()> {
        if let Some(code) = sanitize_upstream_response(upstream_response)? {
            ctx.error_code = Some(code);
        }
        if let Some(run) = &mut ctx.policy {
            run.response(session.req_header_mut(), upstream_response)?;
        }
        Ok(())
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> pingora::Result<Option<Duration>> {
        if let Some(run) = &mut ctx.policy {
            run.body_chunk(body, end_of_stream);
        }
        Ok(None)
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
            if let Err(write_err) = respond(session, code).await {
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
        let label = self.state.endpoint_label(&ctx.host);
        let done = Completed::gather(session, e, ctx, label);
        if self.state.record_metrics {
            self.state.metrics.record(&done);
        }
        self.state.events.emit(&done);
        // The `log` action's metadata travels with the request's access event.
        let policy_logs = done
            .policy
            .map(|state| format!("{:?}", state.logs()))
            .unwrap_or_default();
        // A rule whose expression failed did not match: a deny rule then let the request
        // through, so the operator must be able to see it.
        let policy_errors = done
            .policy
            .map(|state| state.errors().join("; "))
            .unwrap_or_default();
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

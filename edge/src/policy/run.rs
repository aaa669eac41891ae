//! One request's traffic-policy evaluation inside pingora's phases: the engine, its
//! per-request state, and what happens to the request and response bodies.

use super::heads::{overwrite_head, PolicyRequest, PolicyResponse};
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use sluice_policy::{
    BodyTransform, ConnInfo, ConnectVerdict, ConnectionPhase, EndpointInfo, Engine, RequestState,
    RequestVerdict, ResponseVerdict,
};
use std::sync::{Arc, Mutex};

/// What the edge does to the upstream response body.
enum BodyRewrite {
    /// Pass it through.
    Keep,
    /// Stream it through a transform (response-body-find-replace, compress-response).
    Transform(Transform),
    /// Drop it and send this instead, once, at the end.
    Replace(Option<Bytes>),
}

/// A body transform kept in the request's context. The mutex only makes the context `Sync`
/// as pingora requires; it is never contended (`get_mut`).
type Transform = Mutex<Box<dyn BodyTransform + Send>>;

/// Feeds one chunk through `t`, leaving `None` when nothing is to be sent yet.
fn transform_chunk(t: &mut Transform, body: &mut Option<Bytes>, end_of_stream: bool) {
    let t = t.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
    let chunk = body.take().unwrap_or_default();
    let out = t.transform(&chunk, end_of_stream);
    *body = (!out.is_empty()).then_some(out);
}

/// The length of a rewritten body is unknown: HTTP/1.1 clients then need chunked framing
/// (pingora's HTTP/2 server drops the header and sends no length).
fn unknown_length(resp: &mut ResponseHeader) -> pingora::Result<()> {
    resp.remove_header("content-length");
    resp.insert_header("transfer-encoding", "chunked")?;
    Ok(())
}

/// A request's policy evaluation, created in `request_filter`.
pub struct PolicyRun {
    engine: Arc<Engine>,
    state: RequestState,
    body: BodyRewrite,
    /// request-body-find-replace's replacer for the body on its way to the agent.
    request_body: Option<Transform>,
    /// The response head as sent, while on_event_stream_message rewrites the body's events
    /// (the rules read `res.*`).
    event_stream: Option<ResponseHeader>,
}

impl PolicyRun {
    /// Runs on_http_request on the client's request (mutated in place, so the upstream sees the
    /// changes), with its whole `body` when the engine reads bodies; `forwarded_from` lists the
    /// URLs of the endpoints that forwarded the request here (empty for the public endpoint);
    /// `connection` is what on_tcp_connect left when the HTTPS port ran it on the request's
    /// connection (tcp/https.rs).
    /// Returns the run and the engine's verdict: go on, an answer, or a forward.
    pub async fn request(
        engine: &Arc<Engine>,
        conn: ConnInfo,
        endpoint: Arc<EndpointInfo>,
        req: &mut RequestHeader,
        body: Option<Bytes>,
        forwarded_from: Vec<String>,
        connection: Option<ConnectionPhase>,
    ) -> (Self, RequestVerdict) {
        let mut state = engine.new_request(conn, endpoint);
        if let Some(body) = body {
            state.set_request_body(body);
        }
        let public = forwarded_from.is_empty();
        if !public {
            state.set_forwarded_from(forwarded_from);
        }
        // on_tcp_connect of an HTTPS endpoint ran once on the connection, before its TLS
        // handshake; otherwise (HTTP, or a connection that reached this host through another
        // name) it runs before each request's on_http_request, on the same state (its
        // variables reach the request's rules). An internal endpoint gets forwarded requests,
        // never connections (refused at load, ngrok's 2262). forward-internal there names
        // tcp:// or tls:// targets, which an HTTP request cannot reach: the connection
        // closes, as for deny.
        let closed = match connection {
            Some(phase) => {
                state.resume_connection(&phase);
                false
            }
            None => {
                public
                    && engine.has_tcp_connect_rules()
                    && !matches!(
                        engine.on_tcp_connect_async(&mut state).await,
                        ConnectVerdict::Continue { .. }
                    )
            }
        };
        let verdict = if closed {
            RequestVerdict::Close
        } else {
            engine
                .on_http_request_async(&mut state, &mut PolicyRequest(req))
                .await
        };
        let request_body = state.take_request_body_transform().map(Mutex::new);
        let run = PolicyRun {
            engine: engine.clone(),
            state,
            body: BodyRewrite::Keep,
            request_body,
            event_stream: None,
        };
        (run, verdict)
    }

    /// Runs on_http_response on a whole response some later endpoint of a forward chain (or
    /// the edge) answered with, returning what the client gets from this endpoint.
    pub async fn pass_answer(
        &mut self,
        req: &mut RequestHeader,
        answer: http::Response<Bytes>,
    ) -> http::Response<Bytes> {
        let (mut parts, body) = answer.into_parts();
        let verdict = self
            .engine
            .on_http_response_async(&mut self.state, &PolicyRequest(req), &mut parts)
            .await;
        match verdict {
            ResponseVerdict::Replace(replacement) => replacement,
            ResponseVerdict::Continue => {
                let events = self.state.rewrites_event_stream();
                let body = if events {
                    let req = PolicyRequest(req);
                    self.engine
                        .on_event_stream(&mut self.state, &req, &parts, &body, true)
                } else {
                    body
                };
                let transform = self.state.take_body_transform();
                let changed = events || transform.is_some();
                let body = match transform {
                    Some(mut t) => t.transform(&body, true),
                    None => body,
                };
                if changed {
                    // The body is whole here: its new length is known.
                    parts.headers.insert(
                        http::header::CONTENT_LENGTH,
                        http::HeaderValue::from(body.len()),
                    );
                }
                http::Response::from_parts(parts, body)
            }
        }
    }

    /// Runs on_http_response on the upstream's response head, rewriting it in place and
    /// deciding what happens to the body.
    pub async fn response(
        &mut self,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<()> {
        let verdict = self
            .engine
            .on_http_response_async(
                &mut self.state,
                &PolicyRequest(req),
                &mut PolicyResponse(resp),
            )
            .await;
        match verdict {
            ResponseVerdict::Continue => {
                if self.state.rewrites_event_stream() {
                    unknown_length(resp)?;
                    self.event_stream = Some(resp.clone());
                }
                if let Some(transform) = self.state.take_body_transform() {
                    unknown_length(resp)?;
                    self.body = BodyRewrite::Transform(Mutex::new(transform));
                }
            }
            ResponseVerdict::Replace(replacement) => {
                let (parts, body) = replacement.into_parts();
                overwrite_head(resp, &parts, body.len())?;
                self.body = BodyRewrite::Replace(Some(body));
            }
        }
        Ok(())
    }

    /// Feeds one chunk of the client's request body through request-body-find-replace, if
    /// it applies.
    pub fn request_body_chunk(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        if let Some(t) = &mut self.request_body {
            transform_chunk(t, body, end_of_stream);
            if body.is_none() && !end_of_stream {
                // pingora takes `None` for the body's end: while the replacer holds the
                // chunk back, an empty one goes on instead (pingora skips it).
                *body = Some(Bytes::new());
            }
        }
    }

    /// Applies the body decision to one chunk of the upstream body: events rewritten by
    /// on_event_stream_message first (each complete event goes on at once), then the
    /// transforms (find-and-replace, compression). `req` is the request as the policy left it.
    pub fn body_chunk(
        &mut self,
        req: &mut RequestHeader,
        body: &mut Option<Bytes>,
        end_of_stream: bool,
    ) {
        if let Some(head) = &mut self.event_stream {
            let chunk = body.take().unwrap_or_default();
            let out = self.engine.on_event_stream(
                &mut self.state,
                &PolicyRequest(req),
                &PolicyResponse(head),
                &chunk,
                end_of_stream,
            );
            *body = (!out.is_empty()).then_some(out);
        }
        match &mut self.body {
            BodyRewrite::Keep => {}
            BodyRewrite::Transform(t) => transform_chunk(t, body, end_of_stream),
            BodyRewrite::Replace(replacement) => {
                *body = if end_of_stream {
                    replacement.take()
                } else {
                    None
                };
            }
        }
    }

    /// Reports the status the client got to the actions that wait for it (circuit-breaker);
    /// 0 when no response was written.
    pub fn finish(&mut self, status: u16) {
        self.state.finish(status);
    }

    /// The per-request state (logs, outcomes) for the access event.
    pub fn state(&self) -> &RequestState {
        &self.state
    }
}

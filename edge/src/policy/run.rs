//! One request's traffic-policy evaluation inside pingora's phases: the engine, its
//! per-request state, and what happens to the response body.

use super::heads::{overwrite_head, PolicyRequest, PolicyResponse};
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use sluice_policy::{
    BodyTransform, ConnInfo, EndpointInfo, Engine, RequestState, RequestVerdict, ResponseVerdict,
};
use std::sync::{Arc, Mutex};

/// What the edge does to the upstream response body.
enum BodyRewrite {
    /// Pass it through.
    Keep,
    /// Stream it through a transform (compress-response). The mutex only makes the context
    /// `Sync` as pingora requires; it is never contended (`get_mut`).
    Transform(Mutex<Box<dyn BodyTransform + Send>>),
    /// Drop it and send this instead, once, at the end.
    Replace(Option<Bytes>),
}

/// A request's policy evaluation, created in `request_filter`.
pub struct PolicyRun {
    engine: Arc<Engine>,
    state: RequestState,
    body: BodyRewrite,
}

impl PolicyRun {
    /// Runs on_http_request on the client's request (mutated in place, so the upstream sees the
    /// changes), with its whole `body` when the engine reads bodies; `forwarded_from` lists the
    /// URLs of the endpoints that forwarded the request here (empty for the public endpoint).
    /// Returns the run and the engine's verdict: go on, an answer, or a forward.
    pub async fn request(
        engine: &Arc<Engine>,
        conn: ConnInfo,
        endpoint: Arc<EndpointInfo>,
        req: &mut RequestHeader,
        body: Option<Bytes>,
        forwarded_from: Vec<String>,
    ) -> (Self, RequestVerdict) {
        let mut state = engine.new_request(conn, endpoint);
        if let Some(body) = body {
            state.set_request_body(body);
        }
        if !forwarded_from.is_empty() {
            state.set_forwarded_from(forwarded_from);
        }
        let verdict = engine
            .on_http_request_async(&mut state, &mut PolicyRequest(req))
            .await;
        let run = PolicyRun {
            engine: engine.clone(),
            state,
            body: BodyRewrite::Keep,
        };
        (run, verdict)
    }

    /// Runs on_http_response on a whole response some later endpoint of a forward chain (or
    /// the edge) answered with, returning what the client gets from this endpoint.
    pub fn pass_answer(
        &mut self,
        req: &mut RequestHeader,
        answer: http::Response<Bytes>,
    ) -> http::Response<Bytes> {
        let (mut parts, body) = answer.into_parts();
        let verdict =
            self.engine
                .on_http_response(&mut self.state, &PolicyRequest(req), &mut parts);
        match verdict {
            ResponseVerdict::Replace(replacement) => replacement,
            ResponseVerdict::Continue => {
                let body = match self.state.take_body_transform() {
                    Some(mut t) => t.transform(&body, true),
                    None => body,
                };
                http::Response::from_parts(parts, body)
            }
        }
    }

    /// Runs on_http_response on the upstream's response head, rewriting it in place and
    /// deciding what happens to the body.
    pub fn response(
        &mut self,
        req: &mut RequestHeader,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<()> {
        let verdict = self.engine.on_http_response(
            &mut self.state,
            &PolicyRequest(req),
            &mut PolicyResponse(resp),
        );
        match verdict {
            ResponseVerdict::Continue => {
                if let Some(transform) = self.state.take_body_transform() {
                    // The length changes; HTTP/1.1 clients then need chunked framing.
                    resp.remove_header("content-length");
                    resp.insert_header("transfer-encoding", "chunked")?;
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

    /// Applies the body decision to one chunk of the upstream body.
    pub fn body_chunk(&mut self, body: &mut Option<Bytes>, end_of_stream: bool) {
        match &mut self.body {
            BodyRewrite::Keep => {}
            BodyRewrite::Transform(t) => {
                let t = t.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner());
                let chunk = body.take().unwrap_or_default();
                let out = t.transform(&chunk, end_of_stream);
                *body = (!out.is_empty()).then_some(out);
            }
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

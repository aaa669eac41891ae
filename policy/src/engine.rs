//! The engine: ordered policy layers evaluated as one rule list per phase.

use crate::actions::{Exec, Flow, Msg};
use crate::head::{RequestHead, ResponseHead};
use crate::phase::Phase;
use crate::policy::Policy;
use crate::state::{Clock, ConnInfo, EndpointInfo, RequestState, SystemClock};
use crate::vars::Scope;
use bytes::Bytes;
use http::Response;
use std::sync::Arc;

/// What to do with a request after on_http_request.
#[derive(Debug)]
pub enum RequestVerdict {
    /// Proxy the (possibly modified) request to the upstream.
    Continue,
    /// Send this response instead; on_http_response rules have already run on it (and its body
    /// is already compressed if compress-response applied).
    Respond(Response<Bytes>),
}

/// What to do with a response after on_http_response.
#[derive(Debug)]
pub enum ResponseVerdict {
    /// Send the (possibly modified) upstream response; feed its body through
    /// [`RequestState::take_body_transform`] when that returns one.
    Continue,
    /// Discard the upstream response and send this one (complete, not to be transformed).
    Replace(Response<Bytes>),
}

/// Compiled policies evaluated as one ordered rule list: operator policy, then agent flags,
/// then the agent's file. Immutable apart from rate-limit buckets; share it as `Arc<Engine>`.
pub struct Engine {
    layers: Vec<Policy>,
    clock: Arc<dyn Clock>,
}

impl Engine {
    /// An engine over `layers`, in evaluation order, using the system clock.
    pub fn new(layers: Vec<Policy>) -> Self {
        Self {
            layers,
            clock: Arc::new(SystemClock),
        }
    }

    /// Replaces the clock (`time.now` and rate-limit windows), for tests and the dry run.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Policy] {
        &self.layers
    }

    /// Starts a request: its state carries the connection, the endpoint and the clock's now.
    pub fn new_request(&self, conn: ConnInfo, endpoint: Arc<EndpointInfo>) -> RequestState {
        RequestState::new(conn, endpoint, self.clock.now())
    }

    /// Runs on_http_request. On [`RequestVerdict::Respond`] the response phase has already run
    /// on the generated response, so the caller sends it as it is and skips the upstream.
    pub fn on_http_request<R: RequestHead>(&self, st: &mut RequestState, req: &mut R) -> RequestVerdict {
        self.request_dyn(st, req)
    }

    /// Runs on_http_response on the upstream's response; `req` is the request as it was sent
    /// upstream (after on_http_request's changes).
    pub fn on_http_response<Q: RequestHead, S: ResponseHead>(
        &self,
        st: &mut RequestState,
        req: &Q,
        res: &mut S,
    ) -> ResponseVerdict {
        self.response_dyn(st, req, res)
    }

    fn request_dyn(&self, st: &mut RequestState, req: &mut dyn RequestHead) -> RequestVerdict {
        let Some(generated) = self.run_phase(Phase::Request, st, &mut Msg::Req(req)) else {
            return RequestVerdict::Continue;
        };
        let (mut parts, body) = generated.into_parts();
        match self.response_dyn(st, req, &mut parts) {
            ResponseVerdict::Replace(r) => RequestVerdict::Respond(r),
            ResponseVerdict::Continue => {
                let body = match st.take_body_transform() {
                    Some(mut t) => t.transform(&body, true),
                    None => body,
                };
                RequestVerdict::Respond(Response::from_parts(parts, body))
            }
        }
    }

    fn response_dyn(&self, st: &mut RequestState, req: &dyn RequestHead, res: &mut dyn ResponseHead) -> ResponseVerdict {
        match self.run_phase(Phase::Response, st, &mut Msg::Res(req, res)) {
            None => ResponseVerdict::Continue,
            Some(r) => {
                st.body_transform = None;
                ResponseVerdict::Replace(r)
            }
        }
    }

    fn run_phase(&self, phase: Phase, st: &mut RequestState, msg: &mut Msg) -> Option<Response<Bytes>> {
        // Variables are scoped to the phase.
        st.vars.clear();
        for rule in self.layers.iter().flat_map(|l| l.rules(phase)) {
            let mut matched = true;
            for e in &rule.expressions {
                let scope = match &*msg {
                    Msg::Req(r) => Scope::new(&**r, None, st),
                    Msg::Res(q, r) => Scope::new(*q, Some(&**r), st),
                };
                let result = e.eval_bool(&scope);
                drop(scope);
                match result {
                    Ok(true) => {}
                    Ok(false) => {
                        st.trace_event(phase, &rule.label, || format!("skipped: `{}` is false", e.source()));
                        matched = false;
                        break;
                    }
                    Err(err) => {
                        let text = format!("`{}` failed: {err}", e.source());
                        st.trace_event(phase, &rule.label, || format!("skipped: {text}"));
                        st.errors.push(format!("{}: {text}", rule.label));
                        matched = false;
                        break;
                    }
                }
            }
            if !matched {
                continue;
            }
            st.trace_event(phase, &rule.label, || "matched".to_string());
            let mut ex = Exec {
                phase,
                rule: &rule.label,
                st: &mut *st,
                msg: &mut *msg,
            };
            for action in &rule.actions {
                if let Flow::Respond(r) = action.run(&mut ex) {
                    return Some(r);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_is_send_and_sync() {
        fn assert<T: Send + Sync>() {}
        assert::<Engine>();
        assert::<Policy>();
    }
}

//! An action at run time: the `Action` trait, the `Exec` it runs with, the `Flow` it answers.
//!
//! Shared by the registry, every action and the engine.

use crate::cel::template::Template;
use crate::cel::vars::Scope;
use crate::cel::wanted::Wanted;
use crate::codes;
use crate::forward::InternalUrl;
use crate::head::{empty_request, RequestHead, ResponseHead};
use crate::phase::Phase;
use crate::run::handshake::Handshake;
use crate::run::outcome::Decision;
use crate::run::services::Services;
use crate::run::sse::SseEvent;
use crate::run::state::RequestState;
use crate::tls::TerminateTls;
use bytes::Bytes;
use http::{HeaderMap, Method, Response, StatusCode};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A compiled action: immutable, shared by every request through the engine.
pub(crate) trait Action: fmt::Debug + Send + Sync {
    /// Runs the action on one request.
    fn run(&self, ex: &mut Exec) -> Flow;

    /// Whether the action reads the request body (the edge then buffers it first).
    fn reads_request_body(&self) -> bool {
        false
    }

    /// Whether the action can end on_http_request with an answer of its own, a forward or a
    /// closed connection (custom-response, deny, redirect, forward-internal,
    /// close-connection): a cloud endpoint, which has no upstream, needs at least one.
    fn can_answer(&self) -> bool {
        false
    }

    /// Whether the action finishes the client's TLS handshake (terminate-tls), which only a
    /// connection with TLS has: [`Policy::check_protocol`](crate::Policy::check_protocol)
    /// refuses it on `tcp://` and `http://` endpoints.
    fn terminates_tls(&self) -> bool {
        false
    }
}

/// What [`Wait`] returns: a future that finishes once the result is in the request state.
pub(crate) type WaitFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// Something an action waits for from the edge (a JWKS document, a sign-in verdict): given
/// the engine's services, it gets the answer and keeps it in the request state, where the
/// action finds it when the engine runs it again.
pub(crate) type Wait =
    Box<dyn for<'a> FnOnce(&'a Services, &'a mut RequestState) -> WaitFuture<'a> + Send>;

/// What running an action means for the rest of the phase.
pub(crate) enum Flow {
    /// Go on with the next action.
    Next,
    /// End the phase with this response (sent instead of calling the upstream, or replacing
    /// the upstream's response in on_http_response).
    Respond(Box<Response<Bytes>>),
    /// Suspend: the engine awaits this, then runs the action again.
    Wait(Wait),
    /// End on_http_request by handing the request to this internal endpoint
    /// (forward-internal).
    Forward(InternalUrl),
    /// End the request by closing the client's connection, with no response
    /// (close-connection).
    Close,
    /// Suspend on_tcp_connect while the edge finishes the client's TLS handshake with these
    /// settings (terminate-tls); the engine keeps what became of it in the state
    /// ([`Handshaken`](crate::run::handshake::Handshaken)) and runs the action again.
    Terminate(Arc<TerminateTls>),
}

impl Flow {
    /// Ends the phase with `res`.
    pub fn respond(res: Response<Bytes>) -> Self {
        Flow::Respond(Box::new(res))
    }

    /// Suspends the action until `wait` has put what it asked for in the request state.
    pub fn wait<W>(wait: W) -> Self
    where
        W: for<'a> FnOnce(&'a Services, &'a mut RequestState) -> WaitFuture<'a> + Send + 'static,
    {
        Flow::Wait(Box::new(wait))
    }
}

/// The message a phase works on.
pub(crate) enum Msg<'m> {
    /// on_tcp_connect: a connection, before any HTTP message, with the edge's side of its TLS
    /// handshake when terminate-tls can finish one there.
    Conn(Option<&'m mut dyn Handshake>),
    /// on_http_request: the request may be changed.
    Req(&'m mut dyn RequestHead),
    /// on_http_response: the request as it was sent, and the response that may be changed.
    Res(&'m dyn RequestHead, &'m mut dyn ResponseHead),
    /// on_event_stream_message: the request and response heads, and the event that may be
    /// changed.
    Event(&'m dyn RequestHead, &'m dyn ResponseHead, &'m mut SseEvent),
}

impl Msg<'_> {
    /// The variables of `st` with this message.
    pub fn scope<'s>(
        &'s self,
        st: &'s RequestState,
        results: &'static [&'static str],
    ) -> Scope<'s> {
        match self {
            Msg::Conn(_) => Scope::connection(st, results),
            Msg::Req(r) => Scope::new(&**r, None, st, results),
            Msg::Res(q, r) => Scope::new(*q, Some(&**r), st, results),
            Msg::Event(q, r, _) => Scope::new(*q, Some(*r), st, results),
        }
    }
}

/// What an action runs with.
pub(crate) struct Exec<'a, 'm> {
    pub phase: Phase,
    /// Which `actions.ngrok.<key>` results some expression of the engine reads.
    pub wanted: &'a Wanted,
    /// The result keys of every registered action, for the CEL variables.
    pub results: &'static [&'static str],
    pub rule: &'a str,
    pub st: &'a mut RequestState,
    pub msg: &'a mut Msg<'m>,
    /// The edge's services (empty in offline evaluation); only lookups that answer at once
    /// are made through them here, anything slower goes through [`Flow::wait`].
    pub services: &'a Services,
}

impl Exec<'_, '_> {
    /// The variables as they are now.
    pub fn scope(&self) -> Scope<'_> {
        self.msg.scope(self.st, self.results)
    }

    /// The request (read-only in on_http_response; an empty `GET /` in on_tcp_connect, where
    /// no action that reads it may appear).
    pub fn req(&self) -> &dyn RequestHead {
        match &*self.msg {
            Msg::Conn(_) => empty_request(),
            Msg::Req(r) => &**r,
            Msg::Res(q, _) | Msg::Event(q, _, _) => *q,
        }
    }

    /// Renders a template; a failure becomes the ERR_SLUICE_3900 response.
    pub fn render(&mut self, action: &'static str, t: &Template) -> Result<String, Flow> {
        let rendered = t.render(&self.scope());
        rendered.map_err(|e| {
            self.fail(
                action,
                codes::INTERPOLATION_FAILED,
                &format!("interpolation failed: {e}"),
            )
        })
    }

    /// Records an action's runtime failure and builds its 500 error response.
    pub fn fail(&mut self, action: &'static str, code: u32, message: &str) -> Flow {
        // The message may quote a value an expression computed from a secret.
        let message = &self.st.redact(message.to_string());
        self.st.push_error(format!("{action}: {message}"));
        self.record(action, Decision::Error, true);
        Flow::respond(codes::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            code,
            message,
        ))
    }

    /// Stores an action's results under `actions.ngrok.<key>`, building them only when some
    /// expression of the engine reads them.
    pub fn set_result(&mut self, key: &'static str, value: impl FnOnce() -> cel::Value) {
        if self.wants(key) {
            self.st.set_result(key, value());
        }
    }

    /// Whether some expression reads `actions.ngrok.<key>`.
    pub fn wants(&self, key: &str) -> bool {
        self.wanted.contains(key)
    }

    /// Records an action's decision (and traces it).
    pub fn record(&mut self, action: &'static str, decision: Decision, enforced: bool) {
        self.st.record(self.phase, action, decision, enforced);
        let note = if enforced { "" } else { " (not enforced)" };
        self.st.trace_event(self.phase, self.rule, || {
            format!("{action}: {decision:?}{note}")
        });
    }

    /// A failed check: the error response when enforced, else record-only.
    pub fn refuse(
        &mut self,
        action: &'static str,
        decision: Decision,
        enforce: bool,
        res: impl FnOnce() -> Response<Bytes>,
    ) -> Flow {
        self.record(action, decision, enforce);
        if enforce {
            Flow::respond(res())
        } else {
            Flow::Next
        }
    }
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub(crate) fn is_cors_preflight(method: &Method, headers: &HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key("origin")
        && headers.contains_key("access-control-request-method")
}

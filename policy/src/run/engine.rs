//! The engine: ordered policy layers evaluated as one rule list per phase.

use crate::actions::action::{Exec, Flow, Msg};
use crate::actions::result_keys;
use crate::cel::wanted::Wanted;
use crate::counters::RateLimitStore;
use crate::forward::{InternalEndpoints, InternalUrl};
use crate::head::{RequestHead, ResponseHead};
use crate::identity::Authenticator;
use crate::intel::EdgeFacts;
use crate::keys::KeySource;
use crate::load::parse::{Policy, Rule};
use crate::outbound::HttpCaller;
use crate::phase::Phase;
use crate::run::body::{encoded, untransformable};
use crate::run::facts::{Clock, ConnInfo, EndpointInfo, SystemClock};
use crate::run::handshake::{Handshake, Handshaken};
use crate::run::services::Services;
use crate::run::sse::{EventFramer, Piece, SseEvent};
use crate::run::state::RequestState;
use crate::secrets::{redact, Secret};
use crate::tls::TerminateTls;
use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE};
use http::Response;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

/// What to do with a request after on_http_request.
#[derive(Debug)]
pub enum RequestVerdict {
    /// Proxy the (possibly modified) request to the upstream.
    Continue,
    /// Send this response instead; on_http_response rules have already run on it (and its body
    /// is already compressed if compress-response applied).
    Respond(Response<Bytes>),
    /// Hand the (possibly modified) request to this internal endpoint (forward-internal): its
    /// own policy runs next, and its response comes back through this engine's
    /// on_http_response.
    Forward(InternalUrl),
    /// Close the client's connection without a response (close-connection); no response
    /// phase runs.
    Close,
}

/// What to do with a client connection after on_tcp_connect.
#[derive(Debug)]
pub enum ConnectVerdict {
    /// Go on: proxy the connection (TCP, TLS) or read HTTP from it. With `terminate_tls`, the
    /// edge terminates TLS with those settings first (the last terminate-tls that ran).
    Continue {
        /// terminate-tls's settings, when one ran.
        terminate_tls: Option<Arc<TerminateTls>>,
    },
    /// Close the connection without sending a byte: deny, close-connection, a refused
    /// restrict-ips, or an action that failed (a forward-internal that halts, an
    /// interpolation error; the reason is in [`RequestState::errors`] and the outcomes).
    Close,
    /// Hand the connection to this internal endpoint (forward-internal to a `tcp://` or
    /// `tls://` URL), whose own on_tcp_connect runs next.
    Forward(InternalUrl),
}

/// How a phase ended early.
enum End {
    /// With this response.
    Respond(Response<Bytes>),
    /// With a forward to an internal endpoint.
    Forward(InternalUrl),
    /// With the connection closed.
    Close,
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
    /// Which `actions.ngrok.<key>` results some expression of some layer reads.
    wanted: Wanted,
    clock: Arc<dyn Clock>,
    services: Services,
    facts: Option<Arc<EdgeFacts>>,
    /// Every layer's resolved secrets, for redaction.
    secrets: Arc<[Secret]>,
}

impl Engine {
    /// An engine over `layers`, in evaluation order, using the system clock.
    pub fn new(layers: Vec<Policy>) -> Self {
        Self {
            wanted: layers.iter().fold(Wanted::default(), |mut w, l| {
                w.merge(&l.wanted);
                w
            }),
            secrets: layers.iter().flat_map(|l| l.secrets.clone()).collect(),
            layers,
            clock: Arc::new(SystemClock),
            services: Services::default(),
            facts: None,
        }
    }

    /// Gives jwt-validation its signing keys (the edge's JWKS cache). Only
    /// [`Engine::on_http_request_async`] uses it; without one, keys are unavailable and
    /// tokens are refused.
    pub fn with_key_source(mut self, keys: Arc<dyn KeySource>) -> Self {
        self.services.keys = Some(keys);
        self
    }

    /// Gives oauth and openid-connect the edge's sign-in service. Only
    /// [`Engine::on_http_request_async`] uses it; without one, those actions answer 500
    /// `ERR_SLUICE_3245`.
    pub fn with_authenticator(mut self, login: Arc<dyn Authenticator>) -> Self {
        self.services.login = Some(login);
        self
    }

    /// Gives forward-internal the internal endpoints it may reach: the edge gives each
    /// endpoint's engine a view of its own namespace. Without one (offline evaluation), a
    /// forward to a well-formed URL is reported as it is, unchecked.
    pub fn with_internal_endpoints(mut self, internal: Arc<dyn InternalEndpoints>) -> Self {
        self.services.internal = Some(internal);
        self
    }

    /// Gives http-request the edge's outbound HTTP client. Only the `_async` phases use it;
    /// without one (offline evaluation), every call fails (`ERR_SLUICE_3605`) and the action's
    /// `on_error` decides what follows.
    pub fn with_http_caller(mut self, http: Arc<dyn HttpCaller>) -> Self {
        self.services.http = Some(http);
        self
    }

    /// Gives rate-limit a store its buckets live in, shared with other edges: each decision
    /// waits for one call to it. Only the `_async` phases use it; without one (a single edge,
    /// offline evaluation), each rate-limit action counts in its own memory.
    pub fn with_rate_limit_store(mut self, store: Arc<dyn RateLimitStore>) -> Self {
        self.services.rate_limits = Some(store);
        self
    }

    /// Gives the variables the edge answers (`conn.server_region`, `conn.geo.*`,
    /// `conn.client_ip.{geo,as,categories}`, `req.user_agent.*`). Compile the layers with
    /// [`Policy::parse_with`] and a [`LoadEnv`](crate::LoadEnv) carrying these facts'
    /// [`EdgeFacts::supplies`], so no policy reads a fact they lack. Without any, those variables are empty (the dry run).
    pub fn with_edge_facts(mut self, facts: Arc<EdgeFacts>) -> Self {
        self.facts = Some(facts);
        self
    }

    /// Replaces the clock (`time.now` and rate-limit windows), for tests and the dry run.
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Whether some layer's on_http_request reads the request body (verify-webhook): the
    /// caller then reads the whole body first and hands it over with
    /// [`RequestState::set_request_body`].
    pub fn reads_request_body(&self) -> bool {
        self.layers.iter().any(Policy::reads_request_body)
    }

    /// `text` with every secret the layers resolved replaced by `<secret>`: for output that
    /// shows what the policy made (the dry run's headers and bodies).
    pub fn redact(&self, text: String) -> String {
        redact(&self.secrets, text)
    }

    /// The layers, in order.
    pub fn layers(&self) -> &[Policy] {
        &self.layers
    }

    /// Starts a request: its state carries the connection, the endpoint (an `EndpointInfo`, or
    /// an `Arc` of one shared by the endpoint's requests to avoid copying) and the clock's now.
    pub fn new_request(
        &self,
        conn: ConnInfo,
        endpoint: impl Into<Arc<EndpointInfo>>,
    ) -> RequestState {
        let mut st = RequestState::new(
            conn,
            endpoint.into(),
            self.clock.now(),
            Arc::clone(&self.secrets),
        );
        st.facts.edge.clone_from(&self.facts);
        st
    }

    /// Whether some layer has on_tcp_connect rules: without any,
    /// [`Engine::on_tcp_connect_async`] always continues and the edge may skip it.
    pub fn has_tcp_connect_rules(&self) -> bool {
        self.layers
            .iter()
            .any(|l| !l.rules(Phase::TcpConnect).is_empty())
    }

    /// Runs on_tcp_connect on a new connection's state (before anything is read from the
    /// client), without the edge's services (forward-internal reports a well-formed target
    /// unchecked); the edge uses [`Engine::on_tcp_connect_async`]. The same state then goes
    /// on to on_http_request on HTTP endpoints: the variables set here are visible to every
    /// later phase, and the TLS facts the edge learns afterwards are given with
    /// [`RequestState::set_tls`].
    pub fn on_tcp_connect(&self, st: &mut RequestState) -> ConnectVerdict {
        ready(self.connect_dyn(st, &Services::default(), None))
    }

    /// [`Engine::on_tcp_connect`] with the edge's services: forward-internal checks its
    /// target in the endpoint's namespace. terminate-tls's settings come back in the verdict,
    /// for a handshake after the phase; [`Engine::on_tcp_connect_tls`] makes it in the phase.
    pub async fn on_tcp_connect_async(&self, st: &mut RequestState) -> ConnectVerdict {
        self.connect_dyn(st, &self.services, None).await
    }

    /// [`Engine::on_tcp_connect_async`] on a connection whose TLS handshake the edge has not
    /// finished: a terminate-tls that runs has `handshake` finish it with the action's
    /// settings, so the rules after it read `conn.tls.*` (and `actions.ngrok.terminate_tls`);
    /// a failed handshake closes the connection. The verdict's `terminate_tls` is then `None`.
    pub async fn on_tcp_connect_tls(
        &self,
        st: &mut RequestState,
        handshake: &mut dyn Handshake,
    ) -> ConnectVerdict {
        self.connect_dyn(st, &self.services, Some(handshake)).await
    }

    async fn connect_dyn(
        &self,
        st: &mut RequestState,
        services: &Services,
        handshake: Option<&mut dyn Handshake>,
    ) -> ConnectVerdict {
        let end = self
            .run_phase(Phase::TcpConnect, st, &mut Msg::Conn(handshake), services)
            .await;
        st.conn_vars.clone_from(&st.vars);
        match end {
            None => ConnectVerdict::Continue {
                terminate_tls: st.terminate_tls(),
            },
            Some(End::Forward(url)) => ConnectVerdict::Forward(url),
            // A connection has no response to send: deny, a refused check and a failure
            // all close it.
            Some(End::Respond(_) | End::Close) => ConnectVerdict::Close,
        }
    }

    /// Runs on_http_request. On [`RequestVerdict::Respond`] the response phase has already run
    /// on the generated response, so the caller sends it as it is and skips the upstream.
    /// Evaluates without the key source (jwt-validation then refuses every token); the edge
    /// uses [`Engine::on_http_request_async`].
    pub fn on_http_request<R: RequestHead>(
        &self,
        st: &mut RequestState,
        req: &mut R,
    ) -> RequestVerdict {
        ready(self.request_dyn(st, req, &Services::default()))
    }

    /// [`Engine::on_http_request`] with the key source and authenticator: may wait for JWKS
    /// documents and sign-in verdicts.
    pub async fn on_http_request_async<R: RequestHead>(
        &self,
        st: &mut RequestState,
        req: &mut R,
    ) -> RequestVerdict {
        self.request_dyn(st, req, &self.services).await
    }

    /// Runs on_http_response on the upstream's response; `req` is the request as it was sent
    /// upstream (after on_http_request's changes). Without the edge's services, as
    /// [`Engine::on_http_request`]; the edge uses [`Engine::on_http_response_async`].
    pub fn on_http_response<Q: RequestHead, S: ResponseHead>(
        &self,
        st: &mut RequestState,
        req: &Q,
        res: &mut S,
    ) -> ResponseVerdict {
        ready(self.response_dyn(st, req, res, &Services::default()))
    }

    /// [`Engine::on_http_response`] with the edge's services: http-request may call out.
    pub async fn on_http_response_async<Q: RequestHead, S: ResponseHead>(
        &self,
        st: &mut RequestState,
        req: &Q,
        res: &mut S,
    ) -> ResponseVerdict {
        self.response_dyn(st, req, res, &self.services).await
    }

    async fn request_dyn(
        &self,
        st: &mut RequestState,
        req: &mut dyn RequestHead,
        services: &Services,
    ) -> RequestVerdict {
        let generated = match self
            .run_phase(Phase::Request, st, &mut Msg::Req(req), services)
            .await
        {
            None => return RequestVerdict::Continue,
            Some(End::Forward(url)) => return RequestVerdict::Forward(url),
            Some(End::Close) => return RequestVerdict::Close,
            Some(End::Respond(generated)) => generated,
        };
        let (mut parts, body) = generated.into_parts();
        match self.response_dyn(st, req, &mut parts, services).await {
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

    async fn response_dyn(
        &self,
        st: &mut RequestState,
        req: &dyn RequestHead,
        res: &mut dyn ResponseHead,
        services: &Services,
    ) -> ResponseVerdict {
        // A renewed session cookie rides on whatever response the client gets.
        for (name, value) in st.response_headers.drain(..) {
            res.append_header(name, value);
        }
        match self
            .run_phase(Phase::Response, st, &mut Msg::Res(req, res), services)
            .await
        {
            // forward-internal and close-connection compile only into on_http_request.
            None | Some(End::Forward(_) | End::Close) => {
                self.start_event_stream(st, req, res);
                ResponseVerdict::Continue
            }
            Some(End::Respond(r)) => {
                st.clear_response_transforms();
                ResponseVerdict::Replace(r)
            }
        }
    }

    /// Whether some layer has on_event_stream_message rules.
    fn has_event_stream_rules(&self) -> bool {
        self.layers
            .iter()
            .any(|l| !l.rules(Phase::EventStream).is_empty())
    }

    /// After on_http_response let a `text/event-stream` response through: with
    /// on_event_stream_message rules, its events are rewritten as they stream, so its length
    /// is no longer known. An event stream the upstream compressed passes unchanged (the
    /// events cannot be read without decoding it), and the trace says so.
    fn start_event_stream(
        &self,
        st: &mut RequestState,
        req: &dyn RequestHead,
        res: &mut dyn ResponseHead,
    ) {
        let is_stream = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("text/event-stream")
            });
        if !is_stream || !self.has_event_stream_rules() {
            return;
        }
        let skip = untransformable(req.method(), res).or_else(|| {
            (encoded(res.headers()) && st.compression().is_none())
                .then_some("the upstream compressed the stream")
        });
        if let Some(why) = skip {
            st.trace_event(Phase::EventStream, "event stream", || {
                format!("not rewritten: {why}")
            });
            return;
        }
        res.remove_header(&CONTENT_LENGTH);
        st.event_stream = Some(EventFramer::default());
    }

    /// Runs on_event_stream_message on every event of an event stream that
    /// [`RequestState::rewrites_event_stream`] says is rewritten: feed it each chunk of the
    /// body as it arrives (`end` with the last); every event complete in it comes back
    /// rewritten at once, so a client sees each event before the upstream sends the next.
    /// `req` and `res` are the request as sent upstream and the response head as sent to
    /// the client (for the rules' variables). Without a rewritten stream, `chunk` comes back
    /// as it is.
    pub fn on_event_stream<Q: RequestHead, S: ResponseHead>(
        &self,
        st: &mut RequestState,
        req: &Q,
        res: &S,
        chunk: &[u8],
        end: bool,
    ) -> Bytes {
        let Some(mut framer) = st.event_stream.take() else {
            return Bytes::copy_from_slice(chunk);
        };
        let mut out = Vec::with_capacity(chunk.len());
        for piece in framer.push(chunk, end) {
            match piece {
                Piece::Raw(raw) => out.extend_from_slice(&raw),
                Piece::Event(raw) => {
                    let mut event = SseEvent::new(raw);
                    if event.has_fields() {
                        let offline = Services::default();
                        let mut msg = Msg::Event(req, res, &mut event);
                        // An action's failure is recorded in the state; the event goes on
                        // as far as it was rewritten.
                        let _ = ready(self.run_phase(Phase::EventStream, st, &mut msg, &offline));
                    }
                    out.extend_from_slice(&event.into_bytes());
                }
            }
        }
        st.event_stream = Some(framer);
        Bytes::from(out)
    }

    /// Whether every expression of `rule` is true (errors are recorded and count as false).
    fn rule_matches(&self, phase: Phase, rule: &Rule, st: &mut RequestState, msg: &Msg) -> bool {
        for e in &rule.expressions {
            let scope = msg.scope(st, result_keys());
            let result = e.eval_bool(&scope);
            drop(scope);
            match result {
                Ok(true) => {}
                Ok(false) => {
                    st.trace_event(phase, &rule.label, || {
                        format!("skipped: `{}` is false", e.source())
                    });
                    return false;
                }
                Err(err) => {
                    let text = format!("`{}` failed: {err}", e.source());
                    st.trace_event(phase, &rule.label, || format!("skipped: {text}"));
                    st.push_error(format!("{}: {text}", rule.label));
                    return false;
                }
            }
        }
        true
    }

    /// Runs a phase's matching rules. Only an action that needs something from the edge (a
    /// JWKS document, a sign-in verdict) waits: the engine awaits its [`Flow::Wait`] with
    /// `services`, which keeps the answer in the request state, and runs the action again.
    async fn run_phase(
        &self,
        phase: Phase,
        st: &mut RequestState,
        msg: &mut Msg<'_>,
        services: &Services,
    ) -> Option<End> {
        // Variables are scoped to the phase, apart from those of on_tcp_connect, which the
        // connection's later phases start with.
        st.vars.clone_from(&st.conn_vars);
        for rule in self.layers.iter().flat_map(|l| l.rules(phase)) {
            if !self.rule_matches(phase, rule, st, msg) {
                continue;
            }
            st.trace_event(phase, &rule.label, || "matched".to_string());
            for action in &rule.actions {
                loop {
                    let mut ex = Exec {
                        phase,
                        wanted: &self.wanted,
                        results: result_keys(),
                        rule: &rule.label,
                        st: &mut *st,
                        msg: &mut *msg,
                        services,
                    };
                    match action.run(&mut ex) {
                        Flow::Next => break,
                        Flow::Respond(r) => return Some(End::Respond(*r)),
                        Flow::Forward(url) => return Some(End::Forward(url)),
                        Flow::Close => return Some(End::Close),
                        Flow::Wait(wait) => wait(services, st).await,
                        Flow::Terminate(settings) => {
                            let done = handshake(msg, &settings, st).await;
                            st.scratch.put(done);
                        }
                    }
                }
            }
        }
        None
    }
}

/// terminate-tls's handshake, made by the edge's side of it when the phase has one (on
/// on_tcp_connect of a connection whose handshake is still to make); deferred otherwise.
async fn handshake(
    msg: &mut Msg<'_>,
    settings: &TerminateTls,
    st: &mut RequestState,
) -> Handshaken {
    let Msg::Conn(Some(handshake)) = msg else {
        return Handshaken::Deferred;
    };
    match handshake.terminate(settings).await {
        Ok(tls) => {
            st.set_tls(tls);
            Handshaken::Done
        }
        Err(why) => Handshaken::Failed(why),
    }
}

/// The output of a future that never waits (a phase evaluated without the edge's services).
pub(crate) fn ready<F: Future>(fut: F) -> F::Output {
    let mut fut = std::pin::pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        // Without a key source nothing in a phase returns Pending; the loop only guards
        // against a future change that would.
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
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

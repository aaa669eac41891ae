//! The engine: ordered policy layers evaluated as one rule list per phase.

use crate::actions::{Exec, Flow, Msg};
use crate::cel::vars::Scope;
use crate::head::{RequestHead, ResponseHead};
use crate::identity::{Authenticator, LoginOutcome, Services};
use crate::keys::{KeyError, KeySource};
use crate::load::parse::Policy;
use crate::phase::Phase;
use crate::run::state::{Clock, ConnInfo, EndpointInfo, RequestState, SystemClock};
use bytes::Bytes;
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
    wanted_results: u32,
    clock: Arc<dyn Clock>,
    services: Services,
}

impl Engine {
    /// An engine over `layers`, in evaluation order, using the system clock.
    pub fn new(layers: Vec<Policy>) -> Self {
        Self {
            wanted_results: layers.iter().fold(0, |m, l| m | l.wanted_results),
            layers,
            clock: Arc::new(SystemClock),
            services: Services::default(),
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
        RequestState::new(conn, endpoint.into(), self.clock.now())
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
        ready(self.request_dyn(st, req, None))
    }

    /// [`Engine::on_http_request`] with the key source and authenticator: may wait for JWKS
    /// documents and sign-in verdicts.
    pub async fn on_http_request_async<R: RequestHead>(
        &self,
        st: &mut RequestState,
        req: &mut R,
    ) -> RequestVerdict {
        self.request_dyn(st, req, Some(&self.services)).await
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

    async fn request_dyn(
        &self,
        st: &mut RequestState,
        req: &mut dyn RequestHead,
        services: Option<&Services>,
    ) -> RequestVerdict {
        let generated = self
            .run_phase(Phase::Request, st, &mut Msg::Req(req), services)
            .await;
        let Some(generated) = generated else {
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

    fn response_dyn(
        &self,
        st: &mut RequestState,
        req: &dyn RequestHead,
        res: &mut dyn ResponseHead,
    ) -> ResponseVerdict {
        // A renewed session cookie rides on whatever response the client gets.
        for cookie in st.response_cookies.drain(..) {
            res.append_header(http::header::SET_COOKIE, cookie);
        }
        // No response-phase action waits for keys, so this completes on the first poll.
        match ready(self.run_phase(Phase::Response, st, &mut Msg::Res(req, res), None)) {
            None => ResponseVerdict::Continue,
            Some(r) => {
                st.body_transform = None;
                ResponseVerdict::Replace(r)
            }
        }
    }

    /// Whether every expression of `rule` is true (errors are recorded and count as false).
    fn rule_matches(
        &self,
        phase: Phase,
        rule: &crate::load::parse::Rule,
        st: &mut RequestState,
        msg: &Msg,
    ) -> bool {
        for e in &rule.expressions {
            let scope = match msg {
                Msg::Req(r) => Scope::new(&**r, None, st),
                Msg::Res(q, r) => Scope::new(*q, Some(&**r), st),
            };
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
                    st.errors.push(format!("{}: {text}", rule.label));
                    return false;
                }
            }
        }
        true
    }

    /// Runs a phase's matching rules. Only an action that needs a JWKS document or a sign-in
    /// verdict waits: the engine asks `services` and runs that action again.
    async fn run_phase(
        &self,
        phase: Phase,
        st: &mut RequestState,
        msg: &mut Msg<'_>,
        services: Option<&Services>,
    ) -> Option<Response<Bytes>> {
        // Variables are scoped to the phase.
        st.vars.clear();
        for rule in self.layers.iter().flat_map(|l| l.rules(phase)) {
            if !self.rule_matches(phase, rule, st, msg) {
                continue;
            }
            st.trace_event(phase, &rule.label, || "matched".to_string());
            for action in &rule.actions {
                loop {
                    let mut ex = Exec {
                        phase,
                        wanted_results: self.wanted_results,
                        rule: &rule.label,
                        st: &mut *st,
                        msg: &mut *msg,
                    };
                    match action.run(&mut ex) {
                        Flow::Next => break,
                        Flow::Respond(r) => return Some(*r),
                        Flow::NeedKeys { url, refresh } => {
                            let got = match services.and_then(|s| s.keys.as_deref()) {
                                Some(k) => k.key_set(&url, refresh).await,
                                None => Err(KeyError {
                                    url: url.clone(),
                                    reason: "no key source in offline evaluation".into(),
                                }),
                            };
                            st.store_keys(url, refresh, got);
                        }
                        Flow::NeedLogin(ask) => {
                            let outcome = match services.and_then(|s| s.login.as_deref()) {
                                Some(a) => a.login(&ask).await,
                                None => LoginOutcome::Respond(crate::codes::error_response(
                                    http::StatusCode::INTERNAL_SERVER_ERROR,
                                    crate::codes::LOGIN_UNAVAILABLE,
                                    "sign-in needs the edge (not available in offline evaluation)",
                                )),
                            };
                            st.login_outcome = Some(outcome);
                        }
                    }
                }
            }
        }
        None
    }
}

/// The output of a future that never waits (a phase evaluated without a key source).
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

#[cfg(test)]
mod eval_tests {
    use crate::testutil::*;
    use crate::Decision;

    #[test]
    fn expressions_select_rules_and_vars_flow_between_rules() {
        let e = engine(
            r#"
on_http_request:
  - expressions: ["req.method == 'POST'", "req.url.path.startsWith('/api')"]
    actions:
      - type: set-vars
        config:
          vars:
            - kind: api
            - n: "${size(req.headers)}"
  - expressions: ["vars.kind == 'api' && vars.n > 0"]
    actions:
      - type: custom-response
        config: {status_code: 418, body: "${vars.kind} ${req.method} ${conn.client_ip} ${endpoint.host}"}
"#,
        );
        let o = run(&e, req("POST /api/x", &[]), "10.1.2.3");
        assert_eq!(o.res.status(), 418);
        assert_eq!(o.res.body().as_ref(), b"api POST 10.1.2.3 app.example.com");
        let o = run(&e, req("GET /api/x", &[]), "10.1.2.3");
        assert!(o.forwarded);
    }

    #[test]
    fn functions_and_regexes_work() {
        let e = engine(
            r#"
on_http_request:
  - expressions:
      - "hasReqHeader('X-Api-Key') && getReqHeader('x-api-key')[0].lower() == 'abc'"
      - "req.url.path.matches('^/v[0-9]+/')"
      - "inCidrRange(conn.client_ip, '10.0.0.0/8') && conn.client_ip.isPrivateIp()"
      - "inCidrRanges(conn.client_ip, ['bogus', '10.1.0.0/16'])"
      - "hasQueryParam('debug') && getQueryParam('debug') == ['1']"
      - "base64.decode(base64.encode('hi')) == 'hi' && basic_auth.encode('a', 'b') == 'Basic YTpi'"
      - "'  x '.trim().upper() == 'X'"
      - "req.cookies['sid'][0].value == 's1' && hasReqCookie('sid')"
      - "req.url.query_params['debug'] == ['1'] && !has(req.url.query_params.nodebug)"
    actions:
      - type: deny
        config: {status_code: 451}
"#,
        );
        let headers = [("x-api-key", "ABC"), ("cookie", "sid=s1; other=2")];
        let o = run(&e, req("GET /v2/things?debug=1", &headers), "10.1.2.3");
        assert_eq!(o.res.status(), 451, "{:?}", o.st.errors());
        let o = run(&e, req("GET /things?debug=1", &headers), "10.1.2.3");
        assert!(o.forwarded);
    }

    #[test]
    fn evaluation_errors_skip_the_rule_and_are_recorded() {
        let e = engine("on_http_request:\n  - expressions: [\"req.headers['missing'][0] == 'x'\"]\n    actions: [{type: deny}]\n");
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert!(o.forwarded);
        assert_eq!(o.st.errors().len(), 1);
        assert!(o
            .st
            .trace()
            .unwrap()
            .iter()
            .any(|t| t.event.starts_with("skipped")));
    }

    #[test]
    fn response_rules_run_on_generated_responses() {
        let e = engine(
            r#"
on_http_request:
  - actions: [{type: custom-response, config: {status_code: 503, body: "down"}}]
on_http_response:
  - expressions: ["res.status_code == 503"]
    actions: [{type: add-headers, config: {headers: {x-maintenance: "yes"}}}]
"#,
        );
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert!(!o.forwarded);
        assert_eq!(header(&o.res, "x-maintenance"), Some("yes"));
        assert_eq!(o.st.outcomes().last().unwrap().decision, Decision::Modify);
    }

    #[test]
    fn generated_responses_are_compressed_by_response_rules() {
        let e = engine(
            "on_http_request: [{actions: [{type: custom-response, config: {body: '${\"x\".size()} hello hello hello hello'}}]}]\n\
             on_http_response: [{actions: [{type: compress-response, config: {algorithms: [gzip]}}]}]",
        );
        let o = run(&e, req("GET /", &[("accept-encoding", "gzip")]), "1.1.1.1");
        assert_eq!(header(&o.res, "content-encoding"), Some("gzip"));
        let mut s = String::new();
        std::io::Read::read_to_string(
            &mut flate2::read::GzDecoder::new(o.res.body().as_ref()),
            &mut s,
        )
        .unwrap();
        assert_eq!(s, "1 hello hello hello hello");
    }

    #[test]
    fn layers_are_one_rule_list() {
        let a = crate::Policy::parse(
            "on_http_request: [{actions: [{type: set-vars, config: {vars: [{who: op}]}}]}]",
            "op.yml",
        )
        .unwrap();
        let b = crate::Policy::parse(
            "on_http_request: [{expressions: [\"vars.who == 'op'\"], actions: [{type: deny}]}]",
            "agent.yml",
        )
        .unwrap();
        let e = crate::Engine::new(vec![a, b]);
        assert_eq!(run(&e, req("GET /", &[]), "1.1.1.1").res.status(), 403);
    }

    #[test]
    fn time_and_conn_variables() {
        let e = engine(
            r#"
on_http_request:
  - expressions: ["time.now == '2027-01-15T08:00:00Z'", "conn.tls.version == '1.3'", "conn.ts.start < timestamp('2030-01-01T00:00:00Z')", "req.url.scheme == 'https'", "req.url.port == 443"]
    actions: [{type: deny}]
"#,
        )
        .with_clock(std::sync::Arc::new(TestClock::default()));
        let o = run(&e, req("GET /", &[]), "1.1.1.1");
        assert_eq!(o.res.status(), 403, "{:?}", o.st.errors());
    }
}

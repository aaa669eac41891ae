//! Per-request state: connection facts, variables, action results, logs, outcomes and trace.
//!
//! The state knows no particular action: an action keeps its own per-request data in
//! [`RequestState::scratch`] under a type of its own, and the accessors that report one
//! action's decision (`basic_auth()`, `login()`, `compression()`, ...) live in that action's
//! file under `actions/`.

use crate::intel::FactCache;
use crate::phase::Phase;
use crate::run::body::{BodyTransform, Chain};
use crate::run::facts::{canonical_ip, ConnInfo, EndpointInfo, TlsInfo};
use crate::run::outcome::{ActionOutcome, Decision, TraceEntry};
use crate::run::scratch::Scratch;
use crate::run::sse::EventFramer;
use crate::secrets::{redact, Secret};
use bytes::Bytes;
use cel::Value;
use http::{HeaderName, HeaderValue};
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

/// The state of one request as the engine runs its phases; create it with
/// [`Engine::new_request`](crate::Engine::new_request).
pub struct RequestState {
    pub(crate) conn: ConnInfo,
    pub(crate) client_ip: IpAddr,
    pub(crate) client_ip_text: String,
    pub(crate) endpoint: Arc<EndpointInfo>,
    pub(crate) now: SystemTime,
    pub(crate) vars: BTreeMap<String, Value>,
    /// The variables on_tcp_connect set: every later phase on this state starts with them.
    pub(crate) conn_vars: BTreeMap<String, Value>,
    pub(crate) results: Vec<(&'static str, Value)>,
    /// Names only one expression sees, set while it is evaluated (http-request's
    /// `retry_condition` reads `attempts` and `last_attempt`); see `Names::locals`.
    pub(crate) locals: Vec<(&'static str, Value)>,
    pub(crate) logs: Vec<BTreeMap<String, String>>,
    pub(crate) outcomes: Vec<ActionOutcome>,
    pub(crate) trace: Option<Vec<TraceEntry>>,
    pub(crate) errors: Vec<String>,
    /// compress-response's encoder: the last transform of the response body.
    pub(crate) body_transform: Option<Box<dyn BodyTransform + Send + Sync>>,
    /// response-body-find-replace's replacers, in the order they ran, before the encoder.
    pub(crate) response_replacers: Vec<Box<dyn BodyTransform + Send + Sync>>,
    /// request-body-find-replace's replacers, in the order they ran.
    pub(crate) request_replacers: Vec<Box<dyn BodyTransform + Send + Sync>>,
    /// The event stream on_event_stream_message rewrites, when the response is one.
    pub(crate) event_stream: Option<EventFramer>,
    pub(crate) request_body: Option<Bytes>,
    /// Headers whatever response the client gets carries (a renewed session cookie).
    pub(crate) response_headers: Vec<(HeaderName, HeaderValue)>,
    /// The actions' own per-request data.
    pub(crate) scratch: Scratch,
    /// The edge's facts about this request, looked up when first read.
    pub(crate) facts: FactCache,
    /// The engine's resolved secrets, redacted from logs, errors and the trace.
    pub(crate) secrets: Arc<[Secret]>,
}

/// What on_tcp_connect left for a connection's requests; see
/// [`RequestState::connection_phase`].
#[derive(Clone, Debug)]
pub struct ConnectionPhase {
    vars: BTreeMap<String, Value>,
    tls: TlsInfo,
    results: Vec<(&'static str, Value)>,
}

impl RequestState {
    pub(crate) fn new(
        conn: ConnInfo,
        endpoint: Arc<EndpointInfo>,
        now: SystemTime,
        secrets: Arc<[Secret]>,
    ) -> Self {
        let client_ip = canonical_ip(conn.client_addr.ip());
        Self {
            client_ip,
            client_ip_text: client_ip.to_string(),
            conn,
            endpoint,
            now,
            vars: BTreeMap::new(),
            conn_vars: BTreeMap::new(),
            results: Vec::new(),
            locals: Vec::new(),
            logs: Vec::new(),
            outcomes: Vec::new(),
            trace: None,
            errors: Vec::new(),
            body_transform: None,
            response_replacers: Vec::new(),
            request_replacers: Vec::new(),
            event_stream: None,
            request_body: None,
            response_headers: Vec::new(),
            scratch: Scratch::default(),
            facts: FactCache::default(),
            secrets,
        }
    }

    /// `text` with the policy's secrets replaced by `<secret>`.
    pub(crate) fn redact(&self, text: String) -> String {
        redact(&self.secrets, text)
    }

    /// Records a runtime problem (redacted).
    pub(crate) fn push_error(&mut self, error: String) {
        let error = self.redact(error);
        self.errors.push(error);
    }

    /// Records a `log` action's metadata (values redacted).
    pub(crate) fn push_log(&mut self, mut entry: BTreeMap<String, String>) {
        for v in entry.values_mut() {
            *v = self.redact(std::mem::take(v));
        }
        self.logs.push(entry);
    }

    /// When the request arrived, in milliseconds since the Unix epoch (the clock windows and
    /// breakers count with).
    pub(crate) fn now_ms(&self) -> u64 {
        self.now
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64)
    }

    /// Turns on the trace for this request (the dry run does; the edge may per request).
    pub fn enable_trace(&mut self) {
        self.trace.get_or_insert_with(Vec::new);
    }

    /// The trace, when enabled.
    pub fn trace(&self) -> Option<&[TraceEntry]> {
        self.trace.as_deref()
    }

    /// The `log` actions' metadata, in order: `traffic_policy.logs` of the request's log event.
    pub fn logs(&self) -> &[BTreeMap<String, String>] {
        &self.logs
    }

    /// Every action run, with its decision.
    pub fn outcomes(&self) -> &[ActionOutcome] {
        &self.outcomes
    }

    /// Gives the engine the complete request body, for actions that read it (see
    /// [`Engine::reads_request_body`](crate::Engine::reads_request_body)); call it before
    /// `on_http_request`. Without it they see an empty body.
    pub fn set_request_body(&mut self, body: Bytes) {
        self.request_body = Some(body);
    }

    /// Gives the connection's TLS facts once the edge knows them (after terminating TLS,
    /// between [`Engine::on_tcp_connect`](crate::Engine::on_tcp_connect) and
    /// `on_http_request`): later phases read them as `conn.tls.*`.
    pub fn set_tls(&mut self, tls: TlsInfo) {
        self.conn.tls = tls;
    }

    /// What on_tcp_connect left on this connection's state, for its requests when the edge
    /// runs the phase once per connection: the variables it set, the TLS facts (terminate-tls
    /// made the handshake) and the actions' results.
    pub fn connection_phase(&self) -> ConnectionPhase {
        ConnectionPhase {
            vars: self.conn_vars.clone(),
            tls: self.conn.tls.clone(),
            results: self.results.clone(),
        }
    }

    /// Starts a request's state from what its connection's on_tcp_connect left (see
    /// [`RequestState::connection_phase`]): later phases see it as if the phase had run on
    /// this state, so the edge does not run it again.
    pub fn resume_connection(&mut self, phase: &ConnectionPhase) {
        self.conn_vars.clone_from(&phase.vars);
        self.conn.tls = phase.tls.clone();
        self.results.clone_from(&phase.results);
    }

    /// Updates `conn.bytes_in` / `conn.bytes_out` (bytes from and to the client so far).
    pub fn set_byte_counts(&mut self, bytes_in: u64, bytes_out: u64) {
        self.conn.bytes_in = bytes_in;
        self.conn.bytes_out = bytes_out;
    }

    /// The connection facts the engine evaluates with.
    pub fn conn(&self) -> &ConnInfo {
        &self.conn
    }

    /// Runtime problems (expressions that failed to evaluate); such a rule does not match.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Takes the streaming response-body transformer, for the edge to feed the response body
    /// through chunk by chunk: response-body-find-replace's replacements in the order they
    /// ran, then compress-response's encoder (so the replacements see the plain body).
    pub fn take_body_transform(&mut self) -> Option<Box<dyn BodyTransform + Send>> {
        let mut stages = std::mem::take(&mut self.response_replacers);
        stages.extend(self.body_transform.take());
        chained(stages)
    }

    /// Takes the streaming request-body transformer (request-body-find-replace), for the edge
    /// to feed the request body through on its way upstream. The edge drops the request's
    /// `content-length` when there is one, since the length changes.
    pub fn take_request_body_transform(&mut self) -> Option<Box<dyn BodyTransform + Send>> {
        chained(std::mem::take(&mut self.request_replacers))
    }

    /// Forgets the response-body transforms (the response was replaced by a whole one).
    pub(crate) fn clear_response_transforms(&mut self) {
        self.body_transform = None;
        self.response_replacers.clear();
        self.event_stream = None;
    }

    /// Whether on_event_stream_message rewrites this response's body event by event: the
    /// edge then feeds it through [`Engine::on_event_stream`](crate::Engine::on_event_stream)
    /// before any other transform.
    pub fn rewrites_event_stream(&self) -> bool {
        self.event_stream.is_some()
    }

    /// The decision of the last action of type `action` run on this request.
    pub(crate) fn last_outcome(&self, action: &str) -> Option<Decision> {
        self.last_outcome_of(&[action]).map(|o| o.decision)
    }

    /// The last outcome of an action of one of the `types`.
    pub(crate) fn last_outcome_of(&self, types: &[&str]) -> Option<&ActionOutcome> {
        self.outcomes
            .iter()
            .rev()
            .find(|o| types.contains(&o.action))
    }

    pub(crate) fn record(
        &mut self,
        phase: Phase,
        action: &'static str,
        decision: Decision,
        enforced: bool,
    ) {
        self.outcomes.push(ActionOutcome {
            phase,
            action,
            decision,
            enforced,
        });
    }

    pub(crate) fn trace_event(&mut self, phase: Phase, rule: &str, event: impl FnOnce() -> String) {
        if self.trace.is_some() {
            let event = self.redact(event());
            if let Some(t) = &mut self.trace {
                t.push(TraceEntry {
                    phase,
                    rule: rule.to_string(),
                    event,
                });
            }
        }
    }

    /// Stores an action's results under `actions.ngrok.<key>`.
    pub(crate) fn set_result(&mut self, key: &'static str, value: Value) {
        if let Some(slot) = self.results.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.results.push((key, value));
        }
    }
}

/// One transform of `stages`, none when empty.
fn chained(
    mut stages: Vec<Box<dyn BodyTransform + Send + Sync>>,
) -> Option<Box<dyn BodyTransform + Send>> {
    match stages.len() {
        0 => None,
        1 => stages.pop().map(|t| t as Box<dyn BodyTransform + Send>),
        _ => Some(Box::new(Chain(stages))),
    }
}

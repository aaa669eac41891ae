//! Per-request state: connection facts, variables, action results, logs, outcomes and trace.

use crate::actions::compress_response::encoders::BodyTransform;
use crate::phase::Phase;
use cel::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

/// Facts about the client connection, given by the edge.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The L4 peer address (never taken from `x-forwarded-for`).
    pub client_addr: SocketAddr,
    /// The port the client connected to.
    pub server_port: u16,
    /// When the connection (or request) started: `conn.ts.start`.
    pub start: SystemTime,
    /// The negotiated TLS version (`"1.3"`), when the connection is TLS.
    pub tls_version: Option<String>,
}

/// Facts about the endpoint a request arrived at, shared by its requests.
#[derive(Clone, Debug, Default)]
pub struct EndpointInfo {
    /// Endpoint id.
    pub id: String,
    /// Public URL, e.g. `https://app.example.com`.
    pub url: String,
    /// Public host name.
    pub host: String,
    /// Public port.
    pub port: u16,
    /// `http` or `https`.
    pub protocol: String,
}

/// A source of the current time; the engine's default is the system clock.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> SystemTime;
}

/// The system clock.
#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What an action decided, for the log event and metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A check passed (auth ok, ip allowed, under the limit).
    Allow,
    /// A check failed: the request was (or, with `enforce: false`, would have been) refused.
    Deny,
    /// basic-auth asked for credentials (no or bad `Authorization`).
    Challenge,
    /// rate-limit found the bucket full.
    RateLimited,
    /// A CORS preflight was let through basic-auth unauthenticated.
    Preflight,
    /// The action answered the request itself (custom-response, redirect).
    Respond,
    /// The action changed the request or response (headers, url, vars, compression).
    Modify,
    /// Nothing to do (e.g. redirect to the same URL, no acceptable encoding).
    Skip,
    /// The action failed at runtime (interpolation error) and answered with an error.
    Error,
}

/// One action run on this request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActionOutcome {
    /// The phase it ran in.
    pub phase: Phase,
    /// Its type, e.g. `basic-auth`.
    pub action: &'static str,
    /// What it decided.
    pub decision: Decision,
    /// False when `enforce: false` made a failed check record-only.
    pub enforced: bool,
}

/// One line of the optional trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TraceEntry {
    /// The phase.
    pub phase: Phase,
    /// The rule: its name, else its place (`traffic-policy.yml: on_http_request[1]`).
    pub rule: String,
    /// What happened: `matched`, `skipped: ...`, or an action and its decision.
    pub event: String,
}

/// The state of one request as the engine runs its phases; create it with
/// [`Engine::new_request`](crate::Engine::new_request).
pub struct RequestState {
    pub(crate) conn: ConnInfo,
    pub(crate) client_ip: IpAddr,
    pub(crate) client_ip_text: String,
    pub(crate) endpoint: Arc<EndpointInfo>,
    pub(crate) now: SystemTime,
    pub(crate) vars: BTreeMap<String, Value>,
    pub(crate) results: Vec<(&'static str, Value)>,
    pub(crate) logs: Vec<BTreeMap<String, String>>,
    pub(crate) outcomes: Vec<ActionOutcome>,
    pub(crate) trace: Option<Vec<TraceEntry>>,
    pub(crate) basic_auth_user: Option<String>,
    pub(crate) errors: Vec<String>,
    pub(crate) body_transform: Option<Box<dyn BodyTransform + Send + Sync>>,
    pub(crate) compression: Option<&'static str>,
    pub(crate) request_body: Option<bytes::Bytes>,
    pub(crate) fetched_keys: Vec<crate::actions::jwt_validation::FetchedKeys>,
    /// The edge's verdict for the login action being run (taken by it when it reruns).
    pub(crate) login_outcome: Option<crate::identity::LoginOutcome>,
    pub(crate) login_client_id: Option<String>,
    pub(crate) identity: Option<crate::identity::Identity>,
    /// `Set-Cookie` values the response gets (a renewed session).
    pub(crate) response_cookies: Vec<http::HeaderValue>,
}

impl RequestState {
    pub(crate) fn new(conn: ConnInfo, endpoint: Arc<EndpointInfo>, now: SystemTime) -> Self {
        let client_ip = canonical_ip(conn.client_addr.ip());
        Self {
            client_ip,
            client_ip_text: client_ip.to_string(),
            conn,
            endpoint,
            now,
            vars: BTreeMap::new(),
            results: Vec::new(),
            logs: Vec::new(),
            outcomes: Vec::new(),
            trace: None,
            basic_auth_user: None,
            errors: Vec::new(),
            body_transform: None,
            compression: None,
            request_body: None,
            fetched_keys: Vec::new(),
            login_outcome: None,
            login_client_id: None,
            identity: None,
            response_cookies: Vec::new(),
        }
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

    /// The basic-auth user name presented and its decision (`Allow`, `Challenge`, `Preflight`).
    pub fn basic_auth(&self) -> Option<(Option<&str>, Decision)> {
        self.last_outcome("basic-auth")
            .map(|d| (self.basic_auth_user.as_deref(), d))
    }

    /// The restrict-ips decision (`Allow` or `Deny`), if one ran.
    pub fn ip_policy(&self) -> Option<Decision> {
        self.last_outcome("restrict-ips")
    }

    /// The verify-webhook decision (`Allow` or `Deny`), if one ran.
    pub fn webhook_verification(&self) -> Option<Decision> {
        self.last_outcome("verify-webhook")
    }

    /// Gives the engine the complete request body, for actions that read it (see
    /// [`Engine::reads_request_body`](crate::Engine::reads_request_body)); call it before
    /// `on_http_request`. Without it they see an empty body.
    pub fn set_request_body(&mut self, body: bytes::Bytes) {
        self.request_body = Some(body);
    }

    /// The jwt-validation decision (`Allow` or `Deny`), if one ran.
    pub fn jwt_validation(&self) -> Option<Decision> {
        self.last_outcome("jwt-validation")
    }

    /// The signed-in user, when an oauth or openid-connect action let the request through.
    pub fn identity(&self) -> Option<&crate::identity::Identity> {
        self.identity.as_ref()
    }

    /// The last oauth / openid-connect decision (`Allow`, `Challenge` for a redirect to the
    /// provider, `Deny` for an error page, `Respond` for logout and the callback's end,
    /// `Preflight`) and the client id it used, if one ran.
    pub fn login(&self) -> Option<(Decision, Option<&str>)> {
        self.outcomes
            .iter()
            .rev()
            .find(|o| o.action == "oauth" || o.action == "openid-connect")
            .map(|o| (o.decision, self.login_client_id.as_deref()))
    }

    /// The keys of the JWKS at `url` fetched for this request: `None` before it was asked
    /// for, empty when fetching failed.
    pub(crate) fn key_set(&self, url: &str) -> Option<Vec<jsonwebtoken::jwk::Jwk>> {
        let f = self.fetched_keys.iter().rev().find(|f| f.url == url)?;
        Some(f.set.as_ref().map(|s| s.keys.clone()).unwrap_or_default())
    }

    /// Keeps a key set the engine fetched for `url` (a failure is kept as an empty set, and
    /// its reason among the errors).
    pub(crate) fn store_keys(
        &mut self,
        url: String,
        refreshed: bool,
        got: Result<Arc<jsonwebtoken::jwk::JwkSet>, crate::KeyError>,
    ) {
        let set = match got {
            Ok(s) => Some(s),
            Err(e) => {
                self.errors.push(format!("jwt-validation: {e}"));
                None
            }
        };
        self.fetched_keys
            .push(crate::actions::jwt_validation::FetchedKeys {
                url,
                set,
                refreshed,
            });
    }

    /// Whether the JWKS at `url` was already fetched afresh for this request.
    pub(crate) fn key_set_refreshed(&self, url: &str) -> bool {
        self.fetched_keys
            .iter()
            .any(|f| f.url == url && f.refreshed)
    }

    /// The compression algorithm chosen by compress-response, if any.
    pub fn compression(&self) -> Option<&'static str> {
        self.compression
    }

    /// Runtime problems (expressions that failed to evaluate); such a rule does not match.
    pub fn errors(&self) -> &[String] {
        &self.errors
    }

    /// Takes the streaming body transformer set by compress-response, for the edge to feed
    /// the response body through chunk by chunk.
    pub fn take_body_transform(&mut self) -> Option<Box<dyn BodyTransform + Send>> {
        self.body_transform
            .take()
            .map(|t| t as Box<dyn BodyTransform + Send>)
    }

    fn last_outcome(&self, action: &str) -> Option<Decision> {
        self.outcomes
            .iter()
            .rev()
            .find(|o| o.action == action)
            .map(|o| o.decision)
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
        if let Some(t) = &mut self.trace {
            t.push(TraceEntry {
                phase,
                rule: rule.to_string(),
                event: event(),
            });
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

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`, as dual-stack listeners report) as IPv4.
pub(crate) fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

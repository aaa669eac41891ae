//! Policy actions: the closed set of supported types, compiled from `{type, config}`.

mod basic_auth;
pub(crate) mod compress_response;
mod headers;
pub(crate) mod jwt_validation;
mod login;
mod rate_limit;
mod redirect;
mod respond;
mod restrict_ips;
mod vars;
mod verify_webhook;

use crate::cel::expr::Template;
use crate::cel::vars::Scope;
use crate::codes;
use crate::head::{RequestHead, ResponseHead};
use crate::load::check::{Cx, Obj};
use crate::load::node::Node;
use crate::phase::Phase;
use crate::run::state::{Decision, RequestState};
use bytes::Bytes;
use http::{Response, StatusCode};

/// What running an action means for the rest of the phase.
pub(crate) enum Flow {
    /// Go on with the next action.
    Next,
    /// End the phase with this response (sent instead of calling the upstream, or replacing
    /// the upstream's response in on_http_response).
    Respond(Box<Response<Bytes>>),
    /// Suspend: fetch the JWKS document at `url` (afresh when `refresh`), then run the action
    /// again.
    NeedKeys { url: String, refresh: bool },
    /// Suspend: ask the edge's authenticator about this request, keep its verdict in the
    /// request state, then run the action again.
    NeedLogin(Box<crate::identity::LoginRequest>),
}

impl Flow {
    /// Ends the phase with `res`.
    pub fn respond(res: Response<Bytes>) -> Self {
        Flow::Respond(Box::new(res))
    }

    /// Suspends the action until the key set at `url` has been fetched.
    pub fn need_keys(url: &str, refresh: bool) -> Self {
        Flow::NeedKeys {
            url: url.to_string(),
            refresh,
        }
    }
}

/// The message a phase works on.
pub(crate) enum Msg<'m> {
    /// on_http_request: the request may be changed.
    Req(&'m mut dyn RequestHead),
    /// on_http_response: the request as it was sent, and the response that may be changed.
    Res(&'m dyn RequestHead, &'m mut dyn ResponseHead),
}

/// What an action runs with.
pub(crate) struct Exec<'a, 'm> {
    pub phase: Phase,
    /// Which `actions.ngrok.<key>` results some expression reads (bit i = `ACTION_KEYS[i]`).
    pub wanted_results: u32,
    pub rule: &'a str,
    pub st: &'a mut RequestState,
    pub msg: &'a mut Msg<'m>,
}

impl Exec<'_, '_> {
    /// The variables as they are now.
    pub fn scope(&self) -> Scope<'_> {
        match &*self.msg {
            Msg::Req(r) => Scope::new(&**r, None, self.st),
            Msg::Res(q, r) => Scope::new(*q, Some(&**r), self.st),
        }
    }

    /// The request (read-only in on_http_response).
    pub fn req(&self) -> &dyn RequestHead {
        match &*self.msg {
            Msg::Req(r) => &**r,
            Msg::Res(q, _) => *q,
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
        self.st.errors.push(format!("{action}: {message}"));
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
        self.wanted_results & crate::cel::vars::result_bit(key) != 0
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

/// A compiled action.
#[derive(Debug)]
pub(crate) enum Action {
    AddHeaders(headers::AddHeaders),
    RemoveHeaders(headers::RemoveHeaders),
    CustomResponse(respond::CustomResponse),
    Deny(respond::Deny),
    Redirect(redirect::Redirect),
    UrlRewrite(redirect::UrlRewrite),
    BasicAuth(basic_auth::BasicAuth),
    RestrictIps(restrict_ips::RestrictIps),
    RateLimit(rate_limit::RateLimit),
    SetVars(vars::SetVars),
    Log(vars::Log),
    CompressResponse(compress_response::CompressResponse),
    VerifyWebhook(verify_webhook::VerifyWebhook),
    JwtValidation(jwt_validation::JwtValidation),
    Login(login::Login),
}

const REQ: &[Phase] = &[Phase::Request];
const RES: &[Phase] = &[Phase::Response];
const BOTH: &[Phase] = &[Phase::Request, Phase::Response];

/// Supported types and the phases each may appear in.
const TYPES: &[(&str, &[Phase])] = &[
    ("add-headers", BOTH),
    ("remove-headers", BOTH),
    ("custom-response", BOTH),
    ("deny", REQ),
    ("redirect", REQ),
    ("url-rewrite", REQ),
    ("basic-auth", REQ),
    ("restrict-ips", REQ),
    ("rate-limit", REQ),
    ("set-vars", BOTH),
    ("log", BOTH),
    ("compress-response", RES),
    ("verify-webhook", REQ),
    ("jwt-validation", REQ),
    ("oauth", REQ),
    ("openid-connect", REQ),
    ("oidc", REQ),
];

/// ngrok action types Sluice does not implement yet.
const NOT_YET: &[&str] = &[
    "close-connection",
    "forward-internal",
    "http-request",
    "circuit-breaker",
    "terminate-tls",
    "owasp-crs-request",
    "owasp-crs-response",
    "request-body-find-replace",
    "response-body-find-replace",
    "sse-find-replace",
];

impl Action {
    /// Compiles one `{type, config}` entry at `path`.
    pub fn compile(cx: &mut Cx, node: &Node, path: &str, phase: Phase) -> Option<Self> {
        let obj = Obj::open(cx, node, path, &["type", "config"])?;
        let (ty, ty_path, ty_pos) = match obj.string(cx, "type") {
            Some(t) => t,
            None => {
                if obj.get("type").is_none() {
                    obj.require(cx, "type");
                }
                return None;
            }
        };
        let Some((_, phases)) = TYPES.iter().find(|(t, _)| *t == ty) else {
            let msg = if NOT_YET.contains(&ty.as_str()) {
                format!("action type `{ty}` is not supported by Sluice yet")
            } else {
                let known: Vec<&str> = TYPES.iter().map(|(t, _)| *t).collect();
                format!(
                    "unknown action type `{ty}`, expected one of: {}",
                    known.join(", ")
                )
            };
            cx.err(&ty_path, ty_pos, msg);
            return None;
        };
        if !phases.contains(&phase) {
            let allowed: Vec<&str> = phases.iter().map(|p| p.key()).collect();
            cx.err(
                &ty_path,
                ty_pos,
                format!(
                    "action `{ty}` is not allowed in {phase}, only in {}",
                    allowed.join(", ")
                ),
            );
            return None;
        }
        let empty = Node::synthetic(crate::load::node::Kind::Map(Vec::new()));
        let (config, config_path) = match obj.get("config") {
            Some((n, p)) => (n, p),
            None => (&empty, format!("{path}.config")),
        };
        let mut config_pos_node = config.clone();
        if config_pos_node.pos.is_none() {
            config_pos_node.pos = node.pos;
        }
        let c = Cfg {
            phase,
            node: &config_pos_node,
            path: config_path,
        };
        match ty.as_str() {
            "add-headers" => headers::AddHeaders::compile(cx, &c).map(Action::AddHeaders),
            "remove-headers" => headers::RemoveHeaders::compile(cx, &c).map(Action::RemoveHeaders),
            "custom-response" => {
                respond::CustomResponse::compile(cx, &c).map(Action::CustomResponse)
            }
            "deny" => respond::Deny::compile(cx, &c).map(Action::Deny),
            "redirect" => redirect::Redirect::compile(cx, &c).map(Action::Redirect),
            "url-rewrite" => redirect::UrlRewrite::compile(cx, &c).map(Action::UrlRewrite),
            "basic-auth" => basic_auth::BasicAuth::compile(cx, &c).map(Action::BasicAuth),
            "restrict-ips" => restrict_ips::RestrictIps::compile(cx, &c).map(Action::RestrictIps),
            "rate-limit" => rate_limit::RateLimit::compile(cx, &c).map(Action::RateLimit),
            "set-vars" => vars::SetVars::compile(cx, &c).map(Action::SetVars),
            "log" => vars::Log::compile(cx, &c).map(Action::Log),
            "jwt-validation" => {
                jwt_validation::JwtValidation::compile(cx, &c).map(Action::JwtValidation)
            }
            "oauth" => login::Login::compile(cx, &c, false).map(Action::Login),
            "openid-connect" | "oidc" => login::Login::compile(cx, &c, true).map(Action::Login),
            "verify-webhook" => {
                verify_webhook::VerifyWebhook::compile(cx, &c).map(Action::VerifyWebhook)
            }
            _ => compress_response::CompressResponse::compile(cx, &c).map(Action::CompressResponse),
        }
    }

    /// Runs the action.
    pub fn run(&self, ex: &mut Exec) -> Flow {
        match self {
            Action::AddHeaders(a) => a.run(ex),
            Action::RemoveHeaders(a) => a.run(ex),
            Action::CustomResponse(a) => a.run(ex),
            Action::Deny(a) => a.run(ex),
            Action::Redirect(a) => a.run(ex),
            Action::UrlRewrite(a) => a.run(ex),
            Action::BasicAuth(a) => a.run(ex),
            Action::RestrictIps(a) => a.run(ex),
            Action::RateLimit(a) => a.run(ex),
            Action::SetVars(a) => a.run(ex),
            Action::Log(a) => a.run(ex),
            Action::CompressResponse(a) => a.run(ex),
            Action::VerifyWebhook(a) => a.run(ex),
            Action::JwtValidation(a) => a.run(ex),
            Action::Login(a) => a.run(ex),
        }
    }
}

impl Action {
    /// Whether the action reads the request body (the edge then buffers it first).
    pub fn reads_request_body(&self) -> bool {
        match self {
            Action::VerifyWebhook(_) => true,
            Action::JwtValidation(j) => j.reads_body(),
            _ => false,
        }
    }
}

/// The `config` of one action being compiled.
pub(crate) struct Cfg<'n> {
    pub phase: Phase,
    pub node: &'n Node,
    pub path: String,
}

impl<'n> Cfg<'n> {
    /// Opens the config map with its allowed fields.
    pub fn open(&self, cx: &mut Cx, allowed: &[&str]) -> Option<Obj<'n>> {
        Obj::open(cx, self.node, &self.path, allowed)
    }
}

/// Compiles a `${}` template field, reporting its problems at `path`.
pub(crate) fn template(
    cx: &mut Cx,
    source: &str,
    path: &str,
    pos: Option<crate::Pos>,
    phase: Phase,
) -> Option<Template> {
    match Template::compile(source, phase) {
        Ok(t) => Some(t),
        Err(problems) => {
            for p in problems {
                cx.err(path, pos, p);
            }
            None
        }
    }
}

/// A compiled header name, lowercased, or an error at `path`.
pub(crate) fn header_name(
    cx: &mut Cx,
    name: &str,
    path: &str,
    pos: Option<crate::Pos>,
) -> Option<http::HeaderName> {
    match http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()) {
        Ok(n) => Some(n),
        Err(_) => {
            cx.err(path, pos, format!("invalid header name `{name}`"));
            None
        }
    }
}

/// A `{name: template}` headers map with 1..=10 entries.
pub(crate) fn header_templates(
    cx: &mut Cx,
    obj: &Obj,
    key: &str,
    phase: Phase,
) -> Vec<(http::HeaderName, Template)> {
    let Some((node, path)) = obj.get(key) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, value, vpath, pos) in crate::load::check::string_map(cx, node, &path, 10) {
        let n = header_name(cx, &name, &vpath, pos);
        let t = template(cx, &value, &vpath, pos, phase);
        if let (Some(n), Some(t)) = (n, t) {
            out.push((n, t));
        }
    }
    out
}

/// A status code field within `range`, `default` when absent.
pub(crate) fn status(
    cx: &mut Cx,
    obj: &Obj,
    range: std::ops::RangeInclusive<i64>,
    default: u16,
) -> StatusCode {
    let code = obj
        .int(cx, "status_code", range)
        .map_or(default, |c| c as u16);
    StatusCode::from_u16(code).unwrap_or(StatusCode::FORBIDDEN)
}

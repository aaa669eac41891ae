//! The action registry: one [`TYPES`] line per `type:` a rule may name.
//!
//! Each line gives the phases the type may appear in, the key of its `actions.ngrok.<key>`
//! results, and the function compiling its `config`.
//!
//! Adding an action takes one new file and one registration, and no edit anywhere else:
//!
//! 1. Write `actions/<name>.rs`: a struct holding the compiled `config`, a
//!    `compile(cx, c: &Cfg) -> Option<Self>` reading it (the helpers in [`config`] report
//!    problems with their place), and an [`Action`] impl whose `run` works on the request
//!    through [`Exec`](action::Exec) and answers a [`Flow`](action::Flow). Data the action
//!    keeps per request goes in `ex.st.scratch` under a type private to the file; an accessor
//!    reporting it to the edge is an `impl RequestState` block in the same file. Something
//!    to wait for from the edge is a [`Flow::wait`](action::Flow::wait).
//! 2. Declare the module below and add its line to [`TYPES`].
//! 3. Tests that run it through the engine go in `actions/tests/<name>.rs` (one `mod` line in
//!    `actions/tests/mod.rs`).
//!
//! The engine, the request state and the CEL variables (`actions.ngrok.<key>` comes from
//! [`TYPES`]) need no change. Action files import only `action`, `config` and the layers
//! below (load, cel, run), never the registry or one another, so there is no import loop.

pub(crate) mod action;
mod basic_auth;
mod circuit_breaker;
mod close_connection;
mod compress_response;
pub(crate) mod config;
mod find_replace;
mod forward_internal;
mod headers;
mod http_request;
mod jwt_validation;
mod login;
mod rate_limit;
mod redirect;
mod respond;
mod restrict_ips;
mod terminate_tls;
mod vars;
mod verify_webhook;

#[cfg(test)]
mod tests;

use crate::cel::names::Names;
use crate::load::check::{Cx, Obj};
use crate::load::node::{Kind, Node};
use crate::phase::Phase;
use action::Action;
use basic_auth::BasicAuth;
use circuit_breaker::CircuitBreaker;
use close_connection::CloseConnection;
use compress_response::CompressResponse;
use config::Cfg;
use find_replace::{FindReplace, Target};
use forward_internal::ForwardInternal;
use headers::{AddHeaders, RemoveHeaders};
use http_request::HttpRequest;
use jwt_validation::JwtValidation;
use login::Login;
use rate_limit::RateLimit;
use redirect::{Redirect, UrlRewrite};
use respond::{CustomResponse, Deny};
use restrict_ips::RestrictIps;
use std::sync::LazyLock;
use terminate_tls::TerminateTlsAction as TerminateTls;
use vars::{Log, SetVars};
use verify_webhook::VerifyWebhook;

/// Compiles one type's `config`; `None` when it has problems (reported in `cx`).
type Compile = fn(&mut Cx, &Cfg) -> Option<Box<dyn Action>>;

/// One action type.
struct Type {
    /// The `type:` name.
    name: &'static str,
    /// The phases it may appear in.
    phases: &'static [Phase],
    /// The `actions.ngrok.<key>` its results are under.
    result_key: &'static str,
    compile: Compile,
}

impl Type {
    const fn new(
        name: &'static str,
        phases: &'static [Phase],
        result_key: &'static str,
        compile: Compile,
    ) -> Self {
        Self {
            name,
            phases,
            result_key,
            compile,
        }
    }
}

const REQ: &[Phase] = &[Phase::Request];
const RES: &[Phase] = &[Phase::Response];
const BOTH: &[Phase] = &[Phase::Request, Phase::Response];
const EVENT: &[Phase] = &[Phase::EventStream];
/// on_tcp_connect and on_http_request (deny, close-connection, restrict-ips, forward-internal).
const CONN_REQ: &[Phase] = &[Phase::TcpConnect, Phase::Request];
/// Every phase with rules of their own (set-vars, log).
const CONN_BOTH: &[Phase] = &[Phase::TcpConnect, Phase::Request, Phase::Response];
const CONN: &[Phase] = &[Phase::TcpConnect];

/// Every supported type, in the order the unknown-type message lists them.
const TYPES: &[Type] = &[
    Type::new("add-headers", BOTH, "add_headers", |cx, c| {
        boxed(AddHeaders::compile(cx, c))
    }),
    Type::new("remove-headers", BOTH, "remove_headers", |cx, c| {
        boxed(RemoveHeaders::compile(cx, c))
    }),
    Type::new("custom-response", BOTH, "custom_response", |cx, c| {
        boxed(CustomResponse::compile(cx, c))
    }),
    Type::new("deny", CONN_REQ, "deny", |cx, c| {
        boxed(Deny::compile(cx, c))
    }),
    Type::new("close-connection", CONN_REQ, "close_connection", |cx, c| {
        boxed(CloseConnection::compile(cx, c))
    }),
    Type::new("forward-internal", CONN_REQ, "forward_internal", |cx, c| {
        boxed(ForwardInternal::compile(cx, c))
    }),
    Type::new("redirect", REQ, "redirect", |cx, c| {
        boxed(Redirect::compile(cx, c))
    }),
    Type::new("url-rewrite", REQ, "url_rewrite", |cx, c| {
        boxed(UrlRewrite::compile(cx, c))
    }),
    Type::new("basic-auth", REQ, "basic_auth", |cx, c| {
        boxed(BasicAuth::compile(cx, c))
    }),
    Type::new("restrict-ips", CONN_REQ, "restrict_ips", |cx, c| {
        boxed(RestrictIps::compile(cx, c))
    }),
    Type::new("rate-limit", REQ, "rate_limit", |cx, c| {
        boxed(RateLimit::compile(cx, c))
    }),
    Type::new("circuit-breaker", REQ, "circuit_breaker", |cx, c| {
        boxed(CircuitBreaker::compile(cx, c))
    }),
    Type::new("set-vars", CONN_BOTH, "set_vars", |cx, c| {
        boxed(SetVars::compile(cx, c))
    }),
    Type::new("log", CONN_BOTH, "log", |cx, c| boxed(Log::compile(cx, c))),
    Type::new("compress-response", RES, "compress", |cx, c| {
        boxed(CompressResponse::compile(cx, c))
    }),
    Type::new(
        "request-body-find-replace",
        REQ,
        "request_body_find_replace",
        |cx, c| boxed(FindReplace::compile(cx, c, Target::RequestBody)),
    ),
    Type::new(
        "response-body-find-replace",
        RES,
        "response_body_find_replace",
        |cx, c| boxed(FindReplace::compile(cx, c, Target::ResponseBody)),
    ),
    Type::new("sse-find-replace", EVENT, "sse_find_replace", |cx, c| {
        boxed(FindReplace::compile(cx, c, Target::Event))
    }),
    Type::new("http-request", BOTH, "http_request", |cx, c| {
        boxed(HttpRequest::compile(cx, c))
    }),
    Type::new("verify-webhook", REQ, "verify_webhook", |cx, c| {
        boxed(VerifyWebhook::compile(cx, c))
    }),
    Type::new("jwt-validation", REQ, "jwt_validation", |cx, c| {
        boxed(JwtValidation::compile(cx, c))
    }),
    Type::new("oauth", REQ, "oauth", |cx, c| {
        boxed(Login::compile(cx, c, false))
    }),
    Type::new("openid-connect", REQ, "oidc", |cx, c| {
        boxed(Login::compile(cx, c, true))
    }),
    Type::new("oidc", REQ, "oidc", |cx, c| {
        boxed(Login::compile(cx, c, true))
    }),
    Type::new("terminate-tls", CONN, "terminate_tls", |cx, c| {
        boxed(TerminateTls::compile(cx, c))
    }),
];

/// Types that always end the phase they run in, so an action after one in the same rule could
/// never run (ngrok refuses that as ERR_NGROK_2207).
const ALWAYS_END: &[&str] = &["deny", "custom-response", "close-connection"];

/// The type of an action entry when it is one that always ends its phase.
pub(crate) fn always_ends(node: &Node) -> Option<&str> {
    let Kind::Map(entries) = &node.kind else {
        return None;
    };
    entries.iter().find_map(|(k, v)| match (&k.kind, &v.kind) {
        (Kind::Str(k), Kind::Str(t)) if k == "type" && ALWAYS_END.contains(&t.as_str()) => {
            Some(t.as_str())
        }
        _ => None,
    })
}

/// ngrok action types Sluice does not implement yet.
const NOT_YET: &[&str] = &[];

/// ngrok action types Sluice refuses for a reason of its own, which the compile error gives.
const UNAVAILABLE: &[(&str, &str)] = &[
    ("owasp-crs-request", NO_CRS_ENGINE),
    ("owasp-crs-response", NO_CRS_ENGINE),
];

/// Why the OWASP CRS actions are refused; docs/policy.md ("OWASP CRS actions") has the
/// engines checked, their versions and what each did with Debian's CRS.
const NO_CRS_ENGINE: &str = "no maintained engine runs the OWASP Core Rule Set safely in \
    Sluice: the libmodsecurity binding that builds against Debian 12 frees the library's memory \
    with the wrong allocator (the edge crashes), and the pure-Rust zentinel-modsec lets attacks \
    through with Debian's CRS 3.3.4; see \"OWASP CRS actions\" in docs/policy.md";

fn boxed<A: Action + 'static>(action: Option<A>) -> Option<Box<dyn Action>> {
    action.map(|a| Box::new(a) as Box<dyn Action>)
}

/// The `actions.ngrok.<key>` results of every registered type: the CEL variables know them
/// from here.
pub(crate) fn result_keys() -> &'static [&'static str] {
    static KEYS: LazyLock<Vec<&'static str>> = LazyLock::new(|| {
        let mut keys = Vec::new();
        for t in TYPES {
            if !keys.contains(&t.result_key) {
                keys.push(t.result_key);
            }
        }
        keys
    });
    &KEYS
}

/// Compiles one `{type, config}` entry at `path`.
pub(crate) fn compile(
    cx: &mut Cx,
    node: &Node,
    path: &str,
    phase: Phase,
) -> Option<Box<dyn Action>> {
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
    let Some(found) = TYPES.iter().find(|t| t.name == ty) else {
        let msg = if let Some((_, why)) = UNAVAILABLE.iter().find(|(name, _)| *name == ty) {
            format!("action type `{ty}` is not available: {why}")
        } else if NOT_YET.contains(&ty.as_str()) {
            format!("action type `{ty}` is not supported by Sluice yet")
        } else {
            let known: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
            format!(
                "unknown action type `{ty}`, expected one of: {}",
                known.join(", ")
            )
        };
        cx.err(&ty_path, ty_pos, msg);
        return None;
    };
    if !found.phases.contains(&phase) {
        let allowed: Vec<&str> = found.phases.iter().map(|p| p.key()).collect();
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
    let empty = Node::synthetic(Kind::Map(Vec::new()));
    let (config, config_path) = match obj.get("config") {
        Some((n, p)) => (n, p),
        None => (&empty, format!("{path}.config")),
    };
    let mut config_pos_node = config.clone();
    if config_pos_node.pos.is_none() {
        config_pos_node.pos = node.pos;
    }
    let c = Cfg {
        names: Names {
            phase,
            results: result_keys(),
            supplies: cx.supplies,
            secrets: Some(cx.resolver),
            locals: &[],
        },
        node: &config_pos_node,
        path: config_path,
    };
    (found.compile)(cx, &c)
}

//! oauth and openid-connect: a browser must carry a session from the configured identity
//! provider; the edge's [`Authenticator`](crate::Authenticator) runs the sign-in flow, this
//! action exposes the identity to later rules and the upstream.

use super::rate_limit::parse_duration;
use super::{template, Cfg, Exec, Flow};
use crate::cel::expr::Template;
use crate::identity::{
    Identity, LoginConfig, LoginOutcome, LoginRequest, Provider, IDENTITY_HEADERS,
};
use crate::load::check::{string_list, string_map, Cx, Obj};
use crate::run::state::Decision;
use cel::Value;
use http::header::{HeaderName, HeaderValue, COOKIE, HOST};
use http::Method;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

/// The `oauth` presets the edge knows (endpoints, scopes, user fields).
pub const OAUTH_PROVIDERS: &[&str] = &["google", "github", "gitlab", "microsoft"];
/// ngrok providers Sluice has no preset for.
const OAUTH_NOT_YET: &[&str] = &["amazon", "facebook", "linkedin", "twitch"];

const DEFAULT_MAX_SESSION: Duration = Duration::from_secs(24 * 3600);
const DEFAULT_IDLE: Duration = Duration::from_secs(24 * 3600);

/// Where the provider comes from, before `${}` rendering.
#[derive(Debug)]
enum ProviderField {
    Oidc(Template),
    OAuth(String),
}

/// `oauth` and `openid-connect` (alias `oidc`).
#[derive(Debug)]
pub(crate) struct Login {
    action: &'static str,
    provider: ProviderField,
    client_id: Template,
    client_secret: Template,
    scopes: Vec<String>,
    authz_url_params: Vec<(String, String)>,
    max_session_duration: Duration,
    idle_session_timeout: Duration,
    userinfo_refresh_interval: Option<Duration>,
    allow_cors_preflight: bool,
    auth_cookie_domain: Option<String>,
}

/// Fields both types accept (ngrok's; `auth_id` is accepted and has no effect in Sluice).
const COMMON: &[&str] = &[
    "client_id",
    "client_secret",
    "scopes",
    "authz_url_params",
    "max_session_duration",
    "userinfo_refresh_interval",
    "allow_cors_preflight",
    "auth_cookie_domain",
    "auth_id",
];

impl Login {
    /// Compiles `oauth` (`oidc` false) or `openid-connect` / `oidc` (`oidc` true).
    pub fn compile(cx: &mut Cx, c: &Cfg, oidc: bool) -> Option<Self> {
        let mut allowed = COMMON.to_vec();
        if oidc {
            allowed.extend([
                "issuer_url",
                "idle_session_duration",
                "idle_session_timeout",
            ]);
        } else {
            allowed.extend(["provider", "idle_session_timeout"]);
        }
        let obj = c.open(cx, &allowed)?;
        let before = cx.errors.len();
        let provider = if oidc {
            required_template(cx, &obj, "issuer_url", c).map(ProviderField::Oidc)
        } else {
            oauth_provider(cx, &obj)
        };
        let client_id = required_template(cx, &obj, "client_id", c);
        let client_secret = required_template(cx, &obj, "client_secret", c);
        let scopes = obj
            .get("scopes")
            .map(|(n, p)| string_list(cx, n, &p, Some(50)))
            .unwrap_or_default()
            .into_iter()
            .map(|(s, _, _)| s)
            .collect();
        let authz_url_params = obj
            .get("authz_url_params")
            .map(|(n, p)| string_map(cx, n, &p, 20))
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v, _, _)| (k, v))
            .collect();
        let max_session_duration =
            duration(cx, &obj, &["max_session_duration"], 60).unwrap_or(DEFAULT_MAX_SESSION);
        let idle_session_timeout = duration(
            cx,
            &obj,
            &["idle_session_timeout", "idle_session_duration"],
            60,
        )
        .unwrap_or(DEFAULT_IDLE);
        // Seconds are allowed here: how often to ask the provider is the operator's trade-off.
        let userinfo_refresh_interval = duration(cx, &obj, &["userinfo_refresh_interval"], 1);
        let allow_cors_preflight = obj.bool(cx, "allow_cors_preflight", false);
        let auth_cookie_domain = obj
            .string(cx, "auth_cookie_domain")
            .and_then(|(d, path, pos)| cookie_domain(cx, d, &path, pos));
        let action = if oidc { "openid-connect" } else { "oauth" };
        (cx.errors.len() == before).then_some(Self {
            action,
            provider: provider?,
            client_id: client_id?,
            client_secret: client_secret?,
            scopes,
            authz_url_params,
            max_session_duration,
            idle_session_timeout,
            userinfo_refresh_interval,
            allow_cors_preflight,
            auth_cookie_domain,
        })
    }

    pub fn run(&self, ex: &mut Exec) -> Flow {
        let req = ex.req();
        if self.allow_cors_preflight && is_cors_preflight(req.method(), req.headers()) {
            ex.record(self.action, Decision::Preflight, true);
            return Flow::Next;
        }
        match ex.st.login_outcome.take() {
            None => match self.ask(ex) {
                Ok(ask) => Flow::NeedLogin(Box::new(ask)),
                Err(flow) => flow,
            },
            Some(LoginOutcome::SignedIn {
                identity,
                set_cookie,
            }) => {
                self.signed_in(ex, identity, set_cookie);
                Flow::Next
            }
            Some(LoginOutcome::Respond(res)) => {
                let decision = if res.status().is_redirection() {
                    Decision::Challenge
                } else if res.headers().contains_key(crate::codes::HEADER) {
                    Decision::Deny
                } else {
                    Decision::Respond
                };
                ex.record(self.action, decision, true);
                Flow::respond(res)
            }
        }
    }

    /// The question for the edge: this request and the rendered configuration.
    fn ask(&self, ex: &mut Exec) -> Result<LoginRequest, Flow> {
        let provider = match &self.provider {
            ProviderField::Oidc(t) => Provider::Oidc {
                issuer_url: ex.render(self.action, t)?,
            },
            ProviderField::OAuth(name) => Provider::OAuth { name: name.clone() },
        };
        let config = LoginConfig {
            provider,
            client_id: ex.render(self.action, &self.client_id)?,
            client_secret: ex.render(self.action, &self.client_secret)?,
            scopes: self.scopes.clone(),
            authz_url_params: self.authz_url_params.clone(),
            max_session_duration: self.max_session_duration,
            idle_session_timeout: self.idle_session_timeout,
            userinfo_refresh_interval: self.userinfo_refresh_interval,
            auth_cookie_domain: self.auth_cookie_domain.clone(),
        };
        ex.st.login_client_id = Some(config.client_id.clone());
        let req = ex.req();
        let host = req
            .headers()
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| req.uri().authority().map(|a| a.to_string()))
            .unwrap_or_else(|| ex.st.endpoint.host.clone());
        Ok(LoginRequest {
            config,
            method: req.method().clone(),
            uri: req.uri().clone(),
            host,
            scheme: ex.st.endpoint.protocol.clone(),
            cookies: req.headers().get_all(COOKIE).iter().cloned().collect(),
            now: ex.st.now,
        })
    }

    /// A valid session: identity headers for the upstream, results for later rules, the
    /// renewed cookie for the response.
    fn signed_in(&self, ex: &mut Exec, identity: Identity, set_cookie: Option<HeaderValue>) {
        let values = [
            Some(identity.provider.as_str()),
            Some(identity.id.as_str()),
            identity.email.as_deref(),
            identity.name.as_deref(),
        ];
        if let super::Msg::Req(req) = &mut *ex.msg {
            for (name, value) in IDENTITY_HEADERS.iter().zip(values) {
                let name = HeaderName::from_static(name);
                req.remove_header(&name);
                // Values with control characters are left out rather than mangled.
                if let Some(v) = value.and_then(|v| HeaderValue::from_bytes(v.as_bytes()).ok()) {
                    req.insert_header(name, v);
                }
            }
        }
        let key = identity.kind;
        ex.set_result(key, || identity_result(&identity));
        if let Some(cookie) = set_cookie {
            ex.st.response_cookies.push(cookie);
        }
        ex.st.identity = Some(identity);
        ex.record(self.action, Decision::Allow, true);
    }
}

/// `actions.ngrok.oauth` / `actions.ngrok.oidc`.
fn identity_result(identity: &Identity) -> Value {
    let text = |s: Option<&str>| Value::from(s.unwrap_or("").to_string());
    let who: HashMap<String, Value> = HashMap::from([
        ("id".to_string(), text(Some(&identity.id))),
        ("provider_user_id".to_string(), text(Some(&identity.id))),
        ("email".to_string(), text(identity.email.as_deref())),
        ("name".to_string(), text(identity.name.as_deref())),
        (
            "current_provider_session_id".to_string(),
            text(Some(&identity.session_id)),
        ),
    ]);
    let expires = identity
        .expires_at
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    HashMap::from([
        ("identity".to_string(), Value::from(who)),
        ("expires_at".to_string(), Value::Int(expires as i64)),
        ("session_timed_out".to_string(), Value::Bool(false)),
        (
            "session_max_duration_reached".to_string(),
            Value::Bool(false),
        ),
    ])
    .into()
}

/// A CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub(crate) fn is_cors_preflight(method: &Method, headers: &http::HeaderMap) -> bool {
    method == Method::OPTIONS
        && headers.contains_key("origin")
        && headers.contains_key("access-control-request-method")
}

fn required_template(cx: &mut Cx, obj: &Obj, key: &str, c: &Cfg) -> Option<Template> {
    let (node, path) = obj.require(cx, key)?;
    let text = crate::load::check::string(cx, node, &path)?;
    if text.trim().is_empty() {
        cx.err(
            &path,
            node.pos,
            format!("`{key}` must not be empty (Sluice has no managed app)"),
        );
        return None;
    }
    template(cx, &text, &path, node.pos, c.phase)
}

fn oauth_provider(cx: &mut Cx, obj: &Obj) -> Option<ProviderField> {
    obj.require(cx, "provider")?;
    let (name, path, pos) = obj.string(cx, "provider")?;
    let lower = name.to_ascii_lowercase();
    if OAUTH_PROVIDERS.contains(&lower.as_str()) {
        return Some(ProviderField::OAuth(lower));
    }
    let msg = if OAUTH_NOT_YET.contains(&lower.as_str()) {
        format!(
            "oauth provider `{name}` is not supported by Sluice yet; supported: {}",
            OAUTH_PROVIDERS.join(", ")
        )
    } else {
        format!(
            "unknown oauth provider `{name}`, expected one of: {}",
            OAUTH_PROVIDERS.join(", ")
        )
    };
    cx.err(&path, pos, msg);
    None
}

/// A duration field (`90s`, `15m`, `24h`, `1h30m`) from `min_secs` (1 or 60) to 30 days, when
/// present (the first of `keys` present wins); an error otherwise.
fn duration(cx: &mut Cx, obj: &Obj, keys: &[&str], min_secs: u64) -> Option<Duration> {
    let key = keys.iter().find(|k| obj.get(k).is_some())?;
    let (text, path, pos) = obj.string(cx, key)?;
    let parsed = parse_duration(&text).filter(|s| (min_secs..=30 * 24 * 3600).contains(s));
    if parsed.is_none() {
        let min = if min_secs == 60 { "1m" } else { "1s" };
        cx.err(
            &path,
            pos,
            format!("expected a duration from {min} to 720h, got `{text}`"),
        );
    }
    parsed.map(Duration::from_secs)
}

/// `auth_cookie_domain`: a host name (letters, digits, `-`, `.`), so it is safe in the cookie.
fn cookie_domain(cx: &mut Cx, d: String, path: &str, pos: Option<crate::Pos>) -> Option<String> {
    let ok = !d.is_empty()
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        cx.err(path, pos, format!("expected a domain name, got `{d}`"));
        return None;
    }
    Some(d)
}

#[cfg(test)]
mod tests {
    use crate::identity::{Authenticator, Identity, LoginFuture, LoginOutcome, LoginRequest};
    use crate::testutil::*;
    use crate::{Decision, RequestVerdict, ResponseVerdict};
    use bytes::Bytes;
    use http::{HeaderValue, Response, StatusCode};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, UNIX_EPOCH};

    /// Signs in requests with `cookie: ok`, sends others to a pretend provider; records what
    /// it was asked.
    #[derive(Default)]
    struct Edge {
        asked: Mutex<Vec<LoginRequest>>,
    }

    impl Authenticator for Edge {
        fn login<'a>(&'a self, req: &'a LoginRequest) -> LoginFuture<'a> {
            self.asked.lock().unwrap().push(req.clone());
            let signed_in = req.cookies.iter().any(|c| c == "ok");
            Box::pin(async move {
                if !signed_in {
                    let mut res = Response::new(Bytes::new());
                    *res.status_mut() = StatusCode::FOUND;
                    return LoginOutcome::Respond(res);
                }
                LoginOutcome::SignedIn {
                    identity: Identity {
                        kind: "oidc",
                        provider: "https://idp.example.com".into(),
                        client_id: "app".into(),
                        id: "alice".into(),
                        email: Some("alice@example.com".into()),
                        name: Some("Alice".into()),
                        session_id: "s1".into(),
                        expires_at: UNIX_EPOCH + Duration::from_secs(1_900_000_000),
                    },
                    set_cookie: Some(HeaderValue::from_static("sluice_session=renewed")),
                }
            })
        }
    }

    const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: oidc
        config:
          issuer_url: "https://idp.example.com"
          client_id: "${'app'}"
          client_secret: s3cret
          max_session_duration: 2h
          userinfo_refresh_interval: 30s
  - expressions: ["actions.ngrok.oidc.identity.email.endsWith('@example.com')"]
    actions:
      - type: add-headers
        config: {headers: {x-who: "${actions.ngrok.oidc.identity.name}"}}
"#;

    #[test]
    fn signed_in_requests_carry_the_identity_and_others_get_the_edge_answer() {
        let edge = Arc::new(Edge::default());
        let e = engine(POLICY).with_authenticator(edge.clone());
        let mut st = state(&e, "1.1.1.1");
        let mut r = req(
            "GET /x",
            &[
                ("cookie", "ok"),
                ("sluice-auth-user-email", "forged@evil.example"),
            ],
        );
        let v = crate::run::engine::ready(e.on_http_request_async(&mut st, &mut r));
        assert!(matches!(v, RequestVerdict::Continue), "{:?}", st.errors());
        assert_eq!(r.headers["sluice-auth-user-id"], "alice");
        assert_eq!(r.headers["sluice-auth-user-email"], "alice@example.com");
        assert_eq!(r.headers["x-who"], "Alice");
        assert_eq!(st.identity().map(|i| i.id.as_str()), Some("alice"));
        assert_eq!(st.login(), Some((Decision::Allow, Some("app"))));
        let asked = edge.asked.lock().unwrap()[0].clone();
        assert_eq!(asked.config.client_id, "app");
        assert_eq!(asked.config.max_session_duration, Duration::from_secs(7200));
        assert_eq!(
            asked.config.userinfo_refresh_interval,
            Some(Duration::from_secs(30))
        );
        assert_eq!(asked.host, "app.example.com");
        // The renewed cookie rides on the upstream's response.
        let mut res = Response::new(Bytes::new()).into_parts().0;
        let rv = e.on_http_response(&mut st, &r, &mut res);
        assert!(matches!(rv, ResponseVerdict::Continue));
        assert_eq!(res.headers["set-cookie"], "sluice_session=renewed");

        let mut st = state(&e, "1.1.1.1");
        let mut r = req("GET /x", &[]);
        match crate::run::engine::ready(e.on_http_request_async(&mut st, &mut r)) {
            RequestVerdict::Respond(res) => assert_eq!(res.status(), 302),
            RequestVerdict::Continue => panic!("not signed in"),
        }
        assert_eq!(st.login(), Some((Decision::Challenge, Some("app"))));
    }

    /// The agent's allow-list flags see the identity the action found (alice@example.com).
    #[test]
    fn allow_list_flags_let_listed_identities_in_and_deny_others() {
        let verdict = |emails: &[&str], domains: &[&str]| {
            let flags = crate::Shorthand {
                oidc: Some("https://idp.example.com".into()),
                oidc_client_id: Some("app".into()),
                oidc_client_secret: Some("s3cret".into()),
                oauth_allow_email: emails.iter().map(|e| e.to_string()).collect(),
                oauth_allow_domain: domains.iter().map(|d| d.to_string()).collect(),
                ..Default::default()
            };
            let e = crate::Engine::new(vec![flags.compile().unwrap()])
                .with_authenticator(Arc::new(Edge::default()));
            let mut st = state(&e, "1.1.1.1");
            let mut r = req("GET /x", &[("cookie", "ok")]);
            let v = crate::run::engine::ready(e.on_http_request_async(&mut st, &mut r));
            assert!(st.errors().is_empty(), "{:?}", st.errors());
            match v {
                RequestVerdict::Respond(res) => res.status().as_u16(),
                RequestVerdict::Continue => 200,
            }
        };
        assert_eq!(verdict(&["Bob@Example.com"], &["example.net"]), 403);
        assert_eq!(verdict(&["ALICE@example.com"], &[]), 200);
        assert_eq!(verdict(&[], &["example.net", "Example.COM"]), 200);
    }

    #[test]
    fn preflight_passes_only_when_allowed() {
        let e = engine(
            "on_http_request: [{actions: [{type: oauth, config: {provider: github, client_id: a, client_secret: b, allow_cors_preflight: true}}]}]",
        );
        let pre = [
            ("origin", "https://x.example"),
            ("access-control-request-method", "GET"),
        ];
        assert!(run(&e, req("OPTIONS /", &pre), "1.1.1.1").forwarded);
        assert_eq!(run(&e, req("GET /", &[]), "1.1.1.1").res.status(), 500);
    }

    #[test]
    fn config_errors() {
        let errs = errors(
            "on_http_request: [{actions: [\
             {type: oauth, config: {provider: amazon, client_id: a, client_secret: b}},\
             {type: oauth, config: {provider: myspace, client_id: a}},\
             {type: openid-connect, config: {client_id: a, client_secret: '', idle_session_timeout: 5x, auth_cookie_domain: 'a;b', userinfo_refresh_interval: 0s}}]}]",
        );
        let has = |s: &str| errs.iter().any(|e| e.contains(s));
        assert!(
            has("oauth provider `amazon` is not supported by Sluice yet"),
            "{errs:?}"
        );
        assert!(has("unknown oauth provider `myspace`"), "{errs:?}");
        assert!(has("missing required field `client_secret`"), "{errs:?}");
        assert!(has("missing required field `issuer_url`"), "{errs:?}");
        assert!(has("`client_secret` must not be empty"), "{errs:?}");
        assert!(
            has("expected a duration from 1m to 720h, got `5x`"),
            "{errs:?}"
        );
        assert!(has("expected a domain name, got `a;b`"), "{errs:?}");
        assert!(
            has("expected a duration from 1s to 720h, got `0s`"),
            "{errs:?}"
        );
    }
}

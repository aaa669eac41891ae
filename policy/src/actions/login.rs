//! oauth and openid-connect: a browser must carry a session from the configured identity
//! provider; the edge's [`Authenticator`](crate::Authenticator) runs the sign-in flow, this
//! action exposes the identity to later rules and the upstream.

use super::action::{is_cors_preflight, Action, Exec, Flow, Msg};
use super::config::{parse_duration, template, Cfg};
use crate::cel::template::Template;
use crate::codes;
use crate::identity::{
    Identity, LoginConfig, LoginOutcome, LoginRequest, Provider, IDENTITY_HEADERS,
};
use crate::load::check::{string_list, string_map, Cx, Obj};
use crate::load::errors::Pos;
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use crate::secrets::LoginApp;
use cel::Value;
use http::header::{HeaderName, HeaderValue, COOKIE, HOST, SET_COOKIE};
use http::StatusCode;
use std::collections::HashMap;
use std::time::{Duration, UNIX_EPOCH};

/// The `oauth` presets the edge knows (endpoints, scopes, user fields).
const OAUTH_PROVIDERS: &[&str] = &["google", "github", "gitlab", "microsoft"];
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
        let (client_id, client_secret) = credentials(cx, &obj, c, provider.as_ref());
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
}

impl Action for Login {
    fn run(&self, ex: &mut Exec) -> Flow {
        let req = ex.req();
        if self.allow_cors_preflight && is_cors_preflight(req.method(), req.headers()) {
            ex.record(self.action, Decision::Preflight, true);
            return Flow::Next;
        }
        match ex.st.scratch.take::<Verdict>().map(|v| v.0) {
            None => match self.ask(ex) {
                Ok(ask) => need_login(ask),
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
                } else if res.headers().contains_key(codes::HEADER) {
                    Decision::Deny
                } else {
                    Decision::Respond
                };
                ex.record(self.action, decision, true);
                Flow::respond(res)
            }
        }
    }
}

impl Login {
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
        ex.st.scratch.put(ClientId(config.client_id.clone()));
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
        if let Msg::Req(req) = &mut *ex.msg {
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
            ex.st.response_headers.push((SET_COOKIE, cookie));
        }
        ex.st.scratch.put(SignedIn(identity));
        ex.record(self.action, Decision::Allow, true);
    }
}

/// The edge's verdict for the login action being run, in the request state's scratch (taken
/// by the action when the engine runs it again).
struct Verdict(LoginOutcome);

/// The client id the last login action used.
struct ClientId(String);

/// The user a login action let through.
struct SignedIn(Identity);

/// Suspends the action until the edge's authenticator has decided `ask`.
fn need_login(ask: LoginRequest) -> Flow {
    Flow::wait(move |services, st| {
        Box::pin(async move {
            let outcome = match services.login.as_deref() {
                Some(a) => a.login(&ask).await,
                None => LoginOutcome::Respond(codes::error_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    codes::LOGIN_UNAVAILABLE,
                    "sign-in needs the edge (not available in offline evaluation)",
                )),
            };
            st.scratch.put(Verdict(outcome));
        })
    })
}

impl RequestState {
    /// The signed-in user, when an oauth or openid-connect action let the request through.
    pub fn identity(&self) -> Option<&Identity> {
        self.scratch.get::<SignedIn>().map(|s| &s.0)
    }

    /// The last oauth / openid-connect decision (`Allow`, `Challenge` for a redirect to the
    /// provider, `Deny` for an error page, `Respond` for logout and the callback's end,
    /// `Preflight`) and the client id it used, if one ran.
    pub fn login(&self) -> Option<(Decision, Option<&str>)> {
        let client_id = self.scratch.get::<ClientId>().map(|c| c.0.as_str());
        self.last_outcome_of(&["oauth", "openid-connect"])
            .map(|o| (o.decision, client_id))
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

fn required_template(cx: &mut Cx, obj: &Obj, key: &str, c: &Cfg) -> Option<Template> {
    let (node, path) = obj.require(cx, key)?;
    let text = crate::load::check::string(cx, node, &path)?;
    if text.trim().is_empty() {
        cx.err(
            &path,
            node.pos,
            format!(
                "`{key}` must not be empty (leave out both client_id and client_secret to sign \
                 in with the edge operator's default app)"
            ),
        );
        return None;
    }
    template(cx, &text, &path, node.pos, c.names)
}

/// `client_id` and `client_secret`: both from the policy, or, when it gives neither, the edge
/// operator's default app for the provider (ngrok's managed apps), chosen now.
fn credentials(
    cx: &mut Cx,
    obj: &Obj,
    c: &Cfg,
    provider: Option<&ProviderField>,
) -> (Option<Template>, Option<Template>) {
    match (obj.get("client_id"), obj.get("client_secret")) {
        (None, None) => {}
        (Some(_), Some(_)) => {
            return (
                required_template(cx, obj, "client_id", c),
                required_template(cx, obj, "client_secret", c),
            )
        }
        (Some((node, path)), None) | (None, Some((node, path))) => {
            cx.err(
                &path,
                node.pos,
                "give both client_id and client_secret, or neither to sign in with the edge \
                 operator's default app",
            );
            return (None, None);
        }
    }
    let app = match provider {
        // An unknown provider was reported already.
        None => return (None, None),
        Some(ProviderField::OAuth(name)) => default_app(cx, obj, Some(name), None),
        Some(ProviderField::Oidc(issuer)) => match issuer.literal() {
            Some(url) => default_app(cx, obj, None, Some(url)),
            None => {
                cx.err(
                    &obj.path,
                    obj.pos,
                    "without client_id and client_secret the issuer_url must be literal: the \
                     edge's default app is chosen by issuer when the policy loads",
                );
                None
            }
        },
    };
    match app {
        Some(app) => {
            cx.resolver.remember(&app.client_secret);
            (
                Some(Template::text(&app.client_id)),
                Some(Template::secret(app.client_secret)),
            )
        }
        None => (None, None),
    }
}

/// The operator's default app, or an error saying which edge.yaml setting would provide it.
fn default_app(
    cx: &mut Cx,
    obj: &Obj,
    oauth: Option<&str>,
    issuer: Option<&str>,
) -> Option<LoginApp> {
    let app = cx.resolver.env().login_app(oauth, issuer);
    if app.is_none() {
        let setting = match (oauth, issuer) {
            (Some(name), _) => {
                format!("`login_apps: {{oauth: {{{name}: {{client_id, client_secret}}}}}}`")
            }
            (_, issuer) => format!(
                "a `login_apps: {{oidc: [{{issuer_url: {}, client_id, client_secret}}]}}` entry",
                issuer.unwrap_or_default()
            ),
        };
        cx.err(
            &obj.path,
            obj.pos,
            format!(
                "no client_id and client_secret, and the edge has no default app for this \
                 provider: give both, or the edge operator adds {setting} to edge.yaml"
            ),
        );
    }
    app
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
fn cookie_domain(cx: &mut Cx, d: String, path: &str, pos: Option<Pos>) -> Option<String> {
    let ok = !d.is_empty()
        && d.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
    if !ok {
        cx.err(path, pos, format!("expected a domain name, got `{d}`"));
        return None;
    }
    Some(d)
}

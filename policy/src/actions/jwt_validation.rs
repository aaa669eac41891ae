//! jwt-validation: requests must carry JWTs signed by a key from the configured JWKS URLs,
//! from an allowed issuer, for an allowed audience, and within their validity window.

use super::action::{Action, Exec, Flow};
use super::config::{template, Cfg};
use crate::cel::template::Template;
use crate::codes;
use crate::jws::{self, Algorithm, JwsError};
use crate::keys::KeyError;
use crate::load::check::{list, Cx, Obj};
use crate::load::node::Node;
use crate::run::outcome::Decision;
use crate::run::state::RequestState;
use cel::Value;
use http::header::{HeaderValue, WWW_AUTHENTICATE};
use http::{Method, StatusCode};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// Where one token is read from.
#[derive(Debug)]
struct TokenSpec {
    /// `header` or `body`.
    in_body: bool,
    /// Header name, or body field (form or JSON).
    name: Template,
    prefix: Template,
}

/// `jwt-validation`.
#[derive(Debug)]
pub(crate) struct JwtValidation {
    issuers: Vec<Template>,
    audiences: Vec<Template>,
    tokens: Vec<TokenSpec>,
    algorithms: Vec<Algorithm>,
    jkus: Vec<Template>,
    enforce: bool,
}

/// Why a request's tokens were refused: 401 (authentication) or 403 (not for us).
#[derive(Debug)]
enum Refusal {
    Unauthenticated(String),
    Forbidden(String),
}

impl JwtValidation {
    pub fn compile(cx: &mut Cx, c: &Cfg) -> Option<Self> {
        let obj = c.open(cx, &["issuer", "audience", "http", "jws", "enforce"])?;
        let before = cx.errors.len();
        let issuers = allow_list(cx, &obj, "issuer", true, c);
        let audiences = allow_list(cx, &obj, "audience", false, c);
        let tokens = obj
            .require(cx, "http")
            .and_then(|(n, p)| {
                let http = Obj::open(cx, n, &p, &["tokens"])?;
                let (tn, tp) = http.require(cx, "tokens")?;
                let items = list(cx, tn, &tp, Some(10));
                if items.is_empty() {
                    cx.err(&tp, tn.pos, "expected at least one token");
                }
                Some(
                    items
                        .into_iter()
                        .filter_map(|(n, p)| token_spec(cx, n, &p, c))
                        .collect(),
                )
            })
            .unwrap_or_default();
        let (algorithms, jkus) = obj
            .require(cx, "jws")
            .and_then(|(n, p)| jws(cx, n, &p, c))
            .unwrap_or_default();
        let enforce = obj.bool(cx, "enforce", true);
        (cx.errors.len() == before).then_some(Self {
            issuers,
            audiences,
            tokens,
            algorithms,
            jkus,
            enforce,
        })
    }
}

impl Action for JwtValidation {
    /// Whether a token is read from the body.
    fn reads_request_body(&self) -> bool {
        self.tokens.iter().any(|t| t.in_body)
    }

    fn run(&self, ex: &mut Exec) -> Flow {
        const ACTION: &str = "jwt-validation";
        let mut jkus = Vec::with_capacity(self.jkus.len());
        for t in &self.jkus {
            match ex.render(ACTION, t) {
                Ok(u) => jkus.push(u),
                Err(flow) => return flow,
            }
        }
        // Keys first: a missing set suspends the action until the engine has fetched it.
        let mut sets = Vec::new();
        for url in &jkus {
            match key_set(ex.st, url) {
                None => return need_keys(url, false),
                Some(keys) => sets.extend(keys),
            }
        }
        let issuers = match render_all(ex, &self.issuers) {
            Ok(v) => v,
            Err(flow) => return flow,
        };
        let audiences = match render_all(ex, &self.audiences) {
            Ok(v) => v,
            Err(flow) => return flow,
        };
        let mut results = Vec::new();
        let mut refusal = None;
        for spec in &self.tokens {
            let (token, location) = match self.extract(ex, spec) {
                Ok(t) => t,
                Err(flow) => return flow,
            };
            let Some(token) = token else {
                refusal.get_or_insert(Refusal::Unauthenticated(format!(
                    "no token in the {location}"
                )));
                continue;
            };
            let checked = self.check(ex, &token, &sets, &issuers, &audiences);
            let checked = match checked {
                Check::Done(r) => r,
                Check::Refresh => {
                    // An unknown kid: ask once per JWKS URL for a fresh copy (key rotation).
                    if let Some(url) = jkus.iter().find(|u| !key_set_refreshed(ex.st, u)) {
                        return need_keys(url, true);
                    }
                    Err((
                        Refusal::Unauthenticated("no signing key matches the token".into()),
                        None,
                    ))
                }
            };
            let (parts, verified) = match checked {
                Ok(parts) => (Some(parts), true),
                Err((r, parts)) => {
                    refusal.get_or_insert(r);
                    (parts, false)
                }
            };
            results.push(token_result(
                parts,
                &location,
                &spec_property(spec),
                verified,
            ));
        }
        ex.set_result("jwt_validation", || {
            HashMap::from([("tokens".to_string(), Value::List(Arc::new(results)))]).into()
        });
        let Some(refusal) = refusal else {
            ex.record(ACTION, Decision::Allow, self.enforce);
            return Flow::Next;
        };
        let (status, code, message) = match &refusal {
            Refusal::Unauthenticated(m) => (StatusCode::UNAUTHORIZED, codes::JWT_INVALID, m),
            Refusal::Forbidden(m) => (StatusCode::FORBIDDEN, codes::JWT_NOT_ALLOWED, m),
        };
        ex.st.push_error(format!("{ACTION}: {message}"));
        ex.refuse(ACTION, Decision::Deny, self.enforce, || {
            let mut res =
                codes::error_response(status, code, &format!("JWT validation failed: {message}."));
            if status == StatusCode::UNAUTHORIZED {
                res.headers_mut().insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer error=\"invalid_token\""),
                );
            }
            res
        })
    }
}

impl JwtValidation {
    /// The token a spec points at (prefix removed), and where that is, for messages.
    #[allow(clippy::type_complexity)]
    fn extract(&self, ex: &mut Exec, spec: &TokenSpec) -> Result<(Option<String>, String), Flow> {
        const ACTION: &str = "jwt-validation";
        let name = ex.render(ACTION, &spec.name)?;
        let prefix = ex.render(ACTION, &spec.prefix)?;
        if !spec.in_body {
            let raw = ex
                .req()
                .headers()
                .get(name.to_ascii_lowercase().as_str())
                .and_then(|v| v.to_str().ok())
                .map(str::trim);
            let token = raw
                .and_then(|r| strip_prefix_ci(r, &prefix))
                .map(str::to_string);
            return Ok((token, format!("`{name}` header")));
        }
        let method = ex.req().method();
        let has_body = [Method::POST, Method::PUT, Method::PATCH].contains(method);
        let body = ex.st.request_body.clone().unwrap_or_default();
        let token = has_body
            .then(|| body_field(ex.req().headers(), &body, &name))
            .flatten()
            .and_then(|v| strip_prefix_ci(v.trim(), &prefix).map(str::to_string));
        Ok((token, format!("body field `{name}`")))
    }

    /// Verifies one token against the keys and the allow lists.
    fn check(
        &self,
        ex: &Exec,
        token: &str,
        keys: &[Jwk],
        issuers: &[String],
        audiences: &[String],
    ) -> Check {
        let unauthenticated = |e: JwsError| Refusal::Unauthenticated(e.to_string());
        match jws::verify(token, keys, &self.algorithms) {
            Ok(claims) => {
                Check::Done(self.claims(ex, &claims, issuers, audiences, raw_parts(token)))
            }
            Err(JwsError::UnknownKey) => Check::Refresh,
            // Includes `alg: none`, which jsonwebtoken does not even parse.
            Err(e @ JwsError::Malformed(_)) => Check::Done(Err((unauthenticated(e), None))),
            Err(e) => Check::Done(Err((unauthenticated(e), raw_parts(token)))),
        }
    }

    /// Checks the verified claims: time window, issuer, audience.
    #[allow(clippy::type_complexity)]
    fn claims(
        &self,
        ex: &Exec,
        claims: &serde_json::Value,
        issuers: &[String],
        audiences: &[String],
        raw: Option<RawParts>,
    ) -> Result<RawParts, (Refusal, Option<RawParts>)> {
        let now = ex
            .st
            .now
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let fail = |r: Refusal| Err((r, raw.clone()));
        if let Err(why) = jws::check_time(claims, now) {
            return fail(Refusal::Unauthenticated(why.into()));
        }
        let iss = claims
            .get("iss")
            .and_then(serde_json::Value::as_str)
            .unwrap_or("");
        if !issuers.iter().any(|i| i == iss) {
            return fail(Refusal::Forbidden(format!("issuer `{iss}` is not allowed")));
        }
        if !audiences.is_empty() && !jws::audience_contains(claims, audiences) {
            return fail(Refusal::Forbidden(
                "the token's audience is not allowed".into(),
            ));
        }
        raw.ok_or((Refusal::Unauthenticated("malformed token".into()), None))
    }
}

/// A token's decoded parts for the result variables.
#[derive(Clone, Debug)]
struct RawParts {
    header: serde_json::Value,
    payload: serde_json::Value,
    signature: String,
}

enum Check {
    Done(Result<RawParts, (Refusal, Option<RawParts>)>),
    /// No key with the token's kid: the key set may have rotated.
    Refresh,
}

/// Header and payload JSON and the signature text of a compact JWS (unverified).
fn raw_parts(token: &str) -> Option<RawParts> {
    use base64::Engine as _;
    let mut it = token.split('.');
    let (h, p, s) = (it.next()?, it.next()?, it.next()?);
    let decode = |part: &str| -> Option<serde_json::Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    Some(RawParts {
        header: decode(h)?,
        payload: decode(p)?,
        signature: s.to_string(),
    })
}

fn token_result(parts: Option<RawParts>, location: &str, property: &str, verified: bool) -> Value {
    let json = |v: &serde_json::Value| cel::to_value(v).unwrap_or(Value::Null);
    let mut m: HashMap<String, Value> = HashMap::from([
        (
            "location".to_string(),
            Value::from(location.split(' ').next_back().unwrap_or("")),
        ),
        ("location_property".to_string(), Value::from(property)),
        ("verified".to_string(), Value::Bool(verified)),
    ]);
    if let Some(p) = parts {
        m.insert("header".into(), json(&p.header));
        m.insert("payload".into(), json(&p.payload));
        m.insert("signature".into(), Value::from(p.signature));
    }
    m.into()
}

fn spec_property(spec: &TokenSpec) -> String {
    spec.name.literal().unwrap_or("").to_string()
}

/// `value` without `prefix` (ASCII case-insensitive: `bearer ` works for `Bearer `).
fn strip_prefix_ci<'a>(value: &'a str, prefix: &str) -> Option<&'a str> {
    let head = value.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &value[prefix.len()..])
        .filter(|t| !t.is_empty())
}

/// A top-level field of a form or JSON body.
fn body_field(headers: &http::HeaderMap, body: &[u8], name: &str) -> Option<String> {
    let ct = crate::cel::values::header_str(headers, "content-type");
    if ct.starts_with("application/x-www-form-urlencoded") {
        return form_urlencoded::parse(body)
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned());
    }
    let json: serde_json::Value = serde_json::from_slice(body).ok()?;
    json.get(name)?.as_str().map(str::to_string)
}

fn render_all(ex: &mut Exec, ts: &[Template]) -> Result<Vec<String>, Flow> {
    ts.iter().map(|t| ex.render("jwt-validation", t)).collect()
}

/// `issuer` / `audience`: `{allow_list: [{value: C}, ...]}`.
fn allow_list(cx: &mut Cx, obj: &Obj, key: &str, required: bool, c: &Cfg) -> Vec<Template> {
    let found = if required {
        obj.require(cx, key)
    } else {
        obj.get(key)
    };
    let Some((n, p)) = found else {
        return Vec::new();
    };
    let Some(o) = Obj::open(cx, n, &p, &["allow_list"]) else {
        return Vec::new();
    };
    let Some((ln, lp)) = o.require(cx, "allow_list") else {
        return Vec::new();
    };
    let items = list(cx, ln, &lp, None);
    if items.is_empty() {
        cx.err(&lp, ln.pos, format!("expected at least one {key}"));
    }
    items
        .into_iter()
        .filter_map(|(n, p)| {
            let entry = Obj::open(cx, n, &p, &["value"])?;
            entry.require(cx, "value")?;
            let (v, vp, pos) = entry.string(cx, "value")?;
            template(cx, &v, &vp, pos, c.names)
        })
        .collect()
}

/// One `http.tokens[i]`.
fn token_spec(cx: &mut Cx, n: &Node, p: &str, c: &Cfg) -> Option<TokenSpec> {
    let o = Obj::open(cx, n, p, &["type", "method", "name", "prefix"])?;
    const TYPES: &[&str] = &[
        "jwt",
        "id_token",
        "access_token",
        "at+jwt",
        "it+jwt",
        "plain",
    ];
    if let Some((t, tp, pos)) = o.string(cx, "type") {
        if !TYPES.contains(&t.as_str()) {
            cx.err(
                &tp,
                pos,
                format!(
                    "unknown token type `{t}`, expected one of: {}",
                    TYPES.join(", ")
                ),
            );
        }
    }
    let in_body = match o.string(cx, "method") {
        None => false,
        Some((m, _, _)) if m == "header" => false,
        Some((m, _, _)) if m == "body" => true,
        Some((m, mp, pos)) => {
            cx.err(&mp, pos, format!("expected `header` or `body`, got `{m}`"));
            false
        }
    };
    o.require(cx, "name")?;
    let (name, np, npos) = o.string(cx, "name")?;
    let name = template(cx, &name, &np, npos, c.names)?;
    let prefix = match o.string(cx, "prefix") {
        Some((s, sp, pos)) => template(cx, &s, &sp, pos, c.names)?,
        None => template(cx, "", p, None, c.names)?,
    };
    Some(TokenSpec {
        in_body,
        name,
        prefix,
    })
}

/// `jws`: `allowed_algorithms` (no `none`) and `keys.sources.additional_jkus`.
fn jws(cx: &mut Cx, n: &Node, p: &str, c: &Cfg) -> Option<(Vec<Algorithm>, Vec<Template>)> {
    let o = Obj::open(cx, n, p, &["allowed_algorithms", "keys"])?;
    let mut algorithms = Vec::new();
    if let Some((an, ap)) = o.require(cx, "allowed_algorithms") {
        let names = crate::load::check::string_list(cx, an, &ap, None);
        if names.is_empty() {
            cx.err(&ap, an.pos, "expected at least one algorithm");
        }
        for (name, np, pos) in names {
            match Algorithm::from_str(&name) {
                Ok(a) => algorithms.push(a),
                Err(_) if name.eq_ignore_ascii_case("none") => cx.err(
                    &np,
                    pos,
                    "`none` is not allowed: unsigned tokens prove nothing",
                ),
                Err(_) => cx.err(&np, pos, format!("unknown algorithm `{name}`")),
            }
        }
    }
    let mut jkus = Vec::new();
    if let Some((kn, kp)) = o.require(cx, "keys") {
        let keys = Obj::open(cx, kn, &kp, &["sources", "identification"])?;
        let (sn, sp) = keys.require(cx, "sources")?;
        let sources = Obj::open(cx, sn, &sp, &["additional_jkus"])?;
        let (jn, jp) = sources.require(cx, "additional_jkus")?;
        let urls = crate::load::check::string_list(cx, jn, &jp, None);
        if urls.is_empty() {
            cx.err(&jp, jn.pos, "expected at least one JWKS URL");
        }
        for (u, up, pos) in urls {
            jkus.extend(template(cx, &u, &up, pos, c.names));
        }
    }
    Some((algorithms, jkus))
}

/// The key sets fetched for this request (or why they could not be), in the request state's
/// scratch.
#[derive(Default)]
struct FetchedKeys(Vec<Fetched>);

/// A key set fetched for one JWKS URL.
struct Fetched {
    url: String,
    set: Option<Arc<JwkSet>>,
    refreshed: bool,
}

/// Suspends the action until the key set at `url` has been fetched (afresh when `refresh`).
fn need_keys(url: &str, refresh: bool) -> Flow {
    let url = url.to_string();
    Flow::wait(move |services, st| {
        Box::pin(async move {
            let got = match services.keys.as_deref() {
                Some(k) => k.key_set(&url, refresh).await,
                None => Err(KeyError {
                    url: url.clone(),
                    reason: "no key source in offline evaluation".into(),
                }),
            };
            store_keys(st, url, refresh, got);
        })
    })
}

/// Keeps a key set fetched for `url` (a failure is kept as an empty set, and its reason among
/// the errors).
fn store_keys(
    st: &mut RequestState,
    url: String,
    refreshed: bool,
    got: Result<Arc<JwkSet>, KeyError>,
) {
    let set = match got {
        Ok(s) => Some(s),
        Err(e) => {
            st.push_error(format!("jwt-validation: {e}"));
            None
        }
    };
    let mut fetched = st.scratch.take::<FetchedKeys>().unwrap_or_default();
    fetched.0.push(Fetched {
        url,
        set,
        refreshed,
    });
    st.scratch.put(fetched);
}

/// The keys of the JWKS at `url` fetched for this request: `None` before it was asked for,
/// empty when fetching failed.
fn key_set(st: &RequestState, url: &str) -> Option<Vec<Jwk>> {
    let fetched = st.scratch.get::<FetchedKeys>()?;
    let f = fetched.0.iter().rev().find(|f| f.url == url)?;
    Some(f.set.as_ref().map(|s| s.keys.clone()).unwrap_or_default())
}

/// Whether the JWKS at `url` was already fetched afresh for this request.
fn key_set_refreshed(st: &RequestState, url: &str) -> bool {
    st.scratch
        .get::<FetchedKeys>()
        .is_some_and(|f| f.0.iter().any(|f| f.url == url && f.refreshed))
}

impl RequestState {
    /// The jwt-validation decision (`Allow` or `Deny`), if one ran.
    pub fn jwt_validation(&self) -> Option<Decision> {
        self.last_outcome("jwt-validation")
    }
}

//! jwt-validation: requests must carry JWTs signed by a key from the configured JWKS URLs,
//! from an allowed issuer, for an allowed audience, and within their validity window.

use super::{template, Cfg, Exec, Flow};
use crate::cel::expr::Template;
use crate::codes;
use crate::jws::{self, Algorithm, JwsError};
use crate::load::check::{list, Cx, Obj};
use crate::load::node::Node;
use crate::run::state::Decision;
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

    /// Whether a token is read from the body.
    pub fn reads_body(&self) -> bool {
        self.tokens.iter().any(|t| t.in_body)
    }

    pub fn run(&self, ex: &mut Exec) -> Flow {
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
            match ex.st.key_set(url) {
                None => return Flow::need_keys(url, false),
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
                    if let Some(url) = jkus.iter().find(|u| !ex.st.key_set_refreshed(u)) {
                        return Flow::need_keys(url, true);
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
        ex.st.errors.push(format!("{ACTION}: {message}"));
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
            template(cx, &v, &vp, pos, c.phase)
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
    let name = template(cx, &name, &np, npos, c.phase)?;
    let prefix = match o.string(cx, "prefix") {
        Some((s, sp, pos)) => template(cx, &s, &sp, pos, c.phase)?,
        None => template(cx, "", p, None, c.phase)?,
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
            jkus.extend(template(cx, &u, &up, pos, c.phase));
        }
    }
    Some((algorithms, jkus))
}

/// A key set the engine fetched for this request (or why it could not).
#[derive(Clone, Debug)]
pub(crate) struct FetchedKeys {
    pub url: String,
    pub set: Option<Arc<JwkSet>>,
    pub refreshed: bool,
}

#[cfg(test)]
mod tests {
    use crate::testutil::*;
    use crate::{Decision, JwkSet, KeyError, KeySource, KeysFuture, RequestVerdict};
    use jsonwebtoken::{encode, EncodingKey, Header};
    use serde_json::json;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    /// TestClock's now.
    const NOW: u64 = 1_800_000_000;

    /// Serves one HS256 key; after `rotate`, under a new kid. Counts refresh requests.
    struct Keys {
        kid: Mutex<String>,
        refreshes: AtomicUsize,
    }

    impl KeySource for Keys {
        fn key_set<'a>(&'a self, url: &'a str, refresh: bool) -> KeysFuture<'a> {
            if refresh {
                self.refreshes.fetch_add(1, Ordering::SeqCst);
            }
            let kid = self.kid.lock().unwrap().clone();
            Box::pin(async move {
                if url != "https://idp.example.com/jwks" {
                    return Err(KeyError {
                        url: url.into(),
                        reason: "unknown".into(),
                    });
                }
                let k = base64::Engine::encode(
                    &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                    SECRET,
                );
                let set: JwkSet = serde_json::from_value(
                    json!({"keys": [{"kty": "oct", "k": k, "kid": kid, "alg": "HS256"}]}),
                )
                .unwrap();
                Ok(Arc::new(set))
            })
        }
    }

    const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: jwt-validation
        config:
          issuer: {allow_list: [{value: "https://idp.example.com/"}]}
          audience: {allow_list: [{value: api}, {value: "${'a' + 'pi2'}"}]}
          http: {tokens: [{type: jwt, method: header, name: X-Token, prefix: "Bearer "}]}
          jws:
            allowed_algorithms: [HS256]
            keys: {sources: {additional_jkus: ["https://idp.example.com/jwks"]}}
  - expressions: ["actions.ngrok.jwt_validation.tokens[0].verified"]
    actions:
      - type: add-headers
        config: {headers: {x-sub: "${actions.ngrok.jwt_validation.tokens[0].payload.sub}"}}
"#;

    fn token(kid: &str, claims: serde_json::Value) -> String {
        let mut h = Header::new(jsonwebtoken::Algorithm::HS256);
        h.kid = Some(kid.into());
        encode(&h, &claims, &EncodingKey::from_secret(SECRET)).unwrap()
    }

    fn claims(sub: &str) -> serde_json::Value {
        json!({"iss": "https://idp.example.com/", "aud": "api", "sub": sub, "exp": NOW + 60})
    }

    fn run_async(
        e: &crate::Engine,
        token: Option<&str>,
    ) -> (crate::RequestState, http::request::Parts, RequestVerdict) {
        let mut st = state(e, "1.1.1.1");
        let auth = token.map(|t| format!("bearer {t}"));
        let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("x-token", a.as_str())).collect();
        let mut r = req("GET /", &headers);
        let v = crate::run::engine::ready(e.on_http_request_async(&mut st, &mut r));
        (st, r, v)
    }

    fn engine_with(keys: &Arc<Keys>) -> crate::Engine {
        engine(POLICY)
            .with_clock(Arc::new(TestClock::default()))
            .with_key_source(keys.clone())
    }

    fn status(v: &RequestVerdict) -> u16 {
        match v {
            RequestVerdict::Continue => 200,
            RequestVerdict::Respond(r) => r.status().as_u16(),
        }
    }

    fn keys(kid: &str) -> Arc<Keys> {
        Arc::new(Keys {
            kid: Mutex::new(kid.into()),
            refreshes: AtomicUsize::new(0),
        })
    }

    #[test]
    fn valid_token_passes_with_its_claims() {
        let k = keys("k1");
        let e = engine_with(&k);
        let (st, r, v) = run_async(&e, Some(&token("k1", claims("alice"))));
        assert_eq!(status(&v), 200, "{:?}", st.errors());
        assert_eq!(r.headers["x-sub"], "alice");
        assert_eq!(st.jwt_validation(), Some(Decision::Allow));
        let mut c = claims("bob");
        c["aud"] = json!(["other", "api2"]);
        assert_eq!(status(&run_async(&e, Some(&token("k1", c))).2), 200);
    }

    #[test]
    fn refusals_have_their_status_and_code() {
        let e = engine_with(&keys("k1"));
        let (_, _, v) = run_async(&e, None);
        let RequestVerdict::Respond(res) = v else {
            panic!("refused")
        };
        assert_eq!(res.status(), 401);
        assert_eq!(header(&res, "sluice-error-code"), Some("ERR_SLUICE_3401"));
        assert!(String::from_utf8_lossy(res.body()).contains("no token in the `X-Token` header"));

        let cases = [
            (
                json!({"iss": "https://idp.example.com", "aud": "api", "exp": NOW + 60}),
                403,
            ),
            (
                json!({"iss": "https://idp.example.com/", "aud": "web", "exp": NOW + 60}),
                403,
            ),
            (
                json!({"sub": "s", "iss": "https://idp.example.com/", "aud": "api", "exp": NOW - 31}),
                401,
            ),
            (
                json!({"sub": "s", "iss": "https://idp.example.com/", "aud": "api", "exp": NOW - 29}),
                200,
            ),
            (
                json!({"sub": "s", "iss": "https://idp.example.com/", "aud": "api", "nbf": NOW + 31}),
                401,
            ),
            (
                json!({"sub": "s", "iss": "https://idp.example.com/", "aud": "api", "nbf": NOW + 29}),
                200,
            ),
        ];
        for (c, want) in cases {
            assert_eq!(
                status(&run_async(&e, Some(&token("k1", c.clone()))).2),
                want,
                "{c}"
            );
        }
        let forged = format!("{}x", token("k1", claims("x")));
        assert_eq!(status(&run_async(&e, Some(&forged)).2), 401);
        let none = format!("{}.{}.", b64(&json!({"alg": "none"})), b64(&claims("x")));
        assert_eq!(status(&run_async(&e, Some(&none)).2), 401);
        let hs512 = {
            let h = Header::new(jsonwebtoken::Algorithm::HS512);
            encode(&h, &claims("x"), &EncodingKey::from_secret(SECRET)).unwrap()
        };
        let (st, _, v) = run_async(&e, Some(&hs512));
        assert_eq!(status(&v), 401);
        assert!(
            st.errors()[0].contains("HS512 is not allowed"),
            "{:?}",
            st.errors()
        );
    }

    fn b64(v: &serde_json::Value) -> String {
        base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            v.to_string(),
        )
    }

    #[test]
    fn unknown_kid_refreshes_the_key_set_once() {
        let k = keys("k1");
        let e = engine_with(&k);
        // The provider rotated to k2: the cached set (k1) lacks it, one refresh finds it.
        *k.kid.lock().unwrap() = "k2".into();
        assert_eq!(
            status(&run_async(&e, Some(&token("k2", claims("a")))).2),
            200
        );
        assert_eq!(
            k.refreshes.load(Ordering::SeqCst),
            0,
            "first fetch is not a refresh"
        );
        let k = keys("k1");
        let e = engine_with(&k);
        let (st, _, v) = run_async(&e, Some(&token("k9", claims("a"))));
        assert_eq!(status(&v), 401);
        assert_eq!(k.refreshes.load(Ordering::SeqCst), 1);
        assert!(
            st.errors()[0].contains("no signing key matches"),
            "{:?}",
            st.errors()
        );
    }

    #[test]
    fn offline_evaluation_has_no_keys() {
        let e = engine(POLICY).with_clock(Arc::new(TestClock::default()));
        let o = run(
            &e,
            req(
                "GET /",
                &[("x-token", &format!("Bearer {}", token("k1", claims("a"))))],
            ),
            "1.1.1.1",
        );
        assert_eq!(o.res.status(), 401);
        assert!(
            o.st.errors().iter().any(|e| e.contains("no key source")),
            "{:?}",
            o.st.errors()
        );
    }

    #[test]
    fn body_tokens() {
        let e = engine(&POLICY.replace(
            "method: header, name: X-Token, prefix: \"Bearer \"",
            "method: body, name: access_token",
        ))
        .with_clock(Arc::new(TestClock::default()))
        .with_key_source(keys("k1"));
        assert!(e.reads_request_body());
        let body = format!("access_token={}&x=1", token("k1", claims("form")));
        let mut st = state(&e, "1.1.1.1");
        st.set_request_body(body.into());
        let mut r = req(
            "POST /",
            &[("content-type", "application/x-www-form-urlencoded")],
        );
        let v = crate::run::engine::ready(e.on_http_request_async(&mut st, &mut r));
        assert_eq!(status(&v), 200, "{:?}", st.errors());
        assert_eq!(r.headers["x-sub"], "form");
    }

    #[test]
    fn config_errors() {
        let errs = errors(
            "on_http_request: [{actions: [{type: jwt-validation, config: {\
             http: {tokens: [{method: query, name: t}]},\
             jws: {allowed_algorithms: [none, RS256], keys: {sources: {additional_jkus: []}}}}}]}]",
        );
        assert_eq!(errs.len(), 4, "{errs:?}");
        assert!(
            errs[0].contains("missing required field `issuer`"),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("tokens[0].method: expected `header` or `body`, got `query`")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("allowed_algorithms[0]: `none` is not allowed")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("additional_jkus: expected at least one JWKS URL")),
            "{errs:?}"
        );
    }
}

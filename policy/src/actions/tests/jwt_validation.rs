//! jwt-validation, run through the engine with a key source that rotates keys.

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
            let k =
                base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, SECRET);
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
        RequestVerdict::Continue | RequestVerdict::Forward(_) => 200,
        RequestVerdict::Respond(r) => r.status().as_u16(),
        RequestVerdict::Close => 0,
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

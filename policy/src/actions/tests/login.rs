//! oauth and openid-connect, run through the engine with a pretend edge.

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
        RequestVerdict::Continue | RequestVerdict::Forward(_) | RequestVerdict::Close => {
            panic!("not signed in")
        }
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
            RequestVerdict::Continue | RequestVerdict::Forward(_) => 200,
            RequestVerdict::Close => 0,
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
    assert!(
        has("give both client_id and client_secret, or neither"),
        "{errs:?}"
    );
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

fn operator_apps() -> crate::LoadEnv {
    let app = |id: &str| crate::LoginApp {
        client_id: id.into(),
        client_secret: crate::Secret::new(format!("{id}-operator-secret")),
    };
    crate::LoadEnv::default().with_login_apps(crate::LoginApps {
        oauth: [("github".to_string(), app("gh-default"))].into(),
        oidc: [("https://idp.example.com/".to_string(), app("oidc-default"))].into(),
    })
}

/// What the edge is asked with a policy compiled against `env`.
fn asked_with(policy: &str, env: &crate::LoadEnv) -> crate::LoginConfig {
    let p = crate::Policy::parse_with(policy, "p.yml", env).unwrap_or_else(|e| panic!("{e}"));
    let edge = Arc::new(Edge::default());
    let e = crate::Engine::new(vec![p]).with_authenticator(edge.clone());
    let mut st = state(&e, "1.1.1.1");
    let mut r = req("GET /x", &[]);
    let _ = crate::run::engine::ready(e.on_http_request_async(&mut st, &mut r));
    let asked = edge.asked.lock().unwrap()[0].config.clone();
    asked
}

#[test]
fn without_credentials_the_operators_default_app_signs_in() {
    let env = operator_apps();
    let c = asked_with(
        "on_http_request: [{actions: [{type: oauth, config: {provider: GitHub}}]}]",
        &env,
    );
    assert_eq!(c.client_id, "gh-default");
    assert_eq!(c.client_secret, "gh-default-operator-secret");
    let c = asked_with(
        "on_http_request: [{actions: [{type: openid-connect, config: {issuer_url: 'https://idp.example.com'}}]}]",
        &env,
    );
    assert_eq!(c.client_id, "oidc-default");
    // The policy's own credentials win over the default.
    let c = asked_with(
        "on_http_request: [{actions: [{type: oauth, config: {provider: github, client_id: mine, client_secret: mysecret}}]}]",
        &env,
    );
    assert_eq!(c.client_id, "mine");
    // The default's secret never shows in the compiled policy's Debug output.
    let p = crate::Policy::parse_with(
        "on_http_request: [{actions: [{type: oauth, config: {provider: github}}]}]",
        "p.yml",
        &env,
    )
    .unwrap();
    let shown = format!("{p:?}");
    assert!(!shown.contains("operator-secret"), "{shown}");
    // Flags without --oauth-client-id use it too.
    let flags = crate::Shorthand {
        oauth: Some("github".into()),
        ..Default::default()
    };
    assert!(flags.compile_with(&env).is_ok());
    assert!(flags.compile().is_err());
}

#[test]
fn without_credentials_or_a_default_app_the_policy_is_refused() {
    let env = operator_apps();
    let refused = |policy: &str| {
        crate::Policy::parse_with(policy, "p.yml", &env)
            .map(|_| ())
            .unwrap_err()
            .to_string()
    };
    let e = refused(
        "on_http_request:\n  - actions:\n      - type: oauth\n        config: {provider: google}\n",
    );
    assert!(e.starts_with("p.yml:4:18: "), "{e}");
    assert!(
        e.contains("login_apps: {oauth: {google: {client_id, client_secret}}}"),
        "{e}"
    );
    let e = refused("on_http_request: [{actions: [{type: oidc, config: {issuer_url: 'https://other.example'}}]}]");
    assert!(e.contains("issuer_url: https://other.example"), "{e}");
    let e = refused(
        "on_http_request: [{actions: [{type: oidc, config: {issuer_url: '${req.host}'}}]}]",
    );
    assert!(e.contains("issuer_url must be literal"), "{e}");
    let e = refused("on_http_request: [{actions: [{type: oauth, config: {provider: github, client_secret: x}}]}]");
    assert!(e.contains("give both client_id and client_secret"), "{e}");
}

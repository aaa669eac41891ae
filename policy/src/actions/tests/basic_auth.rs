//! basic-auth, run through the engine.

use crate::testutil::*;
use crate::Decision;

const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: basic-auth
        config:
          realm: staging
          credentials: ["alice:correct-horse", "bob:${'battery-staple'}"]
          allow_cors_preflight: true
  - expressions: ["actions.ngrok.basic_auth.credentials.authorized"]
    actions:
      - type: add-headers
        config: {headers: {x-user: "${actions.ngrok.basic_auth.credentials.username}"}}
"#;

#[test]
fn challenge_then_pass() {
    let e = engine(POLICY);
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 401);
    assert_eq!(
        header(&o.res, "www-authenticate"),
        Some("Basic realm=\"staging\"")
    );
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3221"));
    assert_eq!(o.st.basic_auth(), Some((None, Decision::Challenge)));

    let o = run(
        &e,
        req("GET /", &[("authorization", &basic("alice", "wrong-pass"))]),
        "1.1.1.1",
    );
    assert_eq!(o.res.status(), 401);
    assert_eq!(
        o.st.basic_auth(),
        Some((Some("alice"), Decision::Challenge))
    );

    for (u, p) in [("alice", "correct-horse"), ("bob", "battery-staple")] {
        let o = run(
            &e,
            req("GET /", &[("authorization", &basic(u, p))]),
            "1.1.1.1",
        );
        assert!(o.forwarded, "{u}");
        assert_eq!(o.req.headers["x-user"], u);
        assert_eq!(o.st.basic_auth(), Some((Some(u), Decision::Allow)));
    }
}

#[test]
fn cors_preflight_passes_only_when_allowed() {
    let e = engine(POLICY);
    let pre = [
        ("origin", "https://ui.example.com"),
        ("access-control-request-method", "POST"),
    ];
    let o = run(&e, req("OPTIONS /api", &pre), "1.1.1.1");
    assert!(o.forwarded);
    assert_eq!(o.st.basic_auth(), Some((None, Decision::Preflight)));
    assert_eq!(
        run(&e, req("OPTIONS /api", &pre[..1]), "1.1.1.1")
            .res
            .status(),
        401
    );
    let strict = engine(
        "on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['a:12345678']}}]}]",
    );
    let o = run(&strict, req("OPTIONS /api", &pre), "1.1.1.1");
    assert_eq!(o.res.status(), 401);
    assert_eq!(
        header(&o.res, "www-authenticate"),
        Some("Basic realm=\"sluice\"")
    );
}

#[test]
fn enforce_false_records_only() {
    let e = engine(
        "on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['a:12345678'], enforce: false}}]},\
             {expressions: ['!actions.ngrok.basic_auth.credentials.presented'], actions: [{type: add-headers, config: {headers: {x-anon: '1'}}}]}]",
    );
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert!(o.forwarded);
    assert_eq!(o.req.headers["x-anon"], "1");
    assert!(!o.st.outcomes()[0].enforced);
}

#[test]
fn credentials_are_validated() {
    let errs = errors("on_http_request: [{actions: [{type: basic-auth, config: {credentials: ['nocolon', 'a:short']}}]}]");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("credentials[0]: expected `username:password`"));
    assert!(errs[1].contains("credentials[1]: the password must be 8 to 128 characters long"));
}

//! restrict-ips, run through the engine.

use crate::testutil::*;
use crate::Decision;

const POLICY: &str = r#"
on_http_request:
  - actions:
      - type: restrict-ips
        config:
          allow: ["10.0.0.0/8", "2001:db8::/32"]
          deny: ["10.6.6.0/24"]
"#;

#[test]
fn allowed_iff_an_allow_matches_and_no_deny_does() {
    let e = engine(POLICY);
    let o = run(&e, req("GET /", &[]), "10.1.1.1");
    assert!(o.forwarded);
    assert_eq!(o.st.ip_policy(), Some(Decision::Allow));
    let o = run(&e, req("GET /", &[]), "10.6.6.1");
    assert_eq!(o.res.status(), 403);
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3205"));
    assert_eq!(run(&e, req("GET /", &[]), "192.168.1.1").res.status(), 403);
    assert!(run(&e, req("GET /", &[]), "2001:db8::1").forwarded);
    assert!(
        run(&e, req("GET /", &[]), "::ffff:10.1.1.1").forwarded,
        "v4-mapped v6 is v4"
    );
}

#[test]
fn never_reads_x_forwarded_for() {
    let e = engine(POLICY);
    let o = run(
        &e,
        req("GET /", &[("x-forwarded-for", "10.1.1.1")]),
        "8.8.8.8",
    );
    assert_eq!(o.res.status(), 403);
}

#[test]
fn enforce_false_and_results() {
    let e = engine(
        r#"
on_http_request:
  - actions: [{type: restrict-ips, config: {allow: ["10.0.0.0/8"], enforce: false}}]
  - expressions: ["actions.ngrok.restrict_ips.action == 'deny'"]
    actions: [{type: add-headers, config: {headers: {x-outsider: "${actions.ngrok.restrict_ips.matched_cidr}!"}}}]
"#,
    );
    let o = run(&e, req("GET /", &[]), "8.8.8.8");
    assert!(o.forwarded);
    assert_eq!(o.req.headers["x-outsider"], "!");
    assert_eq!(o.st.ip_policy(), Some(Decision::Deny));
}

#[test]
fn bad_cidrs_and_deny_only_are_rejected() {
    let errs = errors("on_http_request: [{actions: [{type: restrict-ips, config: {allow: ['10.0.0.0/33', 'x']}}]}]");
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].contains("allow[0]: invalid CIDR `10.0.0.0/33`"));
    let errs = errors(
        "on_http_request: [{actions: [{type: restrict-ips, config: {deny: ['1.2.3.4/32']}}]}]",
    );
    assert!(errs[0].contains("would refuse every address"), "{errs:?}");
}

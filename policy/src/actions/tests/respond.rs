//! custom-response and deny, run through the engine.

use crate::testutil::*;
use crate::Decision;

#[test]
fn custom_response_defaults_and_content_type() {
    let e = engine(
        "on_http_request: [{actions: [{type: custom-response, config: {body: '{\"ok\": true}'}}]}]",
    );
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 200);
    assert_eq!(header(&o.res, "content-type"), Some("application/json"));
    assert!(!o.forwarded);
    let e = engine("on_http_request: [{actions: [{type: custom-response, config: {content: '<h1>hi</h1>', headers: {x-a: b}}}]}]");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(
        header(&o.res, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(header(&o.res, "x-a"), Some("b"));
}

#[test]
fn custom_response_in_response_phase_replaces() {
    let e = engine("on_http_response: [{expressions: ['res.status_code == 200'], actions: [{type: custom-response, config: {status_code: 404, body: gone}}]}]");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert!(o.forwarded);
    assert_eq!(o.res.status(), 404);
    assert_eq!(o.res.body().as_ref(), b"gone");
}

#[test]
fn deny_defaults_to_403_empty_with_code() {
    let e = engine("on_http_request: [{actions: [{type: deny}]}, {actions: [{type: add-headers, config: {headers: {x: y}}}]}]");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 403);
    assert!(o.res.body().is_empty());
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3220"));
    assert!(!o.req.headers.contains_key("x"), "deny ends the phase");
    assert_eq!(o.st.outcomes()[0].decision, Decision::Deny);
    let e = engine("on_http_request: [{actions: [{type: deny, config: {status_code: 404}}]}]");
    assert_eq!(run(&e, req("GET /", &[]), "1.1.1.1").res.status(), 404);
}

#[test]
fn status_code_is_checked() {
    let errs = errors("on_http_request:\n  - actions:\n      - type: deny\n        config:\n          status_code: 42\n");
    assert_eq!(
        errs,
        ["test.yml:5:24: on_http_request[0].actions[0].config.status_code: expected an integer 100..=599, got 42"]
    );
}

#[test]
fn close_connection_ends_the_request_without_a_response() {
    let e = engine(
        "on_http_request:\n  - expressions: [\"req.url.path == '/scan'\"]\n    actions: [{type: close-connection}]\n  - actions: [{type: log, config: {metadata: {after: close}}}]\n",
    );
    let o = run(&e, req("GET /scan", &[]), "1.1.1.1");
    assert!(o.closed && !o.forwarded);
    let last = o.st.outcomes().last().expect("an outcome");
    assert_eq!(
        (last.action, last.decision),
        ("close-connection", Decision::Close)
    );
    assert!(run(&e, req("GET /", &[]), "1.1.1.1").forwarded);
    // It takes no config, and a cloud endpoint may end with it.
    let errs = errors("on_http_request: [{actions: [{type: close-connection, config: {x: 1}}]}]");
    assert!(errs[0].contains("unknown field `x`"), "{errs:?}");
    let p = crate::Policy::parse(
        "on_http_request: [{actions: [{type: close-connection, config: null}]}]",
        "c.yml",
    )
    .unwrap();
    assert!(p.check_answers().is_ok());
}

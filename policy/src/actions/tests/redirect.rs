//! redirect and url-rewrite, run through the engine.

use crate::testutil::*;

#[test]
fn redirect_replaces_the_matched_span() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: redirect
        config:
          from: "^https://app\\.example\\.com/old/(.*)"
          to: "https://app.example.com/new/$1"
          status_code: 301
          headers: {x-why: moved}
"#,
    );
    let o = run(&e, req("GET /old/a/b?x=1", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 301);
    assert_eq!(
        header(&o.res, "location"),
        Some("https://app.example.com/new/a/b?x=1")
    );
    assert_eq!(header(&o.res, "x-why"), Some("moved"));
    let o = run(&e, req("GET /other", &[]), "1.1.1.1");
    assert!(o.forwarded, "no match, no redirect");
}

#[test]
fn redirect_without_from_and_unchanged_url_continues() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: redirect
        config: {to: "https://app.example.com${req.url.path}"}
      - type: custom-response
        config: {body: "${actions.ngrok.redirect.url}"}
"#,
    );
    let o = run(&e, req("GET /same", &[]), "1.1.1.1");
    assert_eq!(
        o.res.status(),
        200,
        "same URL: no redirect, next action runs"
    );
    assert_eq!(o.res.body().as_ref(), b"https://app.example.com/same");
    let e = engine("on_http_request: [{actions: [{type: redirect, config: {to: 'https://www.example.com/'}}]}]");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 302);
}

#[test]
fn url_rewrite_changes_what_the_upstream_sees() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: url-rewrite
        config: {from: "/api/v1/", to: "/v1/"}
      - type: add-headers
        config: {headers: {x-m: "${actions.ngrok.url_rewrite.matches[0]}"}}
"#,
    );
    let o = run(&e, req("GET /api/v1/users?id=2", &[]), "1.1.1.1");
    assert_eq!(o.req.uri, "/v1/users?id=2");
    assert_eq!(o.req.headers["x-m"], "/api/v1/");
    assert!(o.forwarded);
}

#[test]
fn bad_regexes() {
    let errs =
        errors("on_http_request: [{actions: [{type: redirect, config: {from: '(', to: x}}]}]");
    assert!(
        errs[0].contains("config.from: invalid regex `(`"),
        "{errs:?}"
    );
    let e = engine(
        "on_http_request: [{actions: [{type: url-rewrite, config: {from: \"${'('}\", to: x}}]}]",
    );
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3901"));
    let errs = errors(
        "on_http_request: [{actions: [{type: redirect, config: {to: x, status_code: 304}}]}]",
    );
    assert!(
        errs[0].contains("expected one of 301, 302, 303, 307, 308"),
        "{errs:?}"
    );
}

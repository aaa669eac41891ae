//! add-headers and remove-headers, run through the engine.

use crate::testutil::*;

#[test]
fn add_appends_host_replaces_and_results_are_visible() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            X-Trace: "${req.method}-1"
            host: internal.local
      - type: add-headers
        config: {headers: {x-seen: "${actions.ngrok.add_headers.headers_added['x-trace']}"}}
on_http_response:
  - actions:
      - type: add-headers
        config: {headers: {strict-transport-security: "max-age=63072000"}}
"#,
    );
    let o = run(&e, req("GET /", &[("x-trace", "0")]), "1.1.1.1");
    let traces: Vec<_> = o.req.headers.get_all("x-trace").iter().collect();
    assert_eq!(traces, ["0", "GET-1"], "appended, name lowercased");
    assert_eq!(o.req.headers.get_all("host").iter().count(), 1);
    assert_eq!(o.req.headers["host"], "internal.local");
    assert_eq!(o.req.headers["x-seen"], "GET-1");
    assert_eq!(
        header(&o.res, "strict-transport-security"),
        Some("max-age=63072000")
    );
}

#[test]
fn remove_then_add_replaces() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: remove-headers
        config: {headers: [x-forwarded-for, Cookie]}
      - type: add-headers
        config: {headers: {x-forwarded-for: "${conn.client_ip}"}}
on_http_response:
  - actions: [{type: remove-headers, config: {headers: [content-type]}}]
"#,
    );
    let o = run(
        &e,
        req(
            "GET /",
            &[("x-forwarded-for", "6.6.6.6"), ("cookie", "a=b")],
        ),
        "1.2.3.4",
    );
    assert_eq!(o.req.headers["x-forwarded-for"], "1.2.3.4");
    assert!(!o.req.headers.contains_key("cookie"));
    assert_eq!(header(&o.res, "content-type"), None);
}

#[test]
fn interpolation_failure_is_err_3900() {
    let e = engine("on_http_request: [{actions: [{type: add-headers, config: {headers: {x: \"${req.headers['nope'][0]}\"}}}]}]");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 500);
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3900"));
}

#[test]
fn config_errors() {
    let errs = errors("on_http_request: [{actions: [{type: add-headers, config: {headers: {user-agent: x, 'bad name': y}}}]}]");
    assert!(
        errs.iter()
            .any(|e| e.contains("header `user-agent` cannot be added")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("invalid header name `bad name`")),
        "{errs:?}"
    );
    let errs =
        errors("on_http_request: [{actions: [{type: remove-headers, config: {headers: []}}]}]");
    assert!(
        errs[0].contains("expected 1 to 10 header names"),
        "{errs:?}"
    );
}

#[test]
fn ngrok_skip_browser_warning_is_a_plain_header() {
    let e = engine("on_http_request: [{actions: [{type: add-headers, config: {headers: {ngrok-skip-browser-warning: 'true'}}}]}]");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.req.headers["ngrok-skip-browser-warning"], "true");
}

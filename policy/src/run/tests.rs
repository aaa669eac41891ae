//! Whole policies run by the engine: rule selection, variables, layers, generated responses.

use crate::testutil::*;
use crate::Decision;

#[test]
fn expressions_select_rules_and_vars_flow_between_rules() {
    let e = engine(
        r#"
on_http_request:
  - expressions: ["req.method == 'POST'", "req.url.path.startsWith('/api')"]
    actions:
      - type: set-vars
        config:
          vars:
            - kind: api
            - n: "${size(req.headers)}"
  - expressions: ["vars.kind == 'api' && vars.n > 0"]
    actions:
      - type: custom-response
        config: {status_code: 418, body: "${vars.kind} ${req.method} ${conn.client_ip} ${endpoint.host}"}
"#,
    );
    let o = run(&e, req("POST /api/x", &[]), "10.1.2.3");
    assert_eq!(o.res.status(), 418);
    assert_eq!(o.res.body().as_ref(), b"api POST 10.1.2.3 app.example.com");
    let o = run(&e, req("GET /api/x", &[]), "10.1.2.3");
    assert!(o.forwarded);
}

#[test]
fn functions_and_regexes_work() {
    let e = engine(
        r#"
on_http_request:
  - expressions:
      - "hasReqHeader('X-Api-Key') && getReqHeader('x-api-key')[0].lower() == 'abc'"
      - "req.url.path.matches('^/v[0-9]+/')"
      - "inCidrRange(conn.client_ip, '10.0.0.0/8') && conn.client_ip.isPrivateIp()"
      - "inCidrRanges(conn.client_ip, ['bogus', '10.1.0.0/16'])"
      - "hasQueryParam('debug') && getQueryParam('debug') == ['1']"
      - "string(base64.decode(base64.encode('hi'))) == 'hi' && base64.decode('aGk=') == b'hi' && basic_auth.encode('a', 'b') == 'Basic YTpi'"
      - "'  x '.trim().upper() == 'X'"
      - "req.cookies['sid'][0].value == 's1' && hasReqCookie('sid')"
      - "req.url.query_params['debug'] == ['1'] && !has(req.url.query_params.nodebug)"
    actions:
      - type: deny
        config: {status_code: 451}
"#,
    );
    let headers = [("x-api-key", "ABC"), ("cookie", "sid=s1; other=2")];
    let o = run(&e, req("GET /v2/things?debug=1", &headers), "10.1.2.3");
    assert_eq!(o.res.status(), 451, "{:?}", o.st.errors());
    let o = run(&e, req("GET /things?debug=1", &headers), "10.1.2.3");
    assert!(o.forwarded);
}

#[test]
fn evaluation_errors_skip_the_rule_and_are_recorded() {
    let e = engine("on_http_request:\n  - expressions: [\"req.headers['missing'][0] == 'x'\"]\n    actions: [{type: deny}]\n");
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert!(o.forwarded);
    assert_eq!(o.st.errors().len(), 1);
    assert!(o
        .st
        .trace()
        .unwrap()
        .iter()
        .any(|t| t.event.starts_with("skipped")));
}

#[test]
fn response_rules_run_on_generated_responses() {
    let e = engine(
        r#"
on_http_request:
  - actions: [{type: custom-response, config: {status_code: 503, body: "down"}}]
on_http_response:
  - expressions: ["res.status_code == 503"]
    actions: [{type: add-headers, config: {headers: {x-maintenance: "yes"}}}]
"#,
    );
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert!(!o.forwarded);
    assert_eq!(header(&o.res, "x-maintenance"), Some("yes"));
    assert_eq!(o.st.outcomes().last().unwrap().decision, Decision::Modify);
}

#[test]
fn generated_responses_are_compressed_by_response_rules() {
    let e = engine(
        "on_http_request: [{actions: [{type: custom-response, config: {body: '${\"x\".size()} hello hello hello hello'}}]}]\n\
             on_http_response: [{actions: [{type: compress-response, config: {algorithms: [gzip]}}]}]",
    );
    let o = run(&e, req("GET /", &[("accept-encoding", "gzip")]), "1.1.1.1");
    assert_eq!(header(&o.res, "content-encoding"), Some("gzip"));
    let mut s = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(o.res.body().as_ref()),
        &mut s,
    )
    .unwrap();
    assert_eq!(s, "1 hello hello hello hello");
}

#[test]
fn layers_are_one_rule_list() {
    let a = crate::Policy::parse(
        "on_http_request: [{actions: [{type: set-vars, config: {vars: [{who: op}]}}]}]",
        "op.yml",
    )
    .unwrap();
    let b = crate::Policy::parse(
        "on_http_request: [{expressions: [\"vars.who == 'op'\"], actions: [{type: deny}]}]",
        "agent.yml",
    )
    .unwrap();
    let e = crate::Engine::new(vec![a, b]);
    assert_eq!(run(&e, req("GET /", &[]), "1.1.1.1").res.status(), 403);
}

#[test]
fn time_and_conn_variables() {
    let e = engine(
        r#"
on_http_request:
  - expressions: ["time.now == '2027-01-15T08:00:00Z'", "conn.tls.version == '1.3'", "conn.ts.start < timestamp('2030-01-01T00:00:00Z')", "req.url.scheme == 'https'", "req.url.port == 443"]
    actions: [{type: deny}]
"#,
    )
    .with_clock(std::sync::Arc::new(TestClock::default()));
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 403, "{:?}", o.st.errors());
}

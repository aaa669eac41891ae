//! http-request at load, and offline (no outbound client: every call fails), where on_error
//! and the results are decided. The calls themselves are tested end to end against real
//! servers in tests/http_request.rs.

use crate::testutil::*;
use crate::Decision;

fn policy(config: &str) -> String {
    format!(
        "on_http_request:\n  - actions:\n      - type: http-request\n        config: {config}\n"
    )
}

#[test]
fn config_problems_are_refused_with_their_place() {
    let cases = [
        ("{method: GET}", "missing required field `url`"),
        (
            "{url: 'ftp://x.example/'}",
            "expected an http:// or https:// URL",
        ),
        (
            "{url: 'ftp://auth.internal/check'}",
            "the scheme must be http, https",
        ),
        (
            "{url: 'https://x.example/', method: TRACE}",
            "unknown method `TRACE`",
        ),
        (
            "{url: 'https://x.example/', timeout: 31s}",
            "from 1s to 30s",
        ),
        ("{url: 'https://x.example/', timeout: 0s}", "from 1s to 30s"),
        (
            "{url: 'https://x.example/', max_redirects: 101}",
            "max_redirects",
        ),
        (
            "{url: 'https://x.example/', on_error: stop}",
            "unknown on_error `stop`",
        ),
        (
            "{url: 'https://x.example/', retry_condition: 'attempts'}",
            "must be a bool",
        ),
        (
            "{url: 'https://x.example/', retry_condition: 'tries < 3'}",
            "unknown variable `tries`",
        ),
        (
            "{url: 'https://x.example/', query_params: [{key: a}]}",
            "value",
        ),
        (
            "{url: 'https://x.example/', headers: {'bad name': x}}",
            "invalid header name",
        ),
    ];
    for (config, wanted) in cases {
        let errs = match crate::Policy::parse(&policy(config), "test.yml") {
            Ok(_) => panic!("{config} loaded"),
            Err(e) => e.to_string(),
        };
        assert!(errs.contains(wanted), "{config}: {errs}");
        assert!(
            errs.contains("on_http_request[0].actions[0].config"),
            "{config}: {errs}"
        );
    }
}

#[test]
fn retry_variables_exist_only_in_retry_condition() {
    let ok = policy("{url: 'https://x.example/', retry_condition: 'attempts < 3 && last_attempt.res.status_code >= 500'}");
    if let Err(e) = crate::Policy::parse(&ok, "test.yml") {
        panic!("{e}");
    }
    let outside =
        "on_http_request:\n  - expressions: ['attempts > 1']\n    actions: [{type: deny}]\n";
    let errs = errors(outside).join("\n");
    assert!(errs.contains("unknown variable `attempts`"), "{errs}");
}

#[test]
fn offline_a_failed_call_continues_by_default_with_its_error_in_the_results() {
    let yaml = format!(
        "{}  - expressions: [\"actions.ngrok.http_request.error.code == 'ERR_SLUICE_3605'\"]\n    actions: [{{type: custom-response, config: {{status_code: 299, body: \"${{actions.ngrok.http_request.req.method}} ${{actions.ngrok.http_request.req.url}}\"}}}}]\n",
        policy("{url: 'https://x.example/a?b=1', method: post, query_params: [{key: q, value: '${req.method}'}]}")
    );
    let o = run(&engine(&yaml), req("GET /", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 299, "{:?}", o.res);
    assert_eq!(o.res.body().as_ref(), b"POST https://x.example/a?b=1&q=GET");
    assert_eq!(o.st.outcomes()[0].decision, Decision::Error);
    assert!(!o.st.outcomes()[0].enforced, "continue: not enforced");
}

#[test]
fn offline_a_failed_call_halts_with_its_code_when_asked() {
    let e = engine(&policy("{url: 'https://x.example/', on_error: halt}"));
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert!(!o.forwarded);
    assert_eq!(o.res.status(), 502);
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3605"));
}

#[test]
fn a_request_that_passed_three_calls_makes_no_fourth() {
    let e = engine(&policy("{url: 'https://x.example/', on_error: halt}"));
    let o = run(
        &e,
        req("GET /", &[("sluice-http-request-hops", "3")]),
        "1.1.1.1",
    );
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3603"));
}

//! forward-internal, run through the engine with a namespace of online internal endpoints.

use crate::load::parse::Policy;
use crate::run::engine::{ready, Engine, RequestVerdict};
use crate::testutil::*;
use crate::Decision;

fn forwarding(yaml: &str, urls: &'static [&'static str]) -> Engine {
    engine(yaml).with_internal_endpoints(online(urls))
}

fn verdict(e: &Engine, path: &str) -> (RequestVerdict, crate::RequestState) {
    let mut st = state(e, "1.1.1.1");
    let mut r = req(&format!("GET {path}"), &[]);
    let v = ready(e.on_http_request_async(&mut st, &mut r));
    (v, st)
}

fn forwarded_to(v: &RequestVerdict) -> Option<String> {
    match v {
        RequestVerdict::Forward(url) => Some(url.to_string()),
        _ => None,
    }
}

const PATHS: &str = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/api')"]
    actions:
      - type: forward-internal
        config: {url: "https://api.internal"}
  - actions:
      - type: add-headers
        config: {headers: {x-routed: web}}
      - type: forward-internal
        config: {url: "http://${'web'}.internal:8080"}
"#;

#[test]
fn routes_by_path_to_two_internal_endpoints() {
    let e = forwarding(PATHS, &["https://api.internal", "http://web.internal:8080"]);
    let (v, st) = verdict(&e, "/api/users");
    assert_eq!(forwarded_to(&v).as_deref(), Some("https://api.internal"));
    assert_eq!(
        st.outcomes().last().map(|o| o.decision),
        Some(Decision::Forward)
    );
    let (v, _) = verdict(&e, "/index.html");
    assert_eq!(
        forwarded_to(&v).as_deref(),
        Some("http://web.internal:8080")
    );
}

const FALLBACK: &str = r#"
on_http_request:
  - actions:
      - type: forward-internal
        config: {url: "https://app.internal", on_error: continue}
  - actions:
      - type: custom-response
        config:
          status_code: 503
          body: "down: ${actions.ngrok.forward_internal.error.code} ${actions.ngrok.forward_internal.url}"
"#;

#[test]
fn on_error_continue_runs_the_next_rule_with_the_error_in_results() {
    let e = forwarding(FALLBACK, &[]);
    let (v, st) = verdict(&e, "/");
    let RequestVerdict::Respond(res) = v else {
        panic!("expected the fallback page, got {v:?}");
    };
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.body().as_ref(),
        b"down: ERR_SLUICE_3502 https://app.internal"
    );
    let first = &st.outcomes()[0];
    assert_eq!((first.decision, first.enforced), (Decision::Error, false));
    // Online, the same policy forwards and the page never runs.
    let e = forwarding(FALLBACK, &["https://app.internal"]);
    assert_eq!(
        forwarded_to(&verdict(&e, "/").0).as_deref(),
        Some("https://app.internal")
    );
}

#[test]
fn halt_answers_with_the_forward_error() {
    let e = forwarding(
        "on_http_request: [{actions: [{type: forward-internal, config: {url: 'gone.internal'}}, {type: deny}]}]",
        &[],
    );
    let (v, _) = verdict(&e, "/");
    let RequestVerdict::Respond(res) = v else {
        panic!("expected an error response, got {v:?}");
    };
    assert_eq!(res.status(), 503);
    assert_eq!(header(&res, "sluice-error-code"), Some("ERR_SLUICE_3502"));
}

#[test]
fn a_long_chain_is_refused_as_a_loop_and_tcp_as_a_scheme_mismatch() {
    let e = forwarding(
        "on_http_request: [{actions: [{type: forward-internal, config: {url: 'https://a.internal'}}]}]",
        &["https://a.internal"],
    );
    let mut st = state(&e, "1.1.1.1");
    st.set_forwarded_from(
        [
            "https://app.example.com",
            "https://a.internal",
            "https://b.internal",
        ]
        .map(String::from)
        .to_vec(),
    );
    let v = ready(e.on_http_request_async(&mut st, &mut req("GET /", &[])));
    assert!(forwarded_to(&v).is_some(), "depth 4 is allowed: {v:?}");
    st = state(&e, "1.1.1.1");
    st.set_forwarded_from(
        [
            "https://app.example.com",
            "https://a.internal",
            "https://b.internal",
            "https://a.internal",
        ]
        .map(String::from)
        .to_vec(),
    );
    let RequestVerdict::Respond(res) =
        ready(e.on_http_request_async(&mut st, &mut req("GET /", &[])))
    else {
        panic!("a fifth endpoint must be refused");
    };
    assert_eq!(res.status(), 508);
    assert_eq!(header(&res, "sluice-error-code"), Some("ERR_SLUICE_3501"));
    let body = String::from_utf8_lossy(res.body());
    assert!(
        body.contains("https://b.internal → https://a.internal"),
        "{body}"
    );

    let e = forwarding(
        "on_http_request: [{actions: [{type: forward-internal, config: {url: 'tcp://db.internal:5432'}}]}]",
        &["tcp://db.internal:5432"],
    );
    let RequestVerdict::Respond(res) = verdict(&e, "/").0 else {
        panic!("tcp from HTTP must be refused");
    };
    assert_eq!(header(&res, "sluice-error-code"), Some("ERR_SLUICE_3504"));
}

#[test]
fn bad_config_is_located() {
    let errs = errors(
        "on_http_request:\n  - actions:\n      - type: forward-internal\n        config: {url: 'https://example.com', on_error: retry}\n",
    );
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(
        errs[0].starts_with("test.yml:4:")
            && errs[0].contains("config.url")
            && errs[0].contains("NAME.internal"),
        "{errs:?}"
    );
    assert!(errs[1].contains("unknown on_error `retry`"), "{errs:?}");
    let errs = errors("on_http_request: [{actions: [{type: forward-internal, config: {}}]}]");
    assert!(errs[0].contains("url"), "{errs:?}");
}

#[test]
fn a_cloud_endpoint_policy_must_be_able_to_answer() {
    let never = Policy::parse(
        "# headers only\non_http_request:\n  - actions: [{type: add-headers, config: {headers: {a: b}}}]\n",
        "cloud.yml",
    )
    .unwrap();
    let e = never.check_answers().unwrap_err().to_string();
    assert!(e.starts_with("cloud.yml:3:3: on_http_request: "), "{e}");
    assert!(
        e.contains("forward-internal, custom-response, redirect, deny or close-connection"),
        "{e}"
    );
    let empty = Policy::parse("", "empty.yml").unwrap();
    assert!(empty.check_answers().is_err());
    for answering in [
        PATHS,
        FALLBACK,
        "on_http_request: [{actions: [{type: deny}]}]",
    ] {
        let p = Policy::parse(answering, "ok.yml").unwrap();
        assert!(p.check_answers().is_ok(), "{answering}");
    }
}

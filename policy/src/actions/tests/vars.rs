//! set-vars and log, run through the engine.

use crate::testutil::*;

#[test]
fn set_vars_keeps_types_and_log_collects_metadata() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - limit: 10
            - path: "${req.url.path}"
            - is_get: "${req.method == 'GET'}"
            - label: "m=${req.method}"
      - type: log
        config:
          metadata: {path: "${vars.path}", label: "${vars.label}", twice: "${vars.limit * 2}"}
  - expressions: ["vars.is_get && vars.limit == 10"]
    actions: [{type: log, config: {metadata: {second: "yes"}}}]
on_http_response:
  - expressions: ["!has(vars.path)"]
    actions: [{type: log, config: {metadata: {phase: "response vars are fresh"}}}]
"#,
    );
    let o = run(&e, req("GET /a", &[]), "1.1.1.1");
    let logs = o.st.logs();
    assert_eq!(logs.len(), 3, "{logs:?} {:?}", o.st.errors());
    assert_eq!(logs[0]["path"], "/a");
    assert_eq!(logs[0]["label"], "m=GET");
    assert_eq!(logs[0]["twice"], "20");
    assert_eq!(logs[1]["second"], "yes");
}

#[test]
fn set_vars_takes_lists_and_maps_whose_templates_keep_their_types() {
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - allowed: ["/a", "${req.url.path}-x", 3]
            - limits: {gold: 100, path: "${req.url.path}", get: "${req.method == 'GET'}"}
            - nested: {tiers: [{name: gold}]}
  - expressions:
      - "'/a' in vars.allowed && size(vars.allowed) == 3 && vars.allowed[1] == '/a-x'"
      - "vars.limits.gold == 100 && vars.limits.get && vars.limits['path'] == '/a'"
      - "vars.nested.tiers[0].name == 'gold'"
    actions: [{type: log, config: {metadata: {matched: "${vars.allowed[2] + 1}"}}}]
"#,
    );
    let o = run(&e, req("GET /a", &[]), "1.1.1.1");
    let logs = o.st.logs();
    assert_eq!(logs.len(), 1, "{logs:?} {:?}", o.st.errors());
    assert_eq!(logs[0]["matched"], "4");
}

#[test]
fn set_vars_reports_each_bad_template_inside_lists_and_maps() {
    let errors = errors(
        r#"
on_http_request:
  - actions:
      - type: set-vars
        config:
          vars:
            - a: ["${nope.x}", {b: "${req.nope}"}]
"#,
    );
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors[0].contains("vars[0].a[0]"), "{errors:?}");
    assert!(errors[1].contains("vars[0].a[1].b"), "{errors:?}");
}

#[test]
fn log_metadata_is_readable_by_later_rules() {
    let e = engine(
        r#"
on_http_request:
  - actions: [{type: log, config: {metadata: {who: "${req.method} ${req.url.path}"}}}]
  - expressions: ["actions.ngrok.log.metadata.who == 'GET /x'"]
    actions: [{type: deny, config: {status_code: 418}}]
"#,
    );
    let o = run(&e, req("GET /x", &[]), "1.1.1.1");
    assert_eq!(o.res.status(), 418);
}

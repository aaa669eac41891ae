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

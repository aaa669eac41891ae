//! owasp-crs-request and owasp-crs-response: refused at load with the reason and the place.

use crate::testutil::errors;

#[test]
fn both_actions_are_refused_with_the_reason_and_its_place() {
    let errs = errors(
        r#"on_http_request:
  - actions:
      - type: owasp-crs-request
        config: {on_error: halt, process_body: true}
on_http_response:
  - actions: [{type: owasp-crs-response, config: {on_error: continue}}]
"#,
    );
    let expected = [
        "test.yml:3:15: on_http_request[0].actions[0].type: action type `owasp-crs-request` is not available: no maintained engine runs the OWASP Core Rule Set safely in Sluice",
        "test.yml:6:22: on_http_response[0].actions[0].type: action type `owasp-crs-response` is not available: no maintained engine runs the OWASP Core Rule Set safely in Sluice",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for (e, x) in errs.iter().zip(expected) {
        assert!(e.starts_with(x), "\n got: {e}\nwant: {x}");
        assert!(
            e.ends_with("see \"OWASP CRS actions\" in docs/policy.md"),
            "the error names where the reason is written: {e}"
        );
    }
}

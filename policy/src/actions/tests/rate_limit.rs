//! rate-limit, run through the engine with a hand-moved clock.

use crate::testutil::*;
use crate::Decision;
use std::sync::Arc;

#[test]
fn limits_per_bucket_key_with_retry_after() {
    let clock = Arc::new(TestClock::default());
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: api
          capacity: 2
          rate: 60s
          bucket_key: ["req.headers['x-api-key'][0]"]
  - expressions: ["!actions.ngrok.rate_limit.limited"]
    actions: [{type: add-headers, config: {headers: {x-bucket: "${actions.ngrok.rate_limit.bucket_key[0]}"}}}]
"#,
    )
    .with_clock(clock.clone());
    let k1 = [("x-api-key", "k1")];
    assert!(run(&e, req("GET /", &k1), "1.1.1.1").forwarded);
    let o = run(&e, req("GET /", &k1), "1.1.1.1");
    assert_eq!(o.req.headers["x-bucket"], "k1");
    let o = run(&e, req("GET /", &k1), "1.1.1.1");
    assert_eq!(o.res.status(), 429);
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3222"));
    assert_eq!(header(&o.res, "retry-after"), Some("60"));
    assert_eq!(o.st.outcomes()[0].decision, Decision::RateLimited);
    assert!(run(&e, req("GET /", &[("x-api-key", "k2")]), "1.1.1.1").forwarded);
    clock.advance(120);
    assert!(run(&e, req("GET /", &k1), "1.1.1.1").forwarded, "recovers");
}

#[test]
fn enforce_false_counts_but_lets_through() {
    let e = engine("on_http_request: [{actions: [{type: rate-limit, config: {name: x, capacity: 1, rate: 60s, enforce: false}}]}]")
        .with_clock(Arc::new(TestClock::default()));
    assert!(run(&e, req("GET /", &[]), "1.1.1.1").forwarded);
    let o = run(&e, req("GET /", &[]), "1.1.1.1");
    assert!(o.forwarded);
    assert_eq!(o.st.outcomes()[0].decision, Decision::RateLimited);
}

#[test]
fn config_is_checked() {
    let errs = errors("on_http_request: [{actions: [{type: rate-limit, config: {capacity: 0, rate: 5s, algorithm: token, bucket_key: ['nope.x']}}]}]");
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(errs
        .iter()
        .any(|e| e.contains("missing required field `name`")));
    assert!(errs.iter().any(|e| e.contains("unknown variable `nope`")));
}

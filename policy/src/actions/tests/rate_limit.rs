//! rate-limit, run through the engine with a hand-moved clock.

use crate::run::engine::{ready, RequestVerdict};
use crate::testutil::*;
use crate::{CountFuture, Decision, RateLimitCount, RateLimitHit, RateLimitStore};
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

/// A store that answers from a script and keeps what it was asked.
#[derive(Default)]
struct Store {
    answers: std::sync::Mutex<Vec<RateLimitCount>>,
    asked: std::sync::Mutex<Vec<RateLimitHit>>,
}

impl RateLimitStore for Store {
    fn hit(&self, hit: RateLimitHit) -> CountFuture<'_> {
        self.asked.lock().unwrap().push(hit);
        let answer = self.answers.lock().unwrap().remove(0);
        Box::pin(async move { answer })
    }
}

#[test]
fn a_store_decides_and_local_counting_takes_over_when_it_cannot() {
    let store = Arc::new(Store::default());
    *store.answers.lock().unwrap() = vec![
        RateLimitCount::Allowed,
        RateLimitCount::Limited {
            retry_after_secs: 7,
        },
        RateLimitCount::Local,
        RateLimitCount::Local,
    ];
    let e = engine(
        r#"
on_http_request:
  - actions:
      - type: rate-limit
        config: {name: api, capacity: 1, rate: 90s, bucket_key: ["req.headers['x-api-key'][0]", "conn.client_ip"]}
"#,
    )
    .with_clock(Arc::new(TestClock::default()))
    .with_rate_limit_store(store.clone());
    let run = |key: &str| {
        let mut st = state(&e, "1.1.1.1");
        let mut r = req("GET /", &[("x-api-key", key)]);
        let verdict = ready(e.on_http_request_async(&mut st, &mut r));
        (verdict, st)
    };
    let (v, _) = run("k1");
    assert!(
        matches!(v, RequestVerdict::Continue),
        "allowed by the store"
    );
    let (v, st) = run("k1");
    let RequestVerdict::Respond(res) = v else {
        panic!("limited by the store")
    };
    assert_eq!(res.status(), 429);
    assert_eq!(header(&res, "retry-after"), Some("7"));
    assert_eq!(st.outcomes()[0].decision, Decision::RateLimited);
    // The store cannot decide: the action's own memory counts (capacity 1), fresh.
    let (v, _) = run("k1");
    assert!(matches!(v, RequestVerdict::Continue), "first local count");
    let (v, _) = run("k1");
    assert!(
        matches!(v, RequestVerdict::Respond(_)),
        "second local count"
    );
    let asked = store.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 4);
    assert_eq!(
        asked[0],
        RateLimitHit {
            name: "api".into(),
            site: "on_http_request[0].actions[0].config".into(),
            bucket: "k1\u{1f}1.1.1.1\u{1f}".into(),
            capacity: 1,
            window: std::time::Duration::from_secs(90),
        }
    );
    // Offline evaluation never asks the store.
    let o = crate::testutil::run(&e, req("GET /", &[("x-api-key", "k2")]), "1.1.1.1");
    assert!(o.forwarded);
    assert_eq!(store.asked.lock().unwrap().len(), 4);
}

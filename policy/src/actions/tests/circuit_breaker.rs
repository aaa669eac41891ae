//! circuit-breaker, run through the engine with a clock the test moves.

use crate::testutil::*;
use crate::Decision;
use std::sync::Arc;

const POLICY: &str = "on_http_request:\n  - actions:\n      - type: circuit-breaker\n        config: {error_threshold: 0.5, volume_threshold: 4, window_duration: 10s, tripped_duration: 2s}\n";

#[test]
fn trips_on_errors_and_recovers_after_the_tripped_duration() {
    let clock = Arc::new(TestClock::default());
    let e = engine(POLICY).with_clock(clock.clone());
    let send = |status: u16| {
        let mut o = run(&e, req("GET /", &[]), "1.1.1.1");
        let passed = o.forwarded;
        if passed {
            o.st.finish(status);
        }
        (passed, o)
    };
    // Successes never trip it; three errors among seven responses (< 50 %) do not either.
    for _ in 0..4 {
        assert!(send(200).0);
    }
    for _ in 0..3 {
        assert!(send(502).0);
    }
    // The fourth error makes 4 of 8: tripped.
    assert!(send(503).0);
    let (passed, o) = send(200);
    assert!(!passed, "tripped: refused");
    assert_eq!(o.res.status(), 503);
    assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3202"));
    assert_eq!(o.st.outcomes()[0].decision, Decision::Deny);
    clock.advance(1);
    assert!(!send(200).0, "still tripped after 1 s");
    clock.advance(2);
    assert!(send(200).0, "closed again after the tripped duration");
    // The window starts afresh: one error is not enough.
    assert!(send(500).0);
    assert!(send(200).0);
}

#[test]
fn old_errors_leave_the_window_and_record_only_lets_requests_through() {
    let clock = Arc::new(TestClock::default());
    let e = engine(POLICY).with_clock(clock.clone());
    for _ in 0..3 {
        run(&e, req("GET /", &[]), "1.1.1.1").st.finish(500);
    }
    clock.advance(11);
    // The old errors left the window: three successes and one error are 25 %.
    for _ in 0..3 {
        run(&e, req("GET /", &[]), "1.1.1.1").st.finish(200);
    }
    let mut o = run(&e, req("GET /", &[]), "1.1.1.1");
    o.st.finish(500);
    assert!(
        run(&e, req("GET /", &[]), "1.1.1.1").forwarded,
        "1 of 4 errors: closed"
    );

    let lenient = engine(&POLICY.replace(
        "tripped_duration: 2s",
        "tripped_duration: 2s, enforce: false",
    ));
    for _ in 0..4 {
        run(&lenient, req("GET /", &[]), "1.1.1.1").st.finish(500);
    }
    let o = run(&lenient, req("GET /", &[]), "1.1.1.1");
    assert!(o.forwarded, "enforce: false only records");
    let first = &o.st.outcomes()[0];
    assert_eq!((first.decision, first.enforced), (Decision::Deny, false));
}

#[test]
fn config_is_checked() {
    let errs = errors("on_http_request: [{actions: [{type: circuit-breaker, config: {error_threshold: 1.5, tripped_duration: 5m, num_buckets: 20}}]}]");
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].contains("0.0 to 1.0"), "{errs:?}");
    assert!(
        errs.iter().any(|e| e.contains("from 1s to 2m, got `5m`")),
        "{errs:?}"
    );
    assert!(
        errs.iter()
            .any(|e| e.contains("num_buckets is fixed at 10")),
        "{errs:?}"
    );
    engine("on_http_request: [{actions: [{type: circuit-breaker, config: {error_threshold: 0.2, num_buckets: 10}}]}]");
}

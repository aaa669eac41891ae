//! verify-webhook, run through the engine with each provider's signatures.
//! Vectors: GitHub's, Slack's and Twilio's from their documentation; the others computed
//! with Python's `hmac` from each provider's documented algorithm.

use crate::testutil::*;
use crate::Decision;
use std::sync::Arc;

fn hook(provider_config: &str) -> crate::Engine {
    engine(&format!(
        "on_http_request:\n  - actions:\n      - type: verify-webhook\n        config: {provider_config}\n  \
             - expressions: ['actions.ngrok.verify_webhook.verified']\n    actions: [{{type: add-headers, config: {{headers: {{x-verified: 'yes'}}}}}}]\n"
    ))
    .with_clock(Arc::new(TestClock::default()))
}

fn accepts(e: &crate::Engine, line: &str, headers: &[(&str, &str)], body: &[u8]) -> bool {
    let o = run_with_body(e, req(line, headers), body);
    if o.forwarded {
        assert_eq!(o.req.headers["x-verified"], "yes");
        assert_eq!(o.st.webhook_verification(), Some(Decision::Allow));
    } else {
        assert_eq!(o.res.status(), 403);
        assert_eq!(header(&o.res, "sluice-error-code"), Some("ERR_SLUICE_3204"));
        assert_eq!(o.st.webhook_verification(), Some(Decision::Deny));
    }
    o.forwarded
}

#[test]
fn github() {
    let e = hook("{provider: github, secret: \"It's a Secret to Everybody\"}");
    let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    let h = [("x-hub-signature-256", good)];
    assert!(accepts(&e, "POST /hook", &h, b"Hello, World!"));
    assert!(!accepts(&e, "POST /hook", &h, b"Hello, World?"));
    assert!(!accepts(&e, "POST /hook", &[], b"Hello, World!"));
    let sha1_style = [("x-hub-signature-256", &good[7..])];
    assert!(!accepts(&e, "POST /hook", &sha1_style, b"Hello, World!"));
}

#[test]
fn gitlab() {
    let e = hook("{provider: gitlab, secret: 'tok-123'}");
    assert!(accepts(
        &e,
        "POST /hook",
        &[("x-gitlab-token", "tok-123")],
        b"{}"
    ));
    assert!(!accepts(
        &e,
        "POST /hook",
        &[("x-gitlab-token", "tok-124")],
        b"{}"
    ));
    assert!(!accepts(
        &e,
        "POST /hook",
        &[("x-gitlab-token", "tok-12")],
        b"{}"
    ));
}

const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

/// A clock fixed at Unix second `.0`.
struct At(u64);
impl crate::Clock for At {
    fn now(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(self.0)
    }
}

#[test]
fn slack_with_replay_window() {
    let sig = (
        "x-slack-signature",
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
    );
    // Slack's documented request is from 2018: far outside the default 5 minutes.
    let e = hook("{provider: slack, secret: 8f742231b10e8888abcd99yyyzzz85a5}");
    let h = [sig, ("x-slack-request-timestamp", "1531420618")];
    let o = run_with_body(&e, req("POST /slack", &h), SLACK_BODY);
    assert_eq!(o.res.status(), 403);
    assert!(
        o.st.errors()[0].contains("more than 300s away"),
        "{:?}",
        o.st.errors()
    );
    // With the clock at the documented time, the documented signature passes.
    let e = hook("{provider: slack, secret: 8f742231b10e8888abcd99yyyzzz85a5}")
        .with_clock(Arc::new(At(1_531_420_618 + 120)));
    assert!(accepts(&e, "POST /slack", &h, SLACK_BODY));
    let tampered = [sig, ("x-slack-request-timestamp", "1531420619")];
    assert!(!accepts(&e, "POST /slack", &tampered, SLACK_BODY));
}

#[test]
fn stripe() {
    let e = hook("{provider: stripe, secret: whsec_test_secret}");
    let body = br#"{"id":"evt_1","object":"event"}"#;
    let v1 = "d0ffffa7434b9a227ebe60bf97ad6137fbc31cbd39613e1ac0e4bc924c41fde7";
    let good = format!("t=1800000000,v1=deadbeef,v1={v1},v0=00");
    assert!(accepts(
        &e,
        "POST /stripe",
        &[("stripe-signature", &good)],
        body
    ));
    let replayed = format!("t=1799999000,v1={v1}");
    assert!(!accepts(
        &e,
        "POST /stripe",
        &[("stripe-signature", &replayed)],
        body
    ));
    let no_v1 = "t=1800000000,v0=00";
    assert!(!accepts(
        &e,
        "POST /stripe",
        &[("stripe-signature", no_v1)],
        body
    ));
}

#[test]
fn shopify() {
    let e = hook("{provider: shopify, secret: hush}");
    let h = [(
        "x-shopify-hmac-sha256",
        "qBvrsZF7RfB1iS6BX6IHqJTp5L911P7intnPeTPsH0I=",
    )];
    assert!(accepts(
        &e,
        "POST /orders",
        &h,
        br#"{"id":820982911946154508}"#
    ));
    assert!(!accepts(
        &e,
        "POST /orders",
        &h,
        br#"{"id":820982911946154509}"#
    ));
}

#[test]
fn twilio_form_and_json() {
    let e = hook("{provider: twilio, secret: '12345'}");
    let form = [
        ("host", "mycompany.com"),
        ("content-type", "application/x-www-form-urlencoded"),
        ("x-twilio-signature", "0/KCTR6DLpKmkAf8muzZqo1nDgQ="),
    ];
    // The documented parameters, in another order and encoded as a client would.
    let body = b"To=%2B18005551212&From=%2B12349013030&Digits=1234&CallSid=CA1234567890ABCDE&Caller=%2B12349013030";
    let mut r = req("POST /myapp.php?foo=1&bar=2", &form[1..]);
    r.headers.insert("host", form[0].1.parse().unwrap());
    let o = run_with_body(&e, r, body);
    assert!(o.forwarded, "{:?}", o.st.errors());
    let mut r = req("POST /myapp.php?foo=1&bar=3", &form[1..]);
    r.headers.insert("host", form[0].1.parse().unwrap());
    assert!(!run_with_body(&e, r, body).forwarded);

    let json = [
        ("content-type", "application/json"),
        ("x-twilio-signature", "Q7mrlZzdXJz18wqlOicAcHi4r6g="),
    ];
    let path =
        "POST /hook?bodySHA256=015abd7f5cc57a2dd94b7590f04ad8084273905ee33ec5cebeae62276a97f862";
    assert!(accepts(&e, path, &json, br#"{"a":1}"#));
    assert!(!accepts(&e, path, &json, br#"{"a":2}"#));
}

#[test]
fn generic_hmac_sha256() {
    let e = hook("{provider: hmac-sha256, secret: s3cret, header: X-Signature, prefix: 'sha256='}");
    let good = "sha256=f6472e5b7ed463ffd5aca57f767caac94e91a9d36c9c37475d5c435be98bb31e";
    assert!(accepts(&e, "POST /h", &[("x-signature", good)], b"ping"));
    assert!(!accepts(
        &e,
        "POST /h",
        &[("x-signature", &good[7..])],
        b"ping"
    ));
    let e = hook("{provider: hmac-sha256, secret: '${\"s3\" + \"cret\"}', header: x-sig, encoding: base64, timestamp_header: x-ts}");
    let h = [
        ("x-sig", "anuedwUvNLcWsOU/sqrHDh4fZUgzk9B/cmrTaK5Iq70="),
        ("x-ts", "1800000000"),
    ];
    assert!(accepts(&e, "POST /h", &h, b"ping"));
    let old = [h[0], ("x-ts", "1799990000")];
    assert!(!accepts(&e, "POST /h", &old, b"ping"));
}

#[test]
fn enforce_false_only_records() {
    let e = hook("{provider: github, secret: x, enforce: false}");
    let o = run_with_body(&e, req("POST /", &[]), b"");
    assert!(o.forwarded);
    assert!(!o.req.headers.contains_key("x-verified"));
    assert!(!o.st.outcomes()[0].enforced);
    assert!(e.reads_request_body());
    assert!(!engine("on_http_request: [{actions: [{type: deny}]}]").reads_request_body());
}

#[test]
fn config_errors() {
    let errs = errors(
        "on_http_request: [{actions: [\
             {type: verify-webhook, config: {provider: acme, secret: x}},\
             {type: verify-webhook, config: {provider: github}},\
             {type: verify-webhook, config: {provider: github, secret: x, header: x-sig}},\
             {type: verify-webhook, config: {provider: hmac-sha256, secret: x}},\
             {type: verify-webhook, config: {provider: stripe, secret: x, timestamp_tolerance: 5x}}]}]",
    );
    assert_eq!(errs.len(), 5, "{errs:?}");
    assert!(errs[0]
        .contains("unknown webhook provider `acme`, expected one of: github, gitlab, stripe"));
    assert!(
        errs[1].contains("actions[1].config: missing required field `secret`"),
        "{}",
        errs[1]
    );
    assert!(errs[2].contains("`header` only applies to provider `hmac-sha256`"));
    assert!(errs[3].contains("missing required field `header`"));
    assert!(errs[4].contains("expected a duration from 1s to 24h, got `5x`"));
    let errs = errors("on_http_response: [{actions: [{type: verify-webhook, config: {provider: github, secret: x}}]}]");
    assert!(
        errs[0].contains("not allowed in on_http_response"),
        "{errs:?}"
    );
}

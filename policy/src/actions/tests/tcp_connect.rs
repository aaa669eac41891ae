//! on_tcp_connect through the engine: each action's verdict, what the phase leaves in the
//! state for the event and for on_http_request.

use crate::run::engine::{ready, ConnectVerdict, Engine, RequestVerdict};
use crate::testutil::*;
use crate::{Decision, Phase, RequestState, TlsInfo};

fn connect(e: &Engine, ip: &str) -> (ConnectVerdict, RequestState) {
    let mut st = state(e, ip);
    let v = ready(e.on_tcp_connect_async(&mut st));
    (v, st)
}

fn is_close(v: &ConnectVerdict) -> bool {
    matches!(v, ConnectVerdict::Close)
}

fn is_plain_continue(v: &ConnectVerdict) -> bool {
    matches!(
        v,
        ConnectVerdict::Continue {
            terminate_tls: None
        }
    )
}

#[test]
fn without_rules_the_connection_continues() {
    let e = engine("on_http_request: [{actions: [{type: deny}]}]");
    assert!(!e.has_tcp_connect_rules());
    let (v, st) = connect(&e, "1.2.3.4");
    assert!(is_plain_continue(&v), "{v:?}");
    assert!(st.outcomes().is_empty());
    assert!(engine("on_tcp_connect: [{actions: [{type: deny}]}]").has_tcp_connect_rules());
}

#[test]
fn deny_and_close_connection_close_it() {
    for action in [
        "deny",
        "close-connection",
        "deny, config: {status_code: 401}",
    ] {
        let e = engine(&format!(
            "on_tcp_connect: [{{expressions: [\"conn.client_ip == '6.6.6.6'\"], actions: [{{type: {action}}}]}}]"
        ));
        let (v, st) = connect(&e, "6.6.6.6");
        assert!(is_close(&v), "{action}: {v:?}");
        assert_eq!(st.outcomes().len(), 1);
        assert_eq!(st.outcomes()[0].phase, Phase::TcpConnect);
        let (v, _) = connect(&e, "1.2.3.4");
        assert!(is_plain_continue(&v), "{action}: {v:?}");
    }
}

const ALLOWLIST: &str = r#"
on_tcp_connect:
  - actions:
      - type: restrict-ips
        config: {allow: [10.0.0.0/8], deny: [10.6.0.0/16]}
      - type: log
        config: {metadata: {passed: "${actions.ngrok.restrict_ips.matched_cidr}"}}
"#;

#[test]
fn restrict_ips_closes_a_refused_client_and_records_the_decision() {
    let e = engine(ALLOWLIST);
    let (v, st) = connect(&e, "10.1.2.3");
    assert!(is_plain_continue(&v), "{v:?}");
    let o = st.ip_policy_in(Phase::TcpConnect).expect("decision");
    assert_eq!((o.decision, o.enforced), (Decision::Allow, true));
    assert_eq!(st.logs()[0]["passed"], "10.0.0.0/8");
    assert!(st.ip_policy_in(Phase::Request).is_none());

    for refused in ["10.6.0.1", "192.0.2.1", "::1"] {
        let (v, st) = connect(&e, refused);
        assert!(is_close(&v), "{refused}: {v:?}");
        let o = st.ip_policy_in(Phase::TcpConnect).expect("decision");
        assert_eq!(o.decision, Decision::Deny, "{refused}");
        assert!(st.logs().is_empty(), "nothing runs after the refusal");
    }

    // enforce: false records the refusal and lets the connection through.
    let e = engine(
        "on_tcp_connect: [{actions: [{type: restrict-ips, config: {allow: [10.0.0.0/8], enforce: false}}]}]",
    );
    let (v, st) = connect(&e, "192.0.2.1");
    assert!(is_plain_continue(&v), "{v:?}");
    let o = st.ip_policy_in(Phase::TcpConnect).expect("decision");
    assert_eq!((o.decision, o.enforced), (Decision::Deny, false));
}

#[test]
fn a_failing_action_closes_the_connection() {
    let e = engine(
        "on_tcp_connect: [{actions: [{type: restrict-ips, config: {allow: ['${vars.missing}']}}]}]",
    );
    let (v, st) = connect(&e, "1.2.3.4");
    assert!(is_close(&v), "{v:?}");
    assert!(st.errors()[0].contains("restrict-ips"), "{:?}", st.errors());
}

#[test]
fn variables_set_on_connect_reach_on_http_request() {
    let e = engine(
        r#"
on_tcp_connect:
  - actions:
      - type: set-vars
        config: {vars: [{tier: gold}, {ip: "${conn.client_ip}"}]}
on_http_request:
  - expressions: ["vars.tier == 'gold' && vars.ip == '1.2.3.4'"]
    actions: [{type: custom-response, config: {status_code: 299, body: "${vars.tier}"}}]
"#,
    );
    let mut st = state(&e, "1.2.3.4");
    assert!(is_plain_continue(&ready(e.on_tcp_connect_async(&mut st))));
    let mut r = req("GET /", &[]);
    match e.on_http_request(&mut st, &mut r) {
        RequestVerdict::Respond(res) => {
            assert_eq!(res.status(), 299);
            assert_eq!(res.body().as_ref(), b"gold");
        }
        other => panic!("the connection's variables were lost: {other:?}"),
    }
    // Without on_tcp_connect on this state, the rule does not match.
    let out = run(&e, req("GET /", &[]), "1.2.3.4");
    assert!(out.forwarded);
}

#[test]
fn tls_facts_given_after_the_handshake_reach_later_phases() {
    let e = engine(
        r#"
on_tcp_connect:
  - expressions: ["conn.tls.sni == 'db.example.com'"]
    actions: [{type: set-vars, config: {vars: [{sni_seen: true}]}}]
on_http_request:
  - expressions: ["vars.sni_seen && conn.tls.negotiated_alpn == 'h2' && conn.tls.cipher_suite.startsWith('TLS13_') && conn.bytes_in == 42"]
    actions: [{type: deny}]
"#,
    );
    let mut st = state(&e, "1.2.3.4");
    st.set_tls(TlsInfo {
        sni: Some("db.example.com".into()),
        ..TlsInfo::default()
    });
    ready(e.on_tcp_connect_async(&mut st));
    st.set_tls(TlsInfo {
        version: Some("1.3".into()),
        sni: Some("db.example.com".into()),
        cipher_suite: Some("TLS13_AES_128_GCM_SHA256".into()),
        negotiated_alpn: Some("h2".into()),
        client_certificate: None,
    });
    st.set_byte_counts(42, 0);
    let mut r = req("GET /", &[]);
    assert!(matches!(
        e.on_http_request(&mut st, &mut r),
        RequestVerdict::Respond(res) if res.status() == 403
    ));
}

#[test]
fn forward_internal_hands_the_connection_to_a_tcp_or_tls_endpoint() {
    let yaml = "on_tcp_connect: [{actions: [{type: forward-internal, config: {url: 'tcp://db.internal:5432'}}]}]";
    let e = engine(yaml).with_internal_endpoints(online(&["tcp://db.internal:5432"]));
    let mut st = state(&e, "1.2.3.4");
    match ready(e.on_tcp_connect_async(&mut st)) {
        ConnectVerdict::Forward(url) => assert_eq!(url.to_string(), "tcp://db.internal:5432"),
        other => panic!("{other:?}"),
    }
    // Not online: halts, which closes the connection.
    let e = engine(yaml).with_internal_endpoints(online(&[]));
    let (v, st) = connect(&e, "1.2.3.4");
    assert!(is_close(&v), "{v:?}");
    assert_eq!(st.outcomes()[0].decision, Decision::Error);
    // An HTTP target cannot take a connection.
    let e = engine(
        "on_tcp_connect: [{actions: [{type: forward-internal, config: {url: 'https://web.internal', on_error: continue}}]}]",
    )
    .with_internal_endpoints(online(&["https://web.internal"]));
    let (v, st) = connect(&e, "1.2.3.4");
    assert!(is_plain_continue(&v), "{v:?}");
    assert!(
        format!("{:?}", st.trace()).contains("forward-internal: Error"),
        "{:?}",
        st.trace()
    );
}

#[test]
fn terminate_tls_is_handed_to_the_edge() {
    let e = engine(
        r#"
on_tcp_connect:
  - actions:
      - type: terminate-tls
        config: {min_version: "1.3"}
      - type: log
        config: {metadata: {after: "yes"}}
"#,
    );
    let (v, st) = connect(&e, "1.2.3.4");
    let ConnectVerdict::Continue {
        terminate_tls: Some(tls),
    } = v
    else {
        panic!("{v:?}")
    };
    assert_eq!(tls.min_version(), crate::TlsVersion::Tls13);
    assert_eq!(tls.versions(), vec![crate::TlsVersion::Tls13]);
    assert!(tls.server_identity().is_none() && tls.mutual_tls().is_none());
    assert_eq!(st.logs().len(), 1, "terminate-tls does not end the phase");
}

#[test]
fn the_dry_run_runs_on_tcp_connect_first() {
    use crate::dry_run::{run, DryRunRequest};
    let e = engine(ALLOWLIST);
    let req =
        |ip: &str| DryRunRequest::parse("GET /", &[], ip.parse().expect("ip")).expect("request");
    let report = run(&e, &req("192.0.2.1")).expect("report");
    assert!(report.closed && report.response.is_none(), "{report}");
    let report = run(&e, &req("10.1.2.3")).expect("report");
    assert!(
        !report.closed && report.upstream_request.is_some(),
        "{report}"
    );
}

//! Compile errors of whole documents: every problem reported, with its place.

use crate::testutil::errors;

#[test]
fn every_problem_is_reported_with_its_place() {
    let errs = errors(
        r#"on_http_request:
  - name: first
    expressions: ["req.method =="]
    actions:
      - type: deny
        config:
          status_code: "x"
  - actions:
      - type: teleport
      - type: compress-response
  - expressions: ["req.nope == 1", "frobnicate(req.method)", "res.status_code == 200"]
    actions: [{type: deny, config: {code: 1}}]
inbound: []
"#,
    );
    let expected = [
        "test.yml:3:19: on_http_request[0].expressions[0]: invalid CEL expression `req.method ==`",
        "test.yml:7:24: on_http_request[0].actions[0].config.status_code: expected an integer 100..=599, got \"x\"",
        "test.yml:9:15: on_http_request[1].actions[0].type: unknown action type `teleport`",
        "test.yml:10:15: on_http_request[1].actions[1].type: action `compress-response` is not allowed in on_http_request",
        "test.yml:11:19: on_http_request[2].expressions[0]: in CEL expression `req.nope == 1`: unknown variable `req.nope`",
        "test.yml:11:36: on_http_request[2].expressions[1]: in CEL expression `frobnicate(req.method)`: unknown function `frobnicate`",
        "test.yml:11:62: on_http_request[2].expressions[2]: in CEL expression `res.status_code == 200`: `res.status_code` is only available in on_http_response",
        "test.yml:12:37: on_http_request[2].actions[0].config.code: unknown field `code`, expected one of: status_code",
        "test.yml:13:1: inbound: unknown field `inbound`",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for (e, x) in errs.iter().zip(expected) {
        assert!(e.starts_with(x), "\n got: {e}\nwant: {x}");
    }
}

#[test]
fn on_tcp_connect_loads_its_actions_and_refuses_the_others() {
    let p = crate::Policy::parse(
        r#"on_tcp_connect:
  - expressions: ["conn.client_ip == '10.0.0.1' && endpoint.protocol == 'tcp' && vars.x == null"]
    actions:
      - type: restrict-ips
        config: {allow: [10.0.0.0/8]}
      - type: set-vars
        config: {vars: [{tier: "${conn.tls.sni}"}]}
      - type: log
        config: {metadata: {ip: "${conn.client_ip}"}}
      - type: terminate-tls
      - type: forward-internal
        config: {url: "tls://db.internal:5432", on_error: continue}
  - actions: [{type: close-connection}]
  - actions: [{type: deny}]
"#,
        "test.yml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p.rules(crate::Phase::TcpConnect).len(), 3);
    for (action, config) in [
        ("custom-response", ""),
        ("redirect", ", config: {to: /x}"),
        ("basic-auth", ", config: {credentials: ['a:bcdefghi']}"),
        (
            "rate-limit",
            ", config: {name: x, capacity: 1, rate: 60s, bucket_key: [conn.client_ip]}",
        ),
        ("url-rewrite", ", config: {from: a, to: b}"),
    ] {
        let errs = errors(&format!(
            "on_tcp_connect: [{{actions: [{{type: {action}{config}}}]}}]"
        ));
        assert_eq!(errs.len(), 1, "{errs:?}");
        assert!(
            errs[0].contains(&format!(
                "on_tcp_connect[0].actions[0].type: action `{action}` is not allowed in on_tcp_connect, only in"
            )),
            "{errs:?}"
        );
    }
}

#[test]
fn phases_are_checked_against_the_endpoint_protocol() {
    let p = crate::Policy::parse(
        "on_tcp_connect: [{actions: [{type: deny}]}]\non_http_request: [{actions: [{type: deny}]}]\n",
        "p.yml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.check_protocol("https", false).is_ok());
    let e = p.check_protocol("tcp", false).unwrap_err().to_string();
    assert!(
        e.starts_with("p.yml:2:18: on_http_request: a tcp endpoint carries no HTTP, so on_http_request never runs there"),
        "{e}"
    );
    let e = p.check_protocol("https", true).unwrap_err().to_string();
    assert!(
        e.starts_with(
            "p.yml:1:17: on_tcp_connect: an internal HTTP endpoint receives forwarded requests"
        ),
        "{e}"
    );
    let tcp_only = crate::Policy::parse(
        "on_tcp_connect: [{actions: [{type: deny}]}]\non_http_request: []",
        "p.yml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(tcp_only.check_protocol("tls", true).is_ok());
}

#[test]
fn terminate_tls_is_refused_where_no_tls_arrives() {
    let p = crate::Policy::parse(
        "on_tcp_connect:\n  - actions: [{type: log, config: {metadata: {step: one}}}]\n  - actions: [{type: terminate-tls}]\n",
        "p.yml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(p.check_protocol("tls", false).is_ok());
    assert!(p.check_protocol("https", false).is_ok());
    for protocol in ["tcp", "http"] {
        let e = p.check_protocol(protocol, false).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!(
                "p.yml:2:3: on_tcp_connect[1]: terminate-tls finishes the client's TLS handshake, and a {protocol} endpoint's clients send none"
            )),
            "{e}"
        );
    }
}

#[test]
fn on_tcp_connect_refuses_what_reads_the_request_or_response() {
    for (expr, name) in [
        ("req.method == 'GET'", "`req.method`"),
        ("res.status_code == 200", "`res.status_code`"),
        ("'x' in req.headers", "`req.headers`"),
        ("size(req) > 0", "`req`"),
        ("getQueryParam('a') == ['b']", "`getQueryParam`"),
        ("hasResCookie('sid')", "`hasResCookie`"),
    ] {
        let errs = errors(&format!(
            "on_tcp_connect: [{{expressions: [\"{expr}\"], actions: [{{type: deny}}]}}]"
        ));
        assert_eq!(errs.len(), 1, "{expr}: {errs:?}");
        assert!(
            errs[0].contains(&format!(
                "{name} is not available in on_tcp_connect: the phase runs once per connection"
            )),
            "{expr}: {errs:?}"
        );
    }
    // The same in a template.
    let errs = errors(
        "on_tcp_connect: [{actions: [{type: set-vars, config: {vars: [{a: '${req.host}'}]}}]}]",
    );
    assert!(
        errs[0].contains("`req.host` is not available in on_tcp_connect"),
        "{errs:?}"
    );
    // The TLS facts are variables of every phase.
    crate::Policy::parse(
        "on_http_request: [{expressions: [\"conn.tls.client.subject.common_name == 'a' && 'x' in conn.tls.client.san.dns_names && conn.bytes_in >= 0 && conn.server_ip != ''\"], actions: [{type: deny}]}]",
        "test.yml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn rule_shape_is_checked() {
    let errs = errors("on_http_request: [{name: x}, {actions: []}, {actions: [{config: {}}]}]");
    assert_eq!(errs.len(), 3, "{errs:?}");
    assert!(errs[0].contains("on_http_request[0]: missing required field `actions`"));
    assert!(errs[1].contains("on_http_request[1].actions: a rule needs at least one action"));
    assert!(errs[2].contains("on_http_request[2].actions[0]: missing required field `type`"));
}

#[test]
fn json_documents_and_empty_documents() {
    let p = crate::Policy::parse(
        r#"{"on_http_request": [{"actions": [{"type": "deny"}]}]}"#,
        "p.json",
    )
    .unwrap();
    assert_eq!(p.rule_counts(), (1, 0));
    assert_eq!(
        crate::Policy::parse("", "empty.yml").unwrap().rule_counts(),
        (0, 0)
    );
    let e = crate::Policy::parse("{\"on_http_request\": [", "p.json").unwrap_err();
    assert!(
        e.to_string().starts_with("p.json:2:1: invalid YAML/JSON"),
        "{e}"
    );
}

#[test]
fn comprehension_variables_and_macros_are_allowed() {
    crate::Policy::parse(
        "on_http_request: [{expressions: [\"req.headers.exists(k, k.startsWith('x-')) && has(req.headers.host) && type(req.method) == string\"], actions: [{type: deny}]}]",
        "t.yml",
    )
    .unwrap();
}

#[test]
fn type_errors_are_refused_with_their_place() {
    let errs = errors(
        r#"on_http_response:
  - expressions: ["res.status_code == '404'", "req.url.path", "vars.x == 1"]
    actions: [{type: custom-response, config: {body: "${res.status_code + 'x'}"}}]
"#,
    );
    let expected = [
        "test.yml:2:19: on_http_response[0].expressions[0]: in CEL expression `res.status_code == '404'`: `==` compares int with string",
        "test.yml:2:47: on_http_response[0].expressions[1]: in CEL expression `req.url.path`: a rule's expression must be a bool, this one is string",
        "test.yml:3:54: on_http_response[0].actions[0].config.body: in CEL expression `res.status_code + 'x'`: `+` cannot combine int with string",
    ];
    assert_eq!(errs.len(), expected.len(), "{errs:#?}");
    for (e, x) in errs.iter().zip(expected) {
        assert!(e.starts_with(x), "\n got: {e}\nwant: {x}");
    }
}

#[test]
fn an_action_after_one_that_always_ends_the_phase_is_refused() {
    let errs = errors("on_http_request:\n  - actions:\n      - type: deny\n      - type: add-headers\n        config: {headers: {a: b}}\n");
    assert_eq!(errs.len(), 1, "{errs:?}");
    assert!(
        errs[0].starts_with(
            "test.yml:4:13: on_http_request[0].actions[1]: this action can never run: `deny`"
        ),
        "{errs:?}"
    );
    // In separate rules the second is reachable (the first rule may not match).
    let ok = "on_http_request:\n  - expressions: ['false']\n    actions: [{type: deny}]\n  - actions: [{type: add-headers, config: {headers: {a: b}}}]\n";
    assert!(crate::Policy::parse(ok, "test.yml").is_ok());
}

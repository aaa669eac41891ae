//! The variables added for ngrok parity (#17), each evaluated on a request and response.

use crate::actions::result_keys;
use crate::cel::expr::Expr;
use crate::cel::names::Names;
use crate::cel::vars::Scope;
use crate::testutil::*;
use crate::Phase;
use cel::Value;
use std::sync::Arc;

/// Response-phase names: both `req.*` and `res.*`.
fn response() -> Names<'static> {
    Names {
        phase: Phase::Response,
        results: result_keys(),
        supplies: crate::intel::Supplies::ALL,
        secrets: None,
        locals: &[],
    }
}

/// A response head with the given headers.
fn res(headers: &[(&str, &str)]) -> http::response::Parts {
    let mut b = http::Response::builder().status(200);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    b.body(()).unwrap().into_parts().0
}

/// Evaluates `src` on the request and response, a minute after testutil's clock's start
/// (1_800_000_000 seconds after the epoch, also the connection's start); panics on a load or
/// run error.
fn eval(src: &str, req: &http::request::Parts, res: &http::response::Parts) -> Value {
    let clock = Arc::new(TestClock::default());
    clock.advance(60);
    let e = engine("").with_clock(clock);
    let st = state(&e, "1.1.1.1");
    let x = Expr::compile(src, response()).unwrap_or_else(|p| panic!("{src}: {p:?}"));
    let scope = Scope::new(req, Some(res), &st, result_keys());
    x.eval(&scope)
        .unwrap_or_else(|err| panic!("{src}: {err:?}"))
}

/// Asserts that each expression is true.
fn all_true(exprs: &[&str], req: &http::request::Parts, res: &http::response::Parts) {
    for src in exprs {
        assert_eq!(eval(src, req, res), Value::Bool(true), "{src}");
    }
}

#[test]
fn content_encoding_is_the_list_of_codings() {
    let r = req("POST /", &[("content-encoding", "gzip, br")]);
    let s = res(&[("content-encoding", "gzip"), ("content-encoding", "zstd")]);
    all_true(
        &[
            "req.content_encoding == ['gzip', 'br']",
            "'br' in req.content_encoding",
            "res.content_encoding == ['gzip', 'zstd']",
        ],
        &r,
        &s,
    );
    all_true(
        &["req.content_encoding == [] && res.content_encoding == []"],
        &req("GET /", &[]),
        &res(&[]),
    );
    // A list, as ngrok documents: comparing it with a string is refused at load.
    let p = Expr::compile("req.content_encoding == 'gzip'", response()).unwrap_err();
    assert!(p[0].contains("list(string)"), "{p:?}");
}

#[test]
fn content_type_is_the_media_type_with_raw_and_parameters() {
    let raw = r#"application/json; charset="utf-8"; Boundary=AbC"#;
    let r = req("POST /", &[("content-type", raw)]);
    let s = res(&[("content-type", "text/html;charset=ISO-8859-1")]);
    all_true(
        &[
            "req.content_type == 'application/json'",
            "req.content_type.startsWith('application/')",
            r#"req.content_type.raw == 'application/json; charset="utf-8"; Boundary=AbC'"#,
            "req.content_type.parameters == {'charset': 'utf-8', 'boundary': 'AbC'}",
            "req.content_type.parameters['charset'] == 'utf-8'",
            "req.content_type.parameters.boundary == 'AbC'",
            "res.content_type == 'text/html'",
            "res.content_type.raw == 'text/html;charset=ISO-8859-1'",
            "res.content_type.parameters['charset'] == 'iso-8859-1'",
        ],
        &r,
        &s,
    );
    all_true(
        &[
            "req.content_type == '' && req.content_type.raw == ''",
            "req.content_type.parameters == {}",
        ],
        &req("GET /", &[]),
        &s,
    );
    // The fast path gives the media type too.
    let e = engine("");
    let st = state(&e, "1.1.1.1");
    let scope = Scope::new(&r, Some(&s), &st, result_keys());
    for src in [
        "req.content_type == 'application/json'",
        "req.content_type.startsWith('application/json')",
    ] {
        let x = Expr::compile(src, response()).unwrap();
        assert!(x.is_fast(), "{src}");
        assert_eq!(x.eval_bool(&scope), Ok(true), "{src}");
        assert_eq!(x.eval_bool_interpreted(&scope), Ok(true), "{src}");
    }
}

#[test]
fn url_uri_is_path_and_query_and_user_password_is_empty() {
    let r = req("GET /a/b%20c?x=1&y=2", &[]);
    all_true(
        &[
            "req.url.uri == '/a/b%20c?x=1&y=2'",
            "req.url.user_password == ''",
        ],
        &r,
        &res(&[]),
    );
    all_true(&["req.url.uri == '/p'"], &req("GET /p", &[]), &res(&[]));
}

#[test]
fn set_cookie_attributes() {
    let s = res(&[
        (
            "set-cookie",
            "sid=abc; Domain=.example.com; Path=/app; Expires=Wed, 21 Oct 2026 07:28:00 GMT; \
             Max-Age=3600; HttpOnly; Secure; SameSite=Lax; Priority=High; Tag",
        ),
        ("set-cookie", "sid=second"),
        ("set-cookie", "bare=1"),
    ]);
    let r = req("GET /", &[]);
    all_true(
        &[
            "res.cookies['sid'][0].name == 'sid' && res.cookies['sid'][0].value == 'abc'",
            "res.cookies['sid'][0].domain == 'example.com'",
            "res.cookies['sid'][0].path == '/app'",
            "res.cookies['sid'][0].expires == timestamp('2026-10-21T07:28:00Z')",
            "res.cookies['sid'][0].max_age == duration('3600s')",
            "res.cookies['sid'][0].http_only && res.cookies['sid'][0].secure",
            "res.cookies['sid'][0].same_site == 'Lax'",
            "res.cookies['sid'][0].unparsed_attributes == {'Priority': 'High', 'Tag': ''}",
            "res.cookies['sid'][1].value == 'second'",
            // Unset attributes have Go's zero values.
            "res.cookies.bare[0].domain == '' && res.cookies.bare[0].path == ''",
            "!res.cookies.bare[0].http_only && !res.cookies.bare[0].secure",
            "res.cookies.bare[0].same_site == '' && res.cookies.bare[0].unparsed_attributes == {}",
            "res.cookies.bare[0].max_age == duration('0s')",
            "res.cookies.bare[0].expires == timestamp('0001-01-01T00:00:00Z')",
        ],
        &r,
        &s,
    );
}

#[test]
fn endpoint_addr_and_header_received() {
    let r = req("GET /", &[]);
    all_true(
        &[
            "endpoint.addr == 'app.example.com:443'",
            "req.ts.header_received == timestamp('2027-01-15T08:01:00Z')",
            "req.ts.header_received - conn.ts.start == duration('60s')",
            "req.ts.header_received.getFullYear() == 2027",
        ],
        &r,
        &res(&[]),
    );
}

#[test]
fn new_variables_load_in_a_policy_and_run() {
    let e = engine(
        r#"
on_http_request:
  - expressions:
      - "req.content_type == 'application/json' && req.content_type.parameters['charset'] == 'utf-8'"
      - "'gzip' in req.content_encoding && req.url.uri == '/x?y=1'"
      - "endpoint.addr.endsWith(':443') && req.ts.header_received <= timestamp('2030-01-01T00:00:00Z')"
    actions: [{type: log, config: {metadata: {uri: "${req.url.uri}", addr: "${endpoint.addr}"}}}]
on_http_response:
  - expressions: ["res.content_type == 'text/plain' && res.content_encoding == []"]
    actions: [{type: log, config: {metadata: {res: "${res.content_type.raw}"}}}]
"#,
    );
    let o = run(
        &e,
        req(
            "POST /x?y=1",
            &[
                ("content-type", "application/json; charset=utf-8"),
                ("content-encoding", "gzip"),
            ],
        ),
        "1.1.1.1",
    );
    let logs = o.st.logs();
    assert_eq!(logs.len(), 2, "{logs:?} {:?}", o.st.errors());
    assert_eq!(logs[0]["uri"], "/x?y=1");
    assert_eq!(logs[0]["addr"], "app.example.com:443");
    assert_eq!(logs[1]["res"], "text/plain");
}

//! The fast path against the interpreter, on requests run through the engine's state.

use crate::actions::result_keys;
use crate::cel::expr::Expr;
use crate::cel::names::Names;
use crate::cel::vars::Scope;
use crate::testutil::*;
use crate::Phase;

/// Request-phase expressions, with every registered action's results.
fn request() -> Names<'static> {
    Names {
        phase: Phase::Request,
        results: result_keys(),
        supplies: crate::intel::Supplies::ALL,
        secrets: None,
        locals: &[],
    }
}

#[test]
fn fast_path_agrees_with_the_interpreter() {
    let exprs = [
        "req.method == 'GET'",
        "'GET' != req.method",
        "req.url.path.startsWith('/api') && !req.url.path.endsWith('.json')",
        "req.host.contains('example') || req.url.query == 'a=1'",
        "req.user_agent.matches('(?i)bot')",
        "matches(req.url.path, '^/v[0-9]/')",
        "req.method in ['GET', 'HEAD']",
        "hasReqHeader('X-Api-Key')",
        "inCidrRange(conn.client_ip, '10.0.0.0/8')",
        "req.url.scheme == 'https' && endpoint.host == 'app.example.com' && req.url.host == 'app.example.com'",
    ];
    let e = engine("");
    let requests = [
        req(
            "GET /api/x?a=1",
            &[("user-agent", "GoogleBot"), ("x-api-key", "k")],
        ),
        req("POST /v1/a.json", &[("user-agent", "Firefox")]),
        req("HEAD /", &[]),
    ];
    for src in exprs {
        let x = Expr::compile(src, request()).unwrap();
        assert!(x.is_fast(), "{src} should take the fast path");
        for (i, r) in requests.iter().enumerate() {
            for ip in ["10.1.1.1", "8.8.8.8"] {
                let st = state(&e, ip);
                let scope = Scope::new(r, None, &st, result_keys());
                assert_eq!(
                    x.eval_bool(&scope),
                    x.eval_bool_interpreted(&scope),
                    "{src} on request {i} from {ip}"
                );
            }
        }
    }
    let slow = Expr::compile("req.headers['x'][0] == 'y'", request()).unwrap();
    assert!(!slow.is_fast());
}

//! Every policy in examples/policies compiles, and each shows its effect on a request.

use base64::Engine as _;
use bytes::Bytes;
use http::{Request, Response};
use sluice_policy::{
    ConnInfo, ConnectVerdict, Decision, EndpointInfo, Engine, LoadEnv, Phase, Policy,
    RequestVerdict, ResponseVerdict, Secret, SecretMap,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

const EXPECTED_EXAMPLES: usize = 28;

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/policies")
}

/// The vault the examples read: `prod` with `admin-password` and `upstream-token`.
fn vault() -> LoadEnv {
    let mut m = SecretMap::new("the examples have only vault `prod`");
    m.insert("prod", "admin-password", Secret::new("vault-password-1"));
    m.insert("prod", "upstream-token", Secret::new("vault-token-1"));
    LoadEnv::default().with_secrets(Arc::new(m))
}

fn load_all() -> BTreeMap<String, (String, Policy)> {
    let env = vault();
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(examples_dir()).expect("examples/policies exists") {
        let path = entry.expect("readable dir entry").path();
        let ext = path.extension().and_then(|e| e.to_str());
        if !matches!(ext, Some("yml" | "yaml" | "json")) {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .expect("utf-8 name")
            .to_string();
        let source = std::fs::read_to_string(&path).expect("readable example");
        let policy = Policy::parse_with(&source, &name, &env)
            .unwrap_or_else(|e| panic!("{name} does not compile:\n{e}"));
        out.insert(name, (source, policy));
    }
    out
}

struct Seen {
    forwarded: bool,
    /// The internal endpoint forward-internal handed the request to, if any.
    forwarded_to: Option<String>,
    req: http::request::Parts,
    res: Response<Bytes>,
    logs: Vec<BTreeMap<String, String>>,
}

fn send(engine: &Engine, line: &str, headers: &[(&str, &str)], ip: &str, scheme: &str) -> Seen {
    let (method, target) = line.split_once(' ').expect("METHOD target");
    let mut b = Request::builder().method(method).uri(target);
    if !headers.iter().any(|(k, _)| *k == "host") {
        b = b.header("host", "app.example.com");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let mut req = b.body(()).expect("request").into_parts().0;
    let mut conn = ConnInfo::new(
        format!("{ip}:5555")
            .parse()
            .unwrap_or_else(|_| format!("[{ip}]:5555").parse().expect("ip")),
        443,
        SystemTime::now(),
    );
    conn.tls.version = (scheme == "https").then(|| "1.3".into());
    let endpoint = EndpointInfo {
        protocol: scheme.into(),
        ..Default::default()
    };
    let mut st = engine.new_request(conn, Arc::new(endpoint));
    let verdict = engine.on_http_request(&mut st, &mut req);
    let forwarded_to = match &verdict {
        RequestVerdict::Forward(url) => Some(url.to_string()),
        _ => None,
    };
    let (res, forwarded) = match verdict {
        RequestVerdict::Respond(r) => (r, false),
        // No response at all: an empty 444 stands for the closed connection.
        RequestVerdict::Close => (
            Response::builder()
                .status(444)
                .body(Bytes::new())
                .expect("response"),
            false,
        ),
        RequestVerdict::Continue | RequestVerdict::Forward(_) => {
            let upstream = Response::builder()
                .header("server", "gunicorn")
                .header("x-powered-by", "flask")
                .header("content-length", "5000")
                .body(Bytes::from("x".repeat(5000)))
                .expect("response");
            let (mut parts, body) = upstream.into_parts();
            let res = match engine.on_http_response(&mut st, &req, &mut parts) {
                ResponseVerdict::Replace(r) => r,
                ResponseVerdict::Continue => {
                    let body = st
                        .take_body_transform()
                        .map_or(body.clone(), |mut t| t.transform(&body, true));
                    Response::from_parts(parts, body)
                }
            };
            (res, true)
        }
    };
    st.finish(res.status().as_u16());
    Seen {
        forwarded,
        forwarded_to,
        req,
        res,
        logs: st.logs().to_vec(),
    }
}

fn get<'a>(res: &'a Response<Bytes>, name: &str) -> &'a str {
    res.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

fn basic(user: &str, pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
    )
}

#[test]
fn every_example_compiles_and_has_its_effect() {
    let all = load_all();
    assert_eq!(
        all.len(),
        EXPECTED_EXAMPLES,
        "examples found: {:?}",
        all.keys().collect::<Vec<_>>()
    );
    for (name, (source, _)) in &all {
        if !name.ends_with(".json") {
            assert!(
                source.starts_with('#'),
                "{name} needs a header comment saying what it is for"
            );
        }
    }
    let mut checked = 0;
    for (name, (_, policy)) in all {
        let e = Engine::new(vec![policy]);
        let https = |line: &str, h: &[(&str, &str)], ip: &str| send(&e, line, h, ip, "https");
        match name.as_str() {
            "webhook-provider-ips.yml" => {
                assert!(https("POST /webhooks/github", &[], "140.82.115.4").forwarded);
                let s = https(
                    "POST /webhooks/github",
                    &[("x-forwarded-for", "140.82.115.4")],
                    "8.8.8.8",
                );
                assert_eq!(s.res.status(), 403);
                assert_eq!(get(&s.res, "sluice-error-code"), "ERR_SLUICE_3205");
                assert!(https("GET /", &[], "8.8.8.8").forwarded);
            }
            "github-webhook.yml" => {
                let s = https("POST /github/hook", &[], "1.1.1.1");
                assert_eq!(s.res.status(), 403);
                assert_eq!(get(&s.res, "sluice-error-code"), "ERR_SLUICE_3204");
                // HMAC-SHA256 of the (empty) body with the example's secret, from Python's hmac.
                let signed = [(
                    "x-hub-signature-256",
                    "sha256=76eacbd3422931c6490c584728286de9ec8a2c364ab8c57cb0deb6bea3eaa723",
                )];
                let s = https("POST /github/hook", &signed, "1.1.1.1");
                assert!(s.forwarded);
                assert_eq!(s.req.headers["x-webhook-verified"], "github");
                assert!(https("POST /other", &[], "1.1.1.1").forwarded);
            }
            "api-jwt-auth0.yml" => {
                // Evaluated offline (no key source): no token and any token are refused.
                let s = https("GET /api/orders", &[], "1.1.1.1");
                assert_eq!(s.res.status(), 401);
                assert_eq!(get(&s.res, "sluice-error-code"), "ERR_SLUICE_3401");
                assert!(get(&s.res, "www-authenticate").starts_with("Bearer"));
                assert!(https("GET /", &[], "1.1.1.1").forwarded);
            }
            "basic-auth-cors.yml" => {
                assert_eq!(https("GET /", &[], "1.1.1.1").res.status(), 401);
                let pre = [
                    ("origin", "https://ui.test"),
                    ("access-control-request-method", "PUT"),
                ];
                assert!(https("OPTIONS /x", &pre, "1.1.1.1").forwarded);
                assert!(
                    https(
                        "GET /",
                        &[("authorization", &basic("qa", "preview-2024"))],
                        "1.1.1.1"
                    )
                    .forwarded
                );
            }
            "circuit-breaker.yml" => {
                // The example's upstream always answers 200: the breaker stays closed.
                for _ in 0..30 {
                    assert!(https("GET /orders", &[], "1.1.1.1").forwarded);
                }
                assert!(https("GET /healthz", &[], "1.1.1.1").forwarded);
            }
            "drop-scanners.yml" => {
                for path in [
                    "/wp-admin/",
                    "/.env",
                    "/.git/config",
                    "/phpmyadmin/index.php",
                ] {
                    let s = https(&format!("GET {path}"), &[], "1.1.1.1");
                    assert_eq!(s.res.status(), 444, "{path} must be dropped");
                    assert_eq!(s.logs[0]["dropped"], path);
                }
                assert!(https("GET /environment", &[], "1.1.1.1").forwarded);
                assert!(https("GET /", &[], "1.1.1.1").forwarded);
            }
            "front-door-internal.yml" => {
                // Offline evaluation checks no endpoint: each path forwards to its target.
                let api = https("GET /api/orders", &[], "1.1.1.1");
                assert_eq!(api.forwarded_to.as_deref(), Some("https://api.internal"));
                let web = https("GET /", &[], "1.1.1.1");
                assert_eq!(
                    web.forwarded_to.as_deref(),
                    Some("http://web.internal:8080")
                );
            }
            "canary-by-user.yml" => {
                // sha256("u3") starts with 0; sha256("u1") does not.
                let canary = https("GET /", &[("cookie", "uid=u3")], "1.1.1.1");
                assert_eq!(
                    canary.forwarded_to.as_deref(),
                    Some("https://canary.internal")
                );
                assert_eq!(canary.req.headers["x-canary-bucket"].len(), 8);
                let beta = [("x-client", r#"{"tier": "beta", "v": 3}"#)];
                assert!(https("GET /", &beta, "1.1.1.1").forwarded_to.is_some());
                let stable = https("GET /", &[("cookie", "uid=u1")], "1.1.1.1");
                assert!(stable.forwarded && stable.forwarded_to.is_none());
                let garbage = [("x-client", "not json")];
                assert!(https("GET /", &garbage, "1.1.1.1").forwarded_to.is_none());
            }
            "maintenance-page.yml" => {
                let s = https("GET /", &[], "8.8.8.8");
                assert_eq!(s.res.status(), 503);
                assert_eq!(get(&s.res, "retry-after"), "600");
                assert_eq!(get(&s.res, "content-type"), "text/html; charset=utf-8");
                assert!(https("GET /", &[], "203.0.113.9").forwarded);
            }
            "www-redirect.yml" => {
                let s = https("GET /a?b=1", &[("host", "example.com")], "1.1.1.1");
                assert_eq!(s.res.status(), 301);
                assert_eq!(get(&s.res, "location"), "https://www.example.com/a?b=1");
                assert!(https("GET /", &[("host", "www.example.com")], "1.1.1.1").forwarded);
            }
            "api-rate-limit-by-key.yml" => {
                assert_eq!(https("GET /", &[], "1.1.1.1").res.status(), 401);
                for _ in 0..100 {
                    assert!(https("GET /", &[("x-api-key", "k")], "1.1.1.1").forwarded);
                }
                let s = https("GET /", &[("x-api-key", "k")], "1.1.1.1");
                assert_eq!(s.res.status(), 429);
                assert!(!get(&s.res, "retry-after").is_empty());
                assert!(https("GET /", &[("x-api-key", "other")], "1.1.1.1").forwarded);
            }
            "security-headers.yml" => {
                let s = https("GET /", &[], "1.1.1.1");
                assert_eq!(get(&s.res, "x-frame-options"), "DENY");
                assert!(get(&s.res, "strict-transport-security").starts_with("max-age="));
                assert_eq!(get(&s.res, "server"), "");
                assert_eq!(get(&s.res, "x-powered-by"), "");
            }
            "strip-tracking-params.yml" => {
                let s = https("GET /post?utm_source=tw&id=7&fbclid=abc", &[], "1.1.1.1");
                assert_eq!(s.req.uri, "/post?id=7&");
                assert_eq!(
                    https("GET /post?id=7", &[], "1.1.1.1").req.uri,
                    "/post?id=7"
                );
            }
            "deny-bots.yml" => {
                assert_eq!(
                    https(
                        "GET /",
                        &[("user-agent", "Mozilla/5.0 (compatible; GPTBot/1.0)")],
                        "1.1.1.1"
                    )
                    .res
                    .status(),
                    403
                );
                assert!(
                    https(
                        "GET /",
                        &[("user-agent", "Mozilla/5.0 Firefox/128.0")],
                        "1.1.1.1"
                    )
                    .forwarded
                );
            }
            "json-404-api.yml" => {
                let s = https("GET /api/v9/nope", &[], "1.1.1.1");
                assert_eq!(s.res.status(), 404);
                assert_eq!(get(&s.res, "content-type"), "application/json");
                assert_eq!(
                    s.res.body().as_ref(),
                    br#"{"error": "not_found", "path": "/api/v9/nope"}"#
                );
                assert!(https("GET /api/v1/users/3", &[], "1.1.1.1").forwarded);
            }
            "admin-office-only.yml" => {
                assert_eq!(https("GET /admin/users", &[], "8.8.8.8").res.status(), 403);
                assert!(https("GET /admin/users", &[], "10.8.3.3").forwarded);
            }
            "compress-responses.yml" => {
                let s = https(
                    "GET /",
                    &[("accept-encoding", "gzip, deflate, br")],
                    "1.1.1.1",
                );
                assert_eq!(get(&s.res, "content-encoding"), "br");
                assert!(s.res.body().len() < 5000);
                assert_eq!(get(&s.res, "content-length"), "");
            }
            "redact-secrets.yml" => {
                // The bodies change length as they stream, so neither keeps one.
                let s = https("POST /pay", &[("content-length", "20")], "1.1.1.1");
                assert!(s.forwarded);
                assert!(s.req.headers.get("content-length").is_none());
                assert_eq!(get(&s.res, "content-length"), "");
                assert_eq!(s.res.body().len(), 5000);
                let s = https("GET /", &[("content-length", "20")], "1.1.1.1");
                assert_eq!(s.req.headers["content-length"], "20");
            }
            "host-header-rewrite.yml" => {
                let s = https("GET /", &[], "1.1.1.1");
                assert_eq!(s.req.headers["host"], "localhost:3000");
            }
            "cors.yml" => {
                let s = https(
                    "OPTIONS /api",
                    &[("origin", "https://app.example.com")],
                    "1.1.1.1",
                );
                assert_eq!(s.res.status(), 204);
                assert_eq!(
                    get(&s.res, "access-control-allow-origin"),
                    "https://app.example.com"
                );
                let s = https(
                    "GET /api",
                    &[("origin", "https://app.example.com")],
                    "1.1.1.1",
                );
                assert!(s.forwarded);
                assert_eq!(
                    get(&s.res, "access-control-allow-origin"),
                    "https://app.example.com"
                );
            }
            "https-only.yml" => {
                let s = send(&e, "POST /form", &[], "1.1.1.1", "http");
                assert_eq!(s.res.status(), 308);
                assert_eq!(get(&s.res, "location"), "https://app.example.com/form");
                assert!(https("POST /form", &[], "1.1.1.1").forwarded);
            }
            "log-api-clients.yml" => {
                let s = https(
                    "GET /api/orders",
                    &[("x-client-id", "mobile-app")],
                    "1.1.1.1",
                );
                assert_eq!(s.logs.len(), 1);
                assert_eq!(s.logs[0]["client"], "mobile-app");
                assert_eq!(s.logs[0]["route"], "GET /api/orders");
            }
            "api-version-rewrite.yml" => {
                assert_eq!(
                    https("GET /v2/items?x=1", &[], "1.1.1.1").req.uri,
                    "/api/v2/items?x=1"
                );
            }
            "read-only-site.yml" => {
                let s = https("DELETE /page", &[], "1.1.1.1");
                assert_eq!(s.res.status(), 405);
                assert_eq!(get(&s.res, "allow"), "GET, HEAD");
                assert!(https("HEAD /page", &[], "1.1.1.1").forwarded);
            }
            "vault-credentials.yml" => {
                let s = https("GET /", &[], "1.1.1.1");
                assert_eq!(s.res.status(), 401);
                let auth = basic("admin", "vault-password-1");
                let s = https("GET /", &[("authorization", &auth)], "1.1.1.1");
                assert!(s.forwarded);
                assert_eq!(s.req.headers["x-upstream-token"], "vault-token-1");
            }
            "external-authz.yml" => {
                // Offline nothing can be called: an API request fails closed (on_error: halt),
                // after its one retry; other paths never call.
                let s = https(
                    "GET /api/orders",
                    &[("authorization", "Bearer t")],
                    "1.1.1.1",
                );
                assert_eq!(s.res.status(), 502);
                assert_eq!(get(&s.res, "sluice-error-code"), "ERR_SLUICE_3605");
                assert!(https("GET /", &[], "1.1.1.1").forwarded);
            }
            "tcp-allowlist.yml" => {
                let connect = |ip: &str| {
                    let conn = ConnInfo::new(
                        format!("{ip}:5555").parse().expect("addr"),
                        22,
                        SystemTime::now(),
                    );
                    let mut st = e.new_request(conn, EndpointInfo::default());
                    (e.on_tcp_connect(&mut st), st)
                };
                let (v, st) = connect("10.8.3.4");
                assert!(
                    matches!(
                        v,
                        ConnectVerdict::Continue {
                            terminate_tls: None
                        }
                    ),
                    "{v:?}"
                );
                assert_eq!(st.logs()[0]["matched"], "10.8.0.0/16");
                let (v, st) = connect("203.0.113.9");
                assert!(matches!(v, ConnectVerdict::Close), "{v:?}");
                let refused = st.ip_policy_in(Phase::TcpConnect).expect("decision");
                assert_eq!(refused.decision, Decision::Deny);
                assert!(st.logs().is_empty());
            }
            "login-brute-force.json" => {
                for _ in 0..5 {
                    assert!(https("POST /login", &[], "5.5.5.5").forwarded);
                }
                assert_eq!(https("POST /login", &[], "5.5.5.5").res.status(), 429);
                assert!(https("POST /login", &[], "6.6.6.6").forwarded);
                assert!(https("GET /login", &[], "5.5.5.5").forwarded);
            }
            other => panic!("example {other} has no check: add one"),
        }
        checked += 1;
    }
    assert_eq!(checked, EXPECTED_EXAMPLES);
}

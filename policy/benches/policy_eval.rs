//! Evaluates a realistic 10-rule policy per request (compile excluded).

use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use sluice_policy::{ConnInfo, EndpointInfo, Engine, Policy, RequestVerdict};
use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

const POLICY: &str = r#"
on_http_request:
  - name: block bad bots
    expressions: ["req.user_agent.matches('(?i)(ahrefsbot|semrushbot|gptbot)')"]
    actions: [{type: deny}]
  - name: admin from office
    expressions: ["req.url.path.startsWith('/admin')"]
    actions: [{type: restrict-ips, config: {allow: ["10.0.0.0/8"]}}]
  - name: webhooks from provider
    expressions: ["req.url.path.startsWith('/webhooks')"]
    actions: [{type: restrict-ips, config: {allow: ["140.82.112.0/20"]}}]
  - name: only known methods
    expressions: ["!(req.method in ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS'])"]
    actions: [{type: custom-response, config: {status_code: 405}}]
  - name: maintenance
    expressions: ["req.url.path == '/maintenance'"]
    actions: [{type: custom-response, config: {status_code: 503, body: "later"}}]
  - name: canonical host
    expressions: ["req.host == 'example.com'"]
    actions: [{type: redirect, config: {to: "https://www.example.com/"}}]
  - name: api key present
    expressions: ["req.url.path.startsWith('/api/') && !hasReqHeader('x-api-key')"]
    actions: [{type: custom-response, config: {status_code: 401, body: "key"}}]
  - name: forward client ip
    actions: [{type: add-headers, config: {headers: {x-real-ip: "${conn.client_ip}"}}}]
  - name: strip internal headers
    actions: [{type: remove-headers, config: {headers: [x-internal-debug]}}]
  - name: json api 404
    expressions: ["req.url.path.startsWith('/api/v0/')"]
    actions: [{type: custom-response, config: {status_code: 404, body: '{"error":"gone"}'}}]
"#;

fn bench(c: &mut Criterion) {
    let engine = Engine::new(vec![
        Policy::parse(POLICY, "bench.yml").expect("bench policy compiles")
    ]);
    let endpoint = Arc::new(EndpointInfo {
        host: "app.example.com".into(),
        protocol: "https".into(),
        ..Default::default()
    });
    let template = Request::builder()
        .method("GET")
        .uri("/api/v1/orders?limit=10")
        .header("host", "app.example.com")
        .header(
            "user-agent",
            "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
        )
        .header("x-api-key", "k-123")
        .header("accept", "application/json")
        .body(())
        .expect("request")
        .into_parts()
        .0;
    let conn = ConnInfo {
        client_addr: "203.0.113.7:50000".parse().expect("addr"),
        server_port: 443,
        start: SystemTime::now(),
        tls_version: Some("1.3".into()),
    };
    c.bench_function("10-rule policy, forwarded request", |b| {
        b.iter(|| {
            let mut req = template.clone();
            let mut st = engine.new_request(conn.clone(), Arc::clone(&endpoint));
            let v = engine.on_http_request(&mut st, &mut req);
            assert!(matches!(v, RequestVerdict::Continue));
            black_box(req);
        })
    });
    c.bench_function("request clone + state only (baseline)", |b| {
        b.iter(|| {
            let req = template.clone();
            let st = engine.new_request(conn.clone(), Arc::clone(&endpoint));
            black_box((req, st));
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);

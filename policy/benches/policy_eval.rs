//! Evaluates a realistic 10-rule policy per request (compile excluded).

use criterion::{criterion_group, criterion_main, Criterion};
use http::Request;
use sluice_policy::{ConnInfo, EndpointInfo, Engine, Policy, RequestVerdict};
use std::hint::black_box;
use std::sync::Arc;
use std::time::SystemTime;

/// Shared with `benches/tunnel.rs`, which measures the same policy through the whole edge.
const POLICY: &str = include_str!("../../benches/ten-rule-policy.yml");

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
    let mut conn = ConnInfo::new(
        "203.0.113.7:50000".parse().expect("addr"),
        443,
        SystemTime::now(),
    );
    conn.tls.version = Some("1.3".into());
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

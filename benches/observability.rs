//! The cost of observability on the tunnel: small GETs through Sluice with metrics and event
//! export off, then on (metrics recorded, every request's event written to a JSON-lines file),
//! alternating in the same run so the ratio holds on a noisy machine.
//!
//! `cargo bench --bench observability` (release). `SLUICE_BENCH_SECS` (default 5) per round,
//! `SLUICE_BENCH_ROUNDS` (default 3) rounds of each.

use sluice_e2e::load::{bench_secs, load};
use sluice_e2e::scrape::{sample, scrape};
use sluice_e2e::upstream;
use sluice_e2e::{any_port, TestAgent, TestEdge, TOKEN};
use sluice_edge::EventDestination;
use std::net::SocketAddr;
use std::time::Duration;

const CONNECTIONS: usize = 32;
const MAX_REQUESTS: u64 = 2_000_000;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// One round through a fresh edge and agent; returns req/s.
async fn round(app: SocketAddr, observed: bool, secs: u64) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events.jsonl");
    let events_path = events.to_str().unwrap_or("events.jsonl").to_string();
    let edge = TestEdge::start_with(|c| {
        if observed {
            c.metrics_addr = Some(any_port());
            c.event_destinations = vec![EventDestination::events_file(&events_path)];
        }
    })
    .await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "bench", app)).await?;
    let url = format!("{}/api/v1/orders?limit=10", agent.url());
    let rps = load(
        &url,
        edge.http_addr,
        CONNECTIONS,
        Duration::from_secs(secs),
        MAX_REQUESTS,
        &[("user-agent", "sluice-bench/1")],
    )
    .await?;
    if let Some(addr) = edge.handle().metrics_addr {
        // Sanity: the observed run really did the work being measured.
        let text = scrape(addr).await?;
        let counted = sample(
            &text,
            "sluice_edge_http_requests_total{endpoint=\"other\",status_class=\"2xx\"}",
        );
        anyhow::ensure!(counted.is_some_and(|n| n > 0.0), "no requests counted");
    }
    agent.stop().await?;
    edge.shutdown().await;
    if observed {
        let lines = std::fs::read_to_string(&events)?.lines().count();
        anyhow::ensure!(lines > 0, "no events written");
    }
    Ok(rps)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = bench_secs(5);
    let rounds = env_or("SLUICE_BENCH_ROUNDS", 3);
    let app = upstream::one_kib().await?;
    let (mut off, mut on) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        off.push(round(app.addr, false, secs).await?);
        on.push(round(app.addr, true, secs).await?);
    }
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    println!("small GETs through Sluice, 1 KiB, {CONNECTIONS} keep-alive connections, {rounds} alternating rounds of {secs} s");
    println!("| observability | req/s per round | mean |");
    println!("|---|---|---|");
    for (name, v) in [("off", &off), ("metrics + events file", &on)] {
        let rounds: Vec<String> = v.iter().map(|r| format!("{r:.0}")).collect();
        println!("| {name} | {} | {:.0} |", rounds.join(", "), mean(v));
    }
    println!(
        "on/off = {:.3} (cost {:.1} %)",
        mean(&on) / mean(&off),
        (1.0 - mean(&on) / mean(&off)) * 100.0
    );
    Ok(())
}

//! Load harness: small GETs straight to an upstream, through Sluice, and through Sluice with the
//! realistic 10-rule policy, measured in the same run so the ratios hold on a noisy machine.
//!
//! `cargo bench --bench tunnel` (release). Each scenario runs 32 keep-alive connections for a
//! bounded time (`SLUICE_BENCH_SECS`, default 5 s) and at most 2,000,000 requests.

use sluice_agent::policy_input;
use sluice_e2e::load::bench_secs;
use sluice_e2e::upstream;
use sluice_e2e::{TestAgent, TestEdge, TOKEN};
use sluice_policy::Shorthand;
use std::net::SocketAddr;
use std::time::Duration;

const CONNECTIONS: usize = 32;
const MAX_REQUESTS: u64 = 2_000_000;
const POLICY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ten-rule-policy.yml");

/// The headers the 10-rule policy looks at, so every request passes it.
const HEADERS: &[(&str, &str)] = &[
    (
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Firefox/128.0",
    ),
    ("x-api-key", "k-123"),
];

/// Runs the load against `url` (resolved to `addr`) and returns requests per second.
async fn load(url: String, addr: SocketAddr, secs: u64) -> anyhow::Result<f64> {
    sluice_e2e::load::load(
        &url,
        addr,
        CONNECTIONS,
        Duration::from_secs(secs),
        MAX_REQUESTS,
        HEADERS,
    )
    .await
}

async fn through_sluice(
    app: SocketAddr,
    name: &str,
    policy: bool,
    secs: u64,
) -> anyhow::Result<f64> {
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, name, app);
    if policy {
        config.endpoints[0].policies =
            policy_input::layers(&Shorthand::default(), Some(POLICY_FILE.as_ref()))?;
    }
    let agent = TestAgent::start(config).await?;
    let url = format!("{}/api/v1/orders?limit=10", agent.url());
    let rps = load(url, edge.http_addr, secs).await?;
    agent.stop().await?;
    edge.shutdown().await;
    Ok(rps)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = bench_secs(5);
    let app = upstream::one_kib().await?;
    let direct = load(
        format!(
            "http://127.0.0.1:{}/api/v1/orders?limit=10",
            app.addr.port()
        ),
        app.addr,
        secs,
    )
    .await?;
    let plain = through_sluice(app.addr, "plain", false, secs).await?;
    let policy = through_sluice(app.addr, "policy", true, secs).await?;
    println!("small GETs, 1 KiB, {CONNECTIONS} keep-alive connections, {secs} s each");
    println!("| path | req/s | vs direct | vs sluice |");
    println!("|---|---|---|---|");
    println!("| direct | {direct:.0} | 1.00 | |");
    println!("| sluice | {plain:.0} | {:.2} | 1.00 |", plain / direct);
    println!(
        "| sluice + 10-rule policy | {policy:.0} | {:.2} | {:.2} |",
        policy / direct,
        policy / plain
    );
    Ok(())
}

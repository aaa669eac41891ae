//! HTTP vs HTTPS through the tunnel, measured in the same run: small GETs over 32 concurrent
//! requesters to one edge and agent, first plain HTTP/1.1, then HTTPS with HTTP/1.1
//! keep-alive connections, then HTTPS with HTTP/2 (ALPN; all requests multiplexed as a
//! browser would), then HTTPS with a new connection (a full TLS handshake) per request, which
//! measures the edge's handshake path.
//!
//! `cargo bench --bench https` (release). Each scenario runs for `SLUICE_BENCH_SECS`
//! (default 5 s).

use sluice_e2e::load::{bench_secs, load_with};
use sluice_e2e::tls::TestCa;
use sluice_e2e::upstream;
use sluice_e2e::{TestAgent, TestEdge, TOKEN};
use std::net::SocketAddr;
use std::time::Duration;

const REQUESTERS: usize = 32;

/// Requests per second from [`load_with`], after a discarded one-second run that warms the
/// edge, agent and upstream (the measured run opens its own connections: 32 handshakes at
/// most, small against seconds of requests).
async fn load(
    client: impl Fn() -> reqwest::ClientBuilder,
    url: &str,
    addr: SocketAddr,
    secs: u64,
    headers: &'static [(&'static str, &'static str)],
) -> anyhow::Result<f64> {
    let warm_up = Duration::from_secs(1);
    load_with(client(), url, addr, REQUESTERS, warm_up, u64::MAX, headers).await?;
    let run = Duration::from_secs(secs);
    load_with(client(), url, addr, REQUESTERS, run, u64::MAX, headers).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let secs = bench_secs(5);
    let app = upstream::one_kib().await?;
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("bench CA")?;
    let edge = TestEdge::start_https(&ca, dir.path(), "bench.test").await?;
    let https_addr = edge.https()?;
    let plain = TestAgent::start(edge.agent_config(TOKEN, "http://plain", app.addr)).await?;
    let secure = TestAgent::start(edge.agent_config(TOKEN, "secure", app.addr)).await?;
    let path = "/api/v1/orders?limit=10";
    let trusting = || {
        reqwest::Client::builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(
                reqwest::Certificate::from_der(&ca.der()).unwrap_or_else(|e| panic!("{e}")),
            )
    };
    let http = load(
        || reqwest::Client::builder().http1_only(),
        &format!("{}{path}", plain.url()),
        edge.http_addr,
        secs,
        &[],
    )
    .await?;
    let https_h1 = load(
        || trusting().http1_only(),
        &format!("{}{path}", secure.url()),
        https_addr,
        secs,
        &[],
    )
    .await?;
    let https_h2 = load(
        || trusting().http2_prior_knowledge(),
        &format!("{}{path}", secure.url()),
        https_addr,
        secs,
        &[],
    )
    .await?;
    let https_new = load(
        || trusting().http1_only(),
        &format!("{}{path}", secure.url()),
        https_addr,
        secs,
        // The edge closes after each response: every request opens and handshakes anew.
        &[("connection", "close")],
    )
    .await?;
    println!("small GETs (1 KiB) through edge and agent, {REQUESTERS} concurrent requesters, {secs} s each");
    println!("| client to edge | req/s | vs HTTP |");
    println!("|---|---|---|");
    println!("| HTTP/1.1, keep-alive | {http:.0} | 1.00 |");
    println!(
        "| HTTPS, HTTP/1.1 keep-alive | {https_h1:.0} | {:.2} |",
        https_h1 / http
    );
    println!(
        "| HTTPS, HTTP/2 (one connection) | {https_h2:.0} | {:.2} |",
        https_h2 / http
    );
    println!(
        "| HTTPS, new connection per request | {https_new:.0} | {:.2} |",
        https_new / http
    );
    plain.stop().await?;
    secure.stop().await?;
    edge.shutdown().await;
    Ok(())
}

//! A small closed-loop load generator for the benches: keep-alive connections each sending
//! GETs back to back for a bounded time.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `connections` keep-alive connections GET `url` (its host resolved to `addr`) for `duration`
/// or until `max_requests`, each request carrying `headers`; every answer must be 200.
/// Returns requests per second.
pub async fn load(
    url: &str,
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    max_requests: u64,
    headers: &'static [(&'static str, &'static str)],
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder();
    load_with(
        client,
        url,
        addr,
        connections,
        duration,
        max_requests,
        headers,
    )
    .await
}

/// [`load`] with a client built from `client` (trusted roots, HTTP version), for HTTPS loads.
pub async fn load_with(
    client: reqwest::ClientBuilder,
    url: &str,
    addr: SocketAddr,
    connections: usize,
    duration: Duration,
    max_requests: u64,
    headers: &'static [(&'static str, &'static str)],
) -> anyhow::Result<f64> {
    let host = reqwest::Url::parse(url)?
        .host_str()
        .unwrap_or("localhost")
        .to_string();
    let client = client
        .resolve(&host, addr)
        .pool_max_idle_per_host(connections)
        .build()?;
    let done = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::new();
    for _ in 0..connections {
        let (client, url, done) = (client.clone(), url.to_string(), done.clone());
        tasks.push(tokio::spawn(async move {
            while Instant::now() < deadline && done.load(Ordering::Relaxed) < max_requests {
                let mut req = client.get(&url);
                for (name, value) in headers {
                    req = req.header(*name, *value);
                }
                let r = req.send().await?;
                anyhow::ensure!(r.status() == 200, "status {}", r.status());
                r.bytes().await?;
                done.fetch_add(1, Ordering::Relaxed);
            }
            Ok::<_, anyhow::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(done.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// Seconds per measured round of a bench: `SLUICE_BENCH_SECS`, else `default`.
pub fn bench_secs(default: u64) -> u64 {
    std::env::var("SLUICE_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

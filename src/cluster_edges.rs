//! Clustered [`TestEdge`]s sharing one [`RedisServer`] (docs/cluster.md), and a few raw store
//! commands (Redis's clock, killing connections) for the tests that need them.

use crate::redis::RedisServer;
use crate::TestEdge;
use anyhow::{bail, Context as _};
use sluice_edge::{ClusterConfig, EdgeConfig};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// The peer secret of every test cluster.
pub const PEER_SECRET: &str = "cluster-test-peer-secret";

/// The sign-in session keys every edge of a test cluster shares (the operator's file).
pub const SESSION_KEYS: &str = "8f0e4d1c2b3a49586776a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n";

/// Writes `keys` as the session-keys file of `state_dir`.
pub fn provide_keys(state_dir: &Path, keys: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(state_dir)?;
    std::fs::write(state_dir.join("session-keys"), keys)?;
    Ok(())
}

/// The `cluster:` settings of edge `edge_id` on `redis`.
pub fn cluster(redis: &RedisServer, edge_id: &str) -> ClusterConfig {
    ClusterConfig {
        store: redis.url(),
        edge_id: edge_id.into(),
        peer_secret: PEER_SECRET.into(),
        advertise_addr: None,
    }
}

/// An edge joined to the cluster on `redis` as `edge_id`, after `tweak`.
pub async fn clustered(
    redis: &RedisServer,
    edge_id: &str,
    tweak: impl FnOnce(&mut EdgeConfig),
) -> anyhow::Result<TestEdge> {
    let config = cluster(redis, edge_id);
    let mut failed = None;
    let edge = TestEdge::start_with(|c| {
        failed = provide_keys(&c.state_dir, SESSION_KEYS).err();
        c.cluster = Some(config);
        tweak(c);
    })
    .await?;
    match failed {
        Some(e) => Err(e.context("writing the session keys")),
        None => Ok(edge),
    }
}

/// Sends one command to the store at `addr` and returns its reply as lines (RESP, unparsed
/// beyond the line breaks), within 5 s.
pub async fn store_command(addr: SocketAddr, args: &[&str]) -> anyhow::Result<Vec<String>> {
    let mut request = format!("*{}\r\n", args.len());
    for a in args {
        request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    crate::within(Duration::from_secs(5), "the store's reply", async {
        let mut conn = tokio::net::TcpStream::connect(addr).await?;
        conn.write_all(request.as_bytes()).await?;
        conn.shutdown().await.ok();
        let mut reply = String::new();
        conn.read_to_string(&mut reply).await.ok();
        if reply.is_empty() {
            bail!("no reply to {args:?}");
        }
        Ok(reply.lines().map(str::to_string).collect())
    })
    .await?
}

/// The store's clock (TIME), in milliseconds since the Unix epoch.
pub async fn store_time_ms(redis: &RedisServer) -> anyhow::Result<u64> {
    let lines = store_command(redis.addr, &["TIME"]).await?;
    // *2, $N, seconds, $N, microseconds
    let field = |i: usize| -> anyhow::Result<u64> {
        lines
            .get(i)
            .with_context(|| format!("TIME answered {lines:?}"))?
            .parse()
            .with_context(|| format!("TIME answered {lines:?}"))
    };
    Ok(field(2)? * 1000 + field(4)? / 1000)
}

/// Waits, if needed, until at least `margin` is left of the current `window` on the store's
/// clock, so a test's requests all fall into one window of a sliding-window limiter.
pub async fn wait_for_window(
    redis: &RedisServer,
    window: Duration,
    margin: Duration,
) -> anyhow::Result<()> {
    let window_ms = window.as_millis() as u64;
    let into = store_time_ms(redis).await? % window_ms;
    let left = window_ms - into;
    if left < margin.as_millis() as u64 {
        tokio::time::sleep(Duration::from_millis(left + 50)).await;
    }
    Ok(())
}

/// The store's process id (INFO), e.g. to stop it with SIGSTOP: a store that hangs rather than
/// goes away.
pub async fn store_pid(redis: &RedisServer) -> anyhow::Result<i32> {
    let lines = store_command(redis.addr, &["INFO", "server"]).await?;
    lines
        .iter()
        .find_map(|l| l.strip_prefix("process_id:"))
        .and_then(|pid| pid.trim().parse().ok())
        .with_context(|| format!("no process_id in {lines:?}"))
}

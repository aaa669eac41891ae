//! [`RedisServer`]: Debian's `redis-server` on a loopback port for the cluster tests, with no
//! persistence, which a test can kill and start again on the same port (empty, as after a
//! data loss); and a few raw store commands (Redis's clock, killing connections) for the tests
//! that need them.

use crate::{free_tcp_port, tools, within};
use anyhow::{bail, Context as _};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, Command};

/// What installs redis-server.
pub const REDIS_SETUP: &str = "scripts/setup.d/70-redis";

/// A running redis-server; killed when dropped.
pub struct RedisServer {
    child: Option<Child>,
    /// Where it listens.
    pub addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one on a free loopback port.
    pub async fn start() -> anyhow::Result<Self> {
        tools::require(&["redis-server"], REDIS_SETUP)?;
        let mut server = Self {
            child: None,
            addr: free_tcp_port()?,
            dir: tempfile::tempdir()?,
        };
        server.restart().await?;
        Ok(server)
    }

    /// `redis://ADDR`, for an edge's `cluster.store`.
    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// Stops it at once (SIGKILL): the store is gone for the edges.
    pub async fn kill(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().await?;
        }
        Ok(())
    }

    /// Drops every key while it runs (a store that lost its data without a restart), with
    /// Debian's `redis-cli`.
    pub async fn flush_all(&self) -> anyhow::Result<()> {
        let status = Command::new("redis-cli")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.addr.port().to_string(),
                "FLUSHALL",
            ])
            .stdout(Stdio::null())
            .status()
            .await?;
        anyhow::ensure!(status.success(), "redis-cli FLUSHALL failed: {status}");
        Ok(())
    }

    /// Starts it (again) on the same port, with no data, and waits until it accepts.
    pub async fn restart(&mut self) -> anyhow::Result<()> {
        self.kill().await?;
        let log = std::fs::File::create(self.dir.path().join("redis.log"))?;
        let child = Command::new("redis-server")
            .args(["--port", &self.addr.port().to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()?;
        self.child = Some(child);
        let addr = self.addr;
        within(Duration::from_secs(10), "redis-server to accept", async {
            while tokio::net::TcpStream::connect(addr).await.is_err() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
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

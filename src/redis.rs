//! [`RedisServer`]: Debian's `redis-server` on a loopback port for the cluster tests, with no
//! persistence, which a test can kill and start again on the same port (empty, as after a
//! data loss).

use crate::{free_tcp_port, tools, within};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;
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

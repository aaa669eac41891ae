//! The websocket echo upstream in a child process of its own, so that the 10,000 sockets it
//! accepts and the 10,000 the harness opens as clients count against two descriptor limits.
//!
//! With both in the harness, a 20,000-descriptor hard limit (this machine's) stopped the
//! 10,000-websocket run at about 9,960: the echo's `accept` failed and the edge answered 502.

use anyhow::Context as _;
use sluice_e2e::upstream;
use std::net::SocketAddr;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// Set in the child's environment: run as the echo server instead of the harness.
const ROLE: &str = "SLUICE_BENCH_ROLE_WS_ECHO";

/// A websocket echo server in a child process; killed when dropped.
pub struct EchoProcess {
    pub addr: SocketAddr,
    _child: Child,
}

/// When this process was started as the echo child: serve until killed (never returns).
pub async fn serve_if_child() -> anyhow::Result<()> {
    if std::env::var_os(ROLE).is_none() {
        return Ok(());
    }
    let echo = upstream::websocket_echo().await?;
    println!("{}", echo.addr);
    std::future::pending::<()>().await;
    Ok(())
}

/// Starts this benchmark binary again as the echo server and reads the address it prints.
pub async fn spawn() -> anyhow::Result<EchoProcess> {
    let mut child = Command::new(std::env::current_exe()?)
        .env(ROLE, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .context("starting the websocket echo process")?;
    let mut stdout = BufReader::new(child.stdout.take().context("echo process stdout")?);
    let mut line = String::new();
    let read = stdout.read_line(&mut line);
    tokio::time::timeout(std::time::Duration::from_secs(20), read)
        .await
        .context("echo process did not print its address")??;
    let addr = line.trim().parse().context("echo process address")?;
    Ok(EchoProcess {
        addr,
        _child: child,
    })
}

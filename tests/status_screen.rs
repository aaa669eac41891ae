//! The status screen on a real terminal: the `agent` binary runs under a pty (`script`), the
//! screen (parsed by a vt100 emulator) shows the public URL and a forwarded request's line, and
//! Ctrl-C closes the session cleanly so the edge frees the hostname at once; `agent tcp`'s
//! screen lists its connections.

use anyhow::Context as _;
use sluice_e2e::process::bin;
use sluice_e2e::{
    assert_endpoint_not_found, client, eventually, tcp_port_range, upstream, within, TestEdge,
    TOKEN,
};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The agent running under `script(1)`, its screen parsed by a vt100 emulator.
struct Pty {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    terminal: Arc<Mutex<vt100::Parser>>,
    raw: Arc<Mutex<Vec<u8>>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Pty {
    /// Runs the shell-quoted `command` on a 40×120 pty.
    fn spawn(command: &str) -> anyhow::Result<Self> {
        let (rows, cols) = (40, 120);
        let mut child = tokio::process::Command::new("script")
            .args([
                "-qfec",
                &format!("stty rows {rows} cols {cols}; exec {command}"),
                "/dev/null",
            ])
            .env("SHELL", "/bin/sh")
            .env("TERM", "xterm-256color")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("running script(1)")?;
        let stdin = child.stdin.take().context("stdin")?;
        let mut stdout = child.stdout.take().context("stdout")?;
        let terminal = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let raw = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let (terminal, raw) = (terminal.clone(), raw.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 8192];
                while let Ok(n) = stdout.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    terminal
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .process(&buf[..n]);
                    raw.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .extend_from_slice(&buf[..n]);
                }
            })
        };
        Ok(Self {
            child,
            stdin,
            terminal,
            raw,
            reader,
        })
    }

    /// The screen's text now.
    fn screen(&self) -> String {
        self.terminal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .screen()
            .contents()
    }

    /// Presses Ctrl-C (a key: the screen runs the terminal raw), waits for the agent to exit
    /// cleanly, and returns everything it wrote.
    async fn ctrl_c(&mut self) -> anyhow::Result<String> {
        self.stdin.write_all(b"\x03").await?;
        self.stdin.flush().await?;
        let status = within(
            Duration::from_secs(15),
            "agent to exit after Ctrl-C",
            self.child.wait(),
        )
        .await??;
        assert!(status.success(), "{status}");
        within(
            Duration::from_secs(5),
            "pty output to end",
            &mut self.reader,
        )
        .await??;
        let raw = self.raw.lock().unwrap_or_else(|p| p.into_inner());
        Ok(String::from_utf8_lossy(&raw).into_owned())
    }
}

#[tokio::test]
async fn screen_shows_url_and_requests_and_ctrl_c_frees_the_hostname() -> anyhow::Result<()> {
    let app = upstream::app("pty").await?;
    let edge = TestEdge::start().await?;
    let agent = bin("agent")?;
    let command = [
        agent.to_string_lossy().as_ref(),
        "http",
        &format!("http://{}", app.addr),
        "--edge",
        &edge.tunnel_addr.to_string(),
        "--authtoken",
        TOKEN,
        "--edge-ca",
        edge.cert.to_string_lossy().as_ref(),
        "--url",
        "pty",
        "--inspect=false",
    ]
    .map(quote)
    .join(" ");
    let mut pty = Pty::spawn(&command)?;
    let screen = || pty.screen();
    let url = edge.url("pty.localhost");

    let shown = eventually(
        Duration::from_secs(30),
        "screen to show the session online",
        || async {
            let s = screen();
            (s.contains(&url) && s.contains("online")).then_some(s)
        },
    )
    .await
    .with_context(|| format!("screen:\n{}", screen()))?;
    let line = |s: &str, label: &str| s.lines().find(|l| l.contains(label)).map(str::to_string);
    assert!(
        line(&shown, "Forwarding").is_some_and(|l| l.contains(&format!("-> http://{}", app.addr))),
        "{shown}"
    );
    assert!(
        line(&shown, "Edge").is_some_and(|l| l.contains(&edge.tunnel_addr.to_string())),
        "{shown}"
    );

    let resp = client().get(format!("{url}/pty-check?x=1")).send().await?;
    assert_eq!(resp.status(), 200);
    let shown = eventually(Duration::from_secs(10), "the request's line", || async {
        let s = screen();
        line(&s, "/pty-check?x=1")
            .filter(|l| l.starts_with("GET") && l.contains("200 OK") && l.ends_with("ms"))
            .map(|_| s)
    })
    .await
    .with_context(|| format!("screen:\n{}", screen()))?;
    assert!(
        line(&shown, "Latency").is_some_and(|l| l.trim_end().ends_with("ms")),
        "{shown}"
    );
    let counters = shown
        .lines()
        .skip_while(|l| !l.contains("ttl"))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(counters.split_whitespace().next(), Some("1"), "{shown}");

    // Ctrl-C arrives as a key (the screen runs the terminal raw): the agent closes the session.
    let raw = pty.ctrl_c().await?;
    assert_endpoint_not_found(&client().get(&url).send().await?);
    // The terminal is given back: alternate screen left, cursor shown, and a last line printed.
    let restored = raw
        .rfind("\x1b[?1049l")
        .context("alternate screen never left")?;
    assert!(
        raw[restored..].contains("\x1b[?25h"),
        "cursor not shown again"
    );
    assert!(raw[restored..].contains("Session closed"));
    edge.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn agent_tcp_screen_lists_connections_with_their_bytes() -> anyhow::Result<()> {
    let echo = upstream::tcp_echo().await?;
    let edge = TestEdge::start_with(|c| c.tcp_ports = tcp_port_range(20).ok()).await?;
    let agent = bin("agent")?;
    let command = [
        agent.to_string_lossy().as_ref(),
        "tcp",
        &echo.addr.to_string(),
        "--edge",
        &edge.tunnel_addr.to_string(),
        "--authtoken",
        TOKEN,
        "--edge-ca",
        edge.cert.to_string_lossy().as_ref(),
        "--inspect=false",
    ]
    .map(quote)
    .join(" ");
    let mut pty = Pty::spawn(&command)?;
    let line = |s: &str, label: &str| s.lines().find(|l| l.contains(label)).map(str::to_string);
    let forwarding = eventually(
        Duration::from_secs(30),
        "screen to show the session online",
        || async {
            let s = pty.screen();
            line(&s, "Forwarding").filter(|l| l.contains("tcp://") && s.contains("online"))
        },
    )
    .await
    .with_context(|| format!("screen:\n{}", pty.screen()))?;
    assert!(
        forwarding.contains(&format!("tcp://{}", echo.addr)),
        "{forwarding}"
    );
    let port: u16 = forwarding
        .split_whitespace()
        .find_map(|w| w.strip_prefix("tcp://localhost:"))
        .context("no public URL")?
        .parse()?;

    // One connection stays open while another moves 1000 bytes each way and closes.
    let open = TcpStream::connect(("127.0.0.1", port)).await?;
    let mut done = TcpStream::connect(("127.0.0.1", port)).await?;
    let done_addr = done.local_addr()?;
    done.write_all(&[7u8; 1000]).await?;
    done.shutdown().await?;
    let mut back = Vec::new();
    within(
        Duration::from_secs(10),
        "the echo",
        done.read_to_end(&mut back),
    )
    .await??;
    assert_eq!(back.len(), 1000);
    let shown = eventually(
        Duration::from_secs(10),
        "both connections listed",
        || async {
            let s = pty.screen();
            let closed = line(&s, &done_addr.to_string())?;
            let opened = line(&s, &open.local_addr().ok()?.to_string())?;
            (closed.contains("closed") && opened.contains("open")).then_some((s, closed))
        },
    )
    .await
    .with_context(|| format!("screen:\n{}", pty.screen()))?;
    let (shown, closed) = shown;
    let cells: Vec<&str> = closed.split_whitespace().collect();
    assert_eq!(
        cells[..6],
        [&*done_addr.to_string(), "closed", "1000", "B", "1000", "B"],
        "{shown}"
    );
    assert!(!shown.contains("HTTP Requests"), "{shown}");
    let counters = shown
        .lines()
        .skip_while(|l| !l.starts_with("Connections"))
        .nth(1)
        .unwrap_or_default()
        .to_string();
    assert_eq!(
        counters.split_whitespace().collect::<Vec<_>>(),
        ["2", "1"],
        "{shown}"
    );
    drop(open);
    pty.ctrl_c().await?;
    edge.shutdown().await;
    Ok(())
}

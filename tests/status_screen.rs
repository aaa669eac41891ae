//! The status screen on a real terminal: the `agent` binary runs under a pty (`script`), the
//! screen (parsed by a vt100 emulator) shows the public URL and a forwarded request's line, and
//! Ctrl-C closes the session cleanly so the edge frees the hostname at once.

use anyhow::Context as _;
use sluice_e2e::process::bin;
use sluice_e2e::{
    assert_endpoint_not_found, client, eventually, upstream, within, TestEdge, TOKEN,
};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
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
    let mut stdin = child.stdin.take().context("stdin")?;
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
    let screen = || {
        terminal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .screen()
            .contents()
    };
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
    stdin.write_all(b"\x03").await?;
    stdin.flush().await?;
    let status = within(
        Duration::from_secs(15),
        "agent to exit after Ctrl-C",
        child.wait(),
    )
    .await??;
    assert!(status.success(), "{status}");
    assert_endpoint_not_found(&client().get(&url).send().await?);
    within(Duration::from_secs(5), "pty output to end", reader).await??;
    let raw = String::from_utf8_lossy(&raw.lock().unwrap_or_else(|p| p.into_inner())).into_owned();
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

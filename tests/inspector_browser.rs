//! The inspector page in a real browser: the real `agent` binary serves it, headless Chromium
//! (driven by `tests/node/inspector-browser.mjs`) sees a request appear live, opens it, replays
//! it as is and edited, and the upstream receives both replays; an `agent tcp`'s page lists its
//! connections (`tests/node/inspector-tcp-browser.mjs`). On failure the driver saves a
//! screenshot under `target/browser-screenshots/` and prints its path.

use anyhow::Context as _;
use sluice_e2e::chromium;
use sluice_e2e::process::agent_command;
use sluice_e2e::recording::recording_app;
use sluice_e2e::{eventually, AgentProcess, TestEdge, TOKEN};
use std::time::Duration;

/// The inspector URL the agent printed.
fn inspector_url(agent: &AgentProcess) -> anyhow::Result<String> {
    agent
        .output()
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Inspector")
                .map(|u| u.trim().to_string())
        })
        .with_context(|| format!("no Inspector line:\n{}", agent.output()))
}

#[tokio::test]
async fn page_shows_a_request_live_and_replays_it() -> anyhow::Result<()> {
    let (app, recorded) = recording_app().await?;
    let edge = TestEdge::start().await?;
    let dir = tempfile::tempdir()?;
    let mut cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "browser", app.addr)?;
    cmd.args(["--inspect-addr", "127.0.0.1:0"]);
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let inspector = inspector_url(&agent)?;

    let public_host = format!("browser.localhost:{}", edge.http_addr.port());
    let edge_addr = edge.http_addr.to_string();
    chromium::drive(
        "inspector-browser.mjs",
        &[&inspector, &edge_addr, &public_host],
    )
    .await
    .with_context(|| agent.output())?;

    // The original, the replay and the edited replay all reached the upstream.
    let all = eventually(
        Duration::from_secs(10),
        "three requests at the upstream",
        || async {
            let all = recorded.all();
            (all.len() >= 3).then_some(all)
        },
    )
    .await?;
    assert_eq!(all.len(), 3, "{all:?}");
    for r in &all {
        assert_eq!(
            (r.method.as_str(), r.uri.as_str()),
            ("POST", "/browser-hook?step=1")
        );
    }
    assert_eq!(all[1].body, all[0].body, "replay as is");
    assert!(all[0].body.contains("\"browser\""), "{:?}", all[0]);
    assert_eq!(all[2].body, r#"{"event":"edited"}"#);
    agent.terminate(Duration::from_secs(10)).await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn page_lists_tcp_connections_of_agent_tcp() -> anyhow::Result<()> {
    let echo = sluice_e2e::upstream::tcp_echo().await?;
    let edge = TestEdge::start_with(|c| c.tcp_ports = sluice_e2e::tcp_port_range(20).ok()).await?;
    let dir = tempfile::tempdir()?;
    let mut cmd = sluice_e2e::process::base_command("agent")?;
    cmd.args(["tcp", &echo.addr.to_string()])
        .args([
            "--edge",
            &edge.tunnel_addr.to_string(),
            "--authtoken",
            TOKEN,
        ])
        .arg("--edge-ca")
        .arg(&edge.cert)
        .args(["--inspect-addr", "127.0.0.1:0"]);
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let inspector = inspector_url(&agent)?;
    let port = agent
        .url
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .with_context(|| format!("no port in {}", agent.url))?;
    chromium::drive("inspector-tcp-browser.mjs", &[&inspector, &port])
        .await
        .with_context(|| agent.output())?;
    agent.terminate(Duration::from_secs(10)).await?;
    edge.shutdown().await;
    Ok(())
}

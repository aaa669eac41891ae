//! The agent binary's `--log FILE --log-format json|logfmt`: session online, each proxied
//! request and reconnects are structured records in the file.

use sluice_e2e::process::agent_command;
use sluice_e2e::{client, eventually, upstream, TestEdge, TOKEN};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// Runs the agent with `--log-format format`, sends one request, and returns the log file's
/// lines once the proxied request is in it. The agent's stdout (a `Forwarding` line, or JSON
/// in json mode) is not read: the log file alone must show it online.
async fn agent_log(format: &str, name: &str) -> anyhow::Result<Vec<String>> {
    let edge = TestEdge::start().await?;
    let app = upstream::app(name).await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("agent.log");
    let mut cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, name, app.addr)?;
    cmd.arg("--log").arg(&log).args(["--log-format", format]);
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    let mut agent = cmd.spawn()?;
    let result = async {
        eventually(Duration::from_secs(20), "session online record", || async {
            read_lines(&log)
                .iter()
                .any(|l| l.contains("session online"))
                .then_some(())
        })
        .await?;
        let r = client()
            .get(format!(
                "{}/logged?x=1",
                edge.url(&format!("{name}.localhost"))
            ))
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        r.bytes().await?;
        eventually(Duration::from_secs(10), "forwarded record", || async {
            let lines = read_lines(&log);
            lines
                .iter()
                .any(|l| l.contains("forwarded"))
                .then_some(lines)
        })
        .await
    }
    .await;
    agent.start_kill()?;
    agent.wait().await?;
    edge.shutdown().await;
    result
}

fn read_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn json_log_records_session_and_requests() -> anyhow::Result<()> {
    let lines = agent_log("json", "jsonlog").await?;
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;
    let online = records
        .iter()
        .find(|r| r["fields"]["message"] == "session online")
        .ok_or_else(|| anyhow::anyhow!("no session online record: {lines:#?}"))?;
    assert!(
        online["fields"]["url"]
            .as_str()
            .is_some_and(|u| u.contains("jsonlog.localhost")),
        "{online}"
    );
    let forwarded = records
        .iter()
        .find(|r| r["fields"]["message"] == "forwarded")
        .ok_or_else(|| anyhow::anyhow!("no forwarded record: {lines:#?}"))?;
    assert_eq!(forwarded["fields"]["status"], 200, "{forwarded}");
    assert_eq!(forwarded["fields"]["path"], "/logged", "{forwarded}");
    assert_eq!(forwarded["level"], "INFO");
    Ok(())
}

#[tokio::test]
async fn logfmt_log_records_session_and_requests() -> anyhow::Result<()> {
    let lines = agent_log("logfmt", "fmtlog").await?;
    let forwarded = lines
        .iter()
        .find(|l| l.contains("forwarded"))
        .ok_or_else(|| anyhow::anyhow!("no forwarded record: {lines:#?}"))?;
    for kv in ["level=info", "method=GET", "path=/logged", "status=200"] {
        assert!(forwarded.contains(kv), "{kv} in {forwarded}");
    }
    assert!(forwarded.starts_with("ts="), "{forwarded}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("session online") && l.contains("fmtlog.localhost")),
        "{lines:#?}"
    );
    Ok(())
}

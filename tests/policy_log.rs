//! The `log` action's metadata reaches the edge's per-request access event.

use sluice_agent::policy_input;
use sluice_e2e::upstream;
use sluice_e2e::{client, TestAgent, TestEdge, TOKEN};
use sluice_policy::Shorthand;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .map_err(|_| std::io::Error::other("poisoned"))?
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn log_action_metadata_is_in_the_access_event() -> anyhow::Result<()> {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let dir = tempfile::tempdir()?;
    let file = dir.path().join("log.yml");
    std::fs::write(
        &file,
        "on_http_request:\n  - actions:\n      - type: log\n        config:\n          metadata: {audit: 'seen-${req.url.path}'}\n",
    )?;
    let edge = TestEdge::start().await?;
    let app = upstream::app("log").await?;
    let mut config = edge.agent_config(TOKEN, "log", app.addr);
    config.endpoints[0].policies = policy_input::layers(&Shorthand::default(), Some(&file))?;
    let agent = TestAgent::start(config).await?;

    let r = client()
        .get(format!("{}/audited", agent.url()))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    r.bytes().await?;
    agent.stop().await?;

    let text = String::from_utf8(
        captured
            .0
            .lock()
            .map_err(|_| anyhow::anyhow!("poisoned"))?
            .clone(),
    )?;
    let event = text
        .lines()
        .find(|l| l.contains("request complete") && l.contains("host=log.localhost"))
        .ok_or_else(|| anyhow::anyhow!("no access event in:\n{text}"))?;
    assert!(
        event.contains("seen-/audited"),
        "interpolated metadata: {event}"
    );
    assert!(event.contains("audit"), "{event}");
    Ok(())
}

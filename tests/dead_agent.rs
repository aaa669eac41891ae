//! An agent that dies without a goodbye (SIGKILL of the real binary) is noticed in seconds: the
//! next request to its URL gets an error from the edge quickly, and the name is free for another
//! agent soon after, instead of both waiting for the QUIC idle timeout.

use sluice_e2e::process::agent_command;
use sluice_e2e::upstream;
use sluice_e2e::{client, error_code, eventually, AgentProcess, Launch, TestAgent, TestEdge};
use sluice_e2e::{OTHER_TOKEN, TOKEN};
use std::time::{Duration, Instant};

/// A request sent after the agent died must get its 5xx within this.
const ANSWER_WITHIN: Duration = Duration::from_secs(3);
/// Another agent must be able to claim the name within this of the kill.
const FREED_WITHIN: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_is_noticed_within_seconds() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("doomed").await?;
    let heir_up = upstream::app("heir").await?;
    let dir = tempfile::tempdir()?;
    let cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "doomed", up.addr)?;
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let url = agent.url.clone();
    assert_eq!(client().get(&url).send().await?.status(), 200);

    agent.kill().await?;
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Measured, not cut at the limit, so a failure shows how long it really took.
    let sent = Instant::now();
    let answer = client()
        .get(&url)
        .timeout(Duration::from_secs(30))
        .send()
        .await;
    let answered_after = sent.elapsed();
    let answer = answer.map(|r| (r.status(), error_code(r.headers())));
    println!("request sent 0.5 s after the kill answered {answer:?} after {answered_after:.2?}");

    // Another token's agent claims the name once the edge let go of the dead session.
    let heir = eventually(
        Duration::from_secs(30),
        "the name to be claimable",
        || async {
            let config = edge.agent_config(OTHER_TOKEN, "doomed", heir_up.addr);
            match TestAgent::launch(config).await {
                Ok(Launch::Online(agent)) => Some(agent),
                _ => None,
            }
        },
    )
    .await?;
    let freed_after = killed.elapsed();
    println!("another agent claimed the name {freed_after:.2?} after the kill");
    let resp = client().get(&url).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "heir");
    heir.stop().await?;
    edge.shutdown().await;

    let (status, code) = answer.map_err(|e| anyhow::anyhow!("request failed: {e:?}"))?;
    // Over TCP the kernel tells the edge at once (the dead process's socket is reset), and the
    // name is already gone: 404 with the no-endpoint code. Over QUIC the edge finds out by
    // probing: a 5xx for the request that found the session dead.
    let gone = status == 404 && code.as_deref() == Some("ERR_SLUICE_3200");
    assert!(
        status.is_server_error() || gone,
        "status {status}, code {code:?}"
    );
    assert!(
        code.is_some(),
        "an error without a sluice-error-code: {status}"
    );
    assert!(
        answered_after < ANSWER_WITHIN,
        "the edge answered for the dead agent after {answered_after:.2?} (limit {ANSWER_WITHIN:?})"
    );
    assert!(
        freed_after < FREED_WITHIN,
        "the name was freed {freed_after:.2?} after the kill (limit {FREED_WITHIN:?})"
    );
    Ok(())
}

//! Who may open agent sessions: the per-token session limit and the rate limit on wrong
//! authtokens, through a real edge and real agents.

use sluice_agent::{AgentError, AgentEvent};
use sluice_e2e::{closed_port, eventually, Launch, TestAgent, TestEdge, TOKEN};
use sluice_edge::tunnel::admission::MAX_AUTH_FAILURES;
use sluice_proto::error_code::ErrorCode;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

fn refused_with(launch: Launch) -> Option<ErrorCode> {
    match launch {
        Launch::Exited(Err(AgentError::Rejected(r))) => Some(r.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_beyond_its_session_limit_is_refused_until_one_ends() -> anyhow::Result<()> {
    let edge = TestEdge::start_with(|c| c.max_agents_per_token = 2).await?;
    let upstream = closed_port()?;
    let first = TestAgent::start(edge.agent_config(TOKEN, "one", upstream)).await?;
    let _second = TestAgent::start(edge.agent_config(TOKEN, "two", upstream)).await?;
    let third = TestAgent::launch(edge.agent_config(TOKEN, "three", upstream)).await?;
    assert_eq!(refused_with(third), Some(ErrorCode::AgentLimitReached));
    // The refused agent claimed nothing.
    sluice_e2e::assert_endpoint_not_found(
        &sluice_e2e::client()
            .get(edge.url("three.localhost"))
            .send()
            .await?,
    );
    first.stop().await?;
    eventually(Duration::from_secs(10), "a freed session slot", || async {
        match TestAgent::launch(edge.agent_config(TOKEN, "three", upstream)).await {
            Ok(Launch::Online(agent)) => Some(agent),
            _ => None,
        }
    })
    .await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_in_a_loop_get_the_address_rate_limited() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let upstream = closed_port()?;
    for _ in 0..MAX_AUTH_FAILURES {
        let launch = TestAgent::launch(edge.agent_config("wrong-token", "guess", upstream)).await?;
        assert_eq!(refused_with(launch), Some(ErrorCode::AuthtokenInvalid));
    }
    // Now this address is refused before its token is looked at, even the right one; the agent
    // keeps retrying with backoff instead of exiting.
    let (stop, stop_rx) = watch::channel(false);
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(sluice_agent::run(
        edge.agent_config(TOKEN, "honest", upstream),
        Some(tx),
        stop_rx,
    ));
    let reason = sluice_e2e::within(Duration::from_secs(15), "a rate-limited attempt", async {
        match events.recv().await {
            Some(AgentEvent::Reconnecting { reason, .. }) => Some(reason),
            Some(AgentEvent::Online { .. }) | None => None,
        }
    })
    .await?;
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("ERR_SLUICE_109"), "{reason}");
    assert!(!task.is_finished(), "the agent gave up instead of retrying");
    let _ = stop.send(true);
    let _ = task.await;
    edge.shutdown().await;
    Ok(())
}

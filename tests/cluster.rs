//! Several edges sharing a real `redis-server` (docs/cluster.md): an endpoint held by one
//! authtoken on one edge cannot be taken by another authtoken on another edge, a dead edge's
//! claims expire with their lease, and with the store gone new claims fail closed while held
//! endpoints keep serving, until the store comes back (empty) and everything is claimed again.

use sluice_agent::{AgentError, AgentEvent};
use sluice_e2e::cluster::{
    cluster_config, cluster_process, clustered, clustered_with, provide_keys,
};
use sluice_e2e::redis::RedisServer;
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{any_port, client, eventually, within, Launch, TestAgent, TestEdge};
use sluice_e2e::{OTHER_TOKEN, TOKEN};
use std::time::{Duration, Instant};

/// Whether `token`'s agent can bring `name` online on `edge` now (stopped again at once).
async fn can_take(edge: &TestEdge, token: &str, name: &str, up: &Upstream) -> anyhow::Result<bool> {
    match TestAgent::launch(edge.agent_config(token, name, up.addr)).await? {
        Launch::Online(agent) => {
            agent.stop().await?;
            Ok(true)
        }
        Launch::Exited(Err(AgentError::Rejected(r))) => {
            assert_eq!(r.code.to_string(), "ERR_SLUICE_334", "{r}");
            Ok(false)
        }
        Launch::Exited(other) => anyhow::bail!("the agent stopped otherwise: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_token_cannot_take_a_name_held_on_another_edge_and_gets_it_within_a_second_after(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let (one, two) = (
        clustered(&redis, "one").await?,
        clustered(&redis, "two").await?,
    );
    let up = upstream::app("held").await?;
    let holder = TestAgent::start(one.agent_config(TOKEN, "contested", up.addr)).await?;
    assert!(!can_take(&two, OTHER_TOKEN, "contested", &up).await?);
    // (The holder's own token is welcome on the other edge: tests/cluster_sessions.rs.)

    holder.stop().await?;
    let left = Instant::now();
    let taken = eventually(Duration::from_secs(5), "the name to be free", || async {
        can_take(&two, OTHER_TOKEN, "contested", &up)
            .await
            .ok()
            .filter(|free| *free)
    })
    .await;
    let after = left.elapsed();
    println!("another token took the name {after:.2?} after its holder left");
    taken?;
    assert!(
        after < Duration::from_secs(1),
        "free only after {after:.2?}"
    );
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edges_claims_expire_with_their_lease() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let dir = tempfile::tempdir()?;
    let up = upstream::app("orphan").await?;
    // The binary, so it can die without letting go.
    let dead = cluster_process(&redis, "doomed", dir.path(), any_port(), any_port()).await?;
    let holder = TestAgent::start(sluice_e2e::agent_config(
        dead.tunnel_addr,
        &dead.cert,
        TOKEN,
        "orphaned",
        up.addr,
    ))
    .await?;
    let two = clustered(&redis, "two").await?;
    assert!(!can_take(&two, OTHER_TOKEN, "orphaned", &up).await?);
    dead.kill().await?;
    let killed = Instant::now();
    eventually(
        Duration::from_secs(10),
        "the dead edge's claim to expire",
        || async {
            can_take(&two, OTHER_TOKEN, "orphaned", &up)
                .await
                .ok()
                .filter(|free| *free)
        },
    )
    .await?;
    let after = killed.elapsed();
    println!("a killed edge's name was free {after:.2?} after the kill");
    assert!(
        after < Duration::from_secs(5),
        "free only after {after:.2?}"
    );
    drop(holder);
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_gone_new_claims_fail_closed_and_held_endpoints_keep_serving(
) -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let two = clustered(&redis, "two").await?;
    let up = upstream::app("steady").await?;
    let steady = TestAgent::start(one.agent_config(TOKEN, "steady", up.addr)).await?;

    redis.kill().await?;
    let resp = client().get(steady.url()).send().await?;
    assert_eq!(resp.status(), 200, "a held endpoint keeps serving");
    // Retrying at least every half second: the wait below measures the store, not the
    // agent's backoff, which grows while the store is gone.
    let mut config = one.agent_config(TOKEN, "newcomer", up.addr);
    config.reconnect_max = Duration::from_millis(500);
    let mut newcomer = TestAgent::spawn(config);
    let first = within(
        Duration::from_secs(10),
        "the refusal",
        newcomer.events.recv(),
    )
    .await?;
    let Some(AgentEvent::Reconnecting { reason, .. }) = first else {
        anyhow::bail!("expected a refusal to retry, got {first:?}");
    };
    assert!(reason.contains("ERR_SLUICE_343"), "{reason}");
    let claim_errors = one.metric("sluice_edge_store_errors_total", "claim");
    assert!(claim_errors >= 1.0, "store errors counted: {claim_errors}");

    // The store comes back with no data: the newcomer gets in, and the held endpoint is
    // claimed again within a lease, so another token is refused it again.
    redis.restart().await?;
    newcomer.next_online(Duration::from_secs(10)).await?;
    eventually(
        Duration::from_secs(5),
        "the held claim to be renewed",
        || async { (!can_take(&two, OTHER_TOKEN, "steady", &up).await.ok()?).then_some(()) },
    )
    .await?;
    let resp = client().get(steady.url()).send().await?;
    assert_eq!(resp.status(), 200);
    newcomer.stop().await?;
    steady.stop().await?;
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_whose_keys_do_not_fit_the_cluster_is_refused_at_start() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let refusal = |result: anyhow::Result<TestEdge>| match result {
        Ok(_) => "started".to_string(),
        Err(e) => format!("{e:#}"),
    };
    // No operator-provided session keys: one generated here would differ from the others'.
    let config = cluster_config(&redis, "keyless");
    let keyless = refusal(TestEdge::start_with(|c| c.cluster = Some(config)).await);
    assert!(
        keyless.contains("cluster mode needs the sign-in session keys"),
        "{keyless}"
    );
    // Other session keys than the live edge's.
    let other = refusal(
        clustered_with(&redis, "other", |c| {
            provide_keys(&c.state_dir, &format!("{}\n", "ab".repeat(32)));
        })
        .await,
    );
    assert!(
        other.contains("edge 'one' has other sign-in session keys"),
        "{other}"
    );
    // The live edge's QUIC reset key, copied.
    let reset = std::fs::read(one.state_dir().join("quic-reset-key"))?;
    let copied = refusal(
        clustered_with(&redis, "copy", |c| {
            std::fs::write(c.state_dir.join("quic-reset-key"), &reset).expect("copy");
        })
        .await,
    );
    assert!(
        copied.contains("edge 'one' has the same QUIC reset key"),
        "{copied}"
    );
    // Its own id, taken by a live edge with another reset key.
    let twin = refusal(clustered(&redis, "one").await);
    assert!(
        twin.contains("another edge is live with edge_id 'one'"),
        "{twin}"
    );
    // A fitting edge joins.
    let two = clustered(&redis, "two").await?;
    two.shutdown().await;
    one.shutdown().await;
    Ok(())
}

//! The agent sessions of a cluster, seen and steered from any edge (docs/cluster.md): each
//! edge's admin API lists every edge's sessions and stops one wherever it is (a message to the
//! edge that holds it), and a new run of an authtoken that takes an endpoint on one edge
//! replaces the old run's member on another edge, as one edge would, while pools and one
//! agent's links to several edges are left alone.

use sluice_agent::AgentError;
use sluice_e2e::cluster::clustered;
use sluice_e2e::redis::RedisServer;
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{probe, TestAgent, TestEdge, TOKEN};
use sluice_edge::admin::api::{Actor, AdminError};
use std::time::{Duration, Instant};

fn actor() -> Actor {
    Actor {
        token_id: "adm_test".into(),
        remote: [127, 0, 0, 1].into(),
    }
}

/// The status of `name` through `edge`, and the upstream that answered.
async fn answer(edge: &TestEdge, name: &str) -> anyhow::Result<(u16, Option<String>)> {
    probe(&edge.url(&format!("{name}.localhost"))).await
}

/// `edge`'s agent config for `name`, with pooling as given.
fn pooled(edge: &TestEdge, name: &str, up: &Upstream, pooling: bool) -> sluice_agent::AgentConfig {
    let mut config = edge.agent_config(TOKEN, name, up.addr);
    config.endpoints[0].pooling_enabled = pooling;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_edge_lists_every_edges_sessions_and_stops_one_held_elsewhere() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let two = clustered(&redis, "two").await?;
    let three = clustered(&redis, "three").await?;
    let up = upstream::app("listed").await?;
    let on_two = TestAgent::start(two.agent_config(TOKEN, "on-two", up.addr)).await?;
    let on_three = TestAgent::start(three.agent_config(TOKEN, "on-three", up.addr)).await?;

    let admin = one.handle().admin();
    let listed = admin.tunnel_sessions().await?;
    let held = |name: &str, edge: &str| {
        listed.iter().any(|s| {
            s.endpoints.iter().any(|e| e.contains(name))
                && s.links[0].edge_id.as_deref() == Some(edge)
        })
    };
    assert!(
        held("on-two", "two") && held("on-three", "three"),
        "{listed:#?}"
    );
    assert_eq!(listed.len(), 2, "{listed:#?}");
    let held_by_two = listed
        .iter()
        .find(|s| s.endpoints.iter().any(|e| e.contains("on-two")))
        .ok_or_else(|| anyhow::anyhow!("on-two not listed"))?;
    // The same session, asked for by id on a third edge.
    let again = three
        .handle()
        .admin()
        .tunnel_session(&held_by_two.id)
        .await?;
    assert_eq!(&again, held_by_two);

    let asked = Instant::now();
    admin.stop_tunnel_session(&actor(), &held_by_two.id).await?;
    println!("stopped through another edge in {:.2?}", asked.elapsed());
    let ended = on_two.join(Duration::from_secs(2)).await?;
    assert!(
        matches!(&ended, Err(AgentError::Stopped(why)) if why.contains("stopped by the edge operator")),
        "{ended:?}"
    );
    // Gone from every edge's list when the call returned, and its name is free.
    assert!(matches!(
        one.handle().admin().tunnel_session(&held_by_two.id).await,
        Err(AdminError::NotFound { .. })
    ));
    assert_eq!(admin.tunnel_sessions().await?.len(), 1);
    assert_eq!(answer(&two, "on-two").await?.0, 404);
    assert!(matches!(
        admin.stop_tunnel_session(&actor(), "ses_nowhere").await,
        Err(AdminError::NotFound { .. })
    ));
    on_three.stop().await?;
    for edge in [one, two, three] {
        edge.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_run_on_another_edge_replaces_the_old_one_and_pools_are_left_alone(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let two = clustered(&redis, "two").await?;
    let (first, second) = (
        upstream::app("first").await?,
        upstream::app("second").await?,
    );

    // Unpooled: the newer run takes the endpoint over, on whichever edge it came to.
    let old = TestAgent::start(pooled(&one, "moved", &first, false)).await?;
    assert_eq!(answer(&one, "moved").await?, (200, Some("first".into())));
    let new = TestAgent::start(pooled(&two, "moved", &second, false)).await?;
    let started = Instant::now();
    // Both edges reach the new run (edge one forwards to edge two) once edge one let go.
    sluice_e2e::eventually(Duration::from_secs(2), "edge one to forward", || async {
        (answer(&one, "moved").await.ok()? == (200, Some("second".into()))).then_some(())
    })
    .await?;
    println!(
        "edge one let the old run go {:.2?} after the new one came online",
        started.elapsed()
    );
    // An agent linked to edges of a cluster waits 3 s for a link of its own to have taken the
    // endpoint before it takes the replacement as another agent's (agent/src/link/supervisor.rs).
    let ended = old.join(Duration::from_secs(6)).await?;
    assert!(matches!(ended, Err(AgentError::Replaced)), "{ended:?}");
    assert_eq!(answer(&two, "moved").await?, (200, Some("second".into())));
    new.stop().await?;

    // Pooled: both runs stay, each edge serving its own.
    let a = TestAgent::start(pooled(&one, "pool", &first, true)).await?;
    let b = TestAgent::start(pooled(&two, "pool", &second, true)).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !a.is_finished() && !b.is_finished(),
        "a pool member was replaced"
    );
    assert_eq!(answer(&one, "pool").await?, (200, Some("first".into())));
    assert_eq!(answer(&two, "pool").await?, (200, Some("second".into())));
    a.stop().await?;
    b.stop().await?;
    for edge in [one, two] {
        edge.shutdown().await;
    }
    Ok(())
}

//! The worked example of docs/cluster.md runs: three edge processes started from
//! `deploy/cluster/edge-{one,two,three}.yaml` (their listen addresses, the store and
//! `advertise_addr` overridden by flags for loopback, as an operator's flags override the
//! file) form a cluster over a real redis-server, and a request entering any edge reaches an
//! agent linked to one of them.

use sluice_e2e::cluster::{provide_keys, PEER_SECRET, SESSION_KEYS};
use sluice_e2e::process::EdgeProcess;
use sluice_e2e::redis::RedisServer;
use sluice_e2e::{any_port, client, eventually, upstream, TestAgent, TOKEN};
use std::time::Duration;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/cluster");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_three_edge_example_forwards_from_every_edge() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let mut dirs = Vec::new();
    let mut edges = Vec::new();
    for name in ["one", "two", "three"] {
        let dir = tempfile::tempdir()?;
        provide_keys(dir.path(), SESSION_KEYS);
        let config = format!("{EXAMPLE}/edge-{name}.yaml");
        let edge = EdgeProcess::spawn_with_args(
            dir.path(),
            any_port(),
            any_port(),
            TOKEN,
            &[
                "--config",
                &config,
                "--cluster-store",
                &redis.url(),
                "--advertise-addr",
                "127.0.0.1:0",
                "--peer-secret",
                PEER_SECRET,
            ],
        )
        .await?;
        edges.push(edge);
        dirs.push(dir);
    }
    let up = upstream::app("example").await?;
    let agent = TestAgent::start(sluice_e2e::agent_config(
        edges[1].tunnel_addr,
        &edges[1].cert,
        TOKEN,
        "app",
        up.addr,
    ))
    .await?;
    assert!(
        agent.url().starts_with("http://app.tunnel.example.com"),
        "{}",
        agent.url()
    );
    for edge in &edges {
        let url = format!("http://{}/", edge.http_addr);
        eventually(Duration::from_secs(10), "the request answered", || async {
            let r = client()
                .get(&url)
                .header("host", "app.tunnel.example.com")
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        })
        .await?;
    }
    agent.stop().await?;
    for edge in edges {
        edge.kill().await?;
    }
    Ok(())
}

//! Edges of one test cluster over a [`RedisServer`]: the peer secret and sign-in session keys
//! they share, and in-process edges configured to join (each reachable by the others on a
//! loopback port of its own, `advertise_addr`).

use crate::redis::RedisServer;
use crate::TestEdge;
use sluice_edge::ClusterConfig;
use std::path::Path;

/// The peer secret every edge of a test cluster shares.
pub const PEER_SECRET: &str = "cluster-test-peer-secret";

/// The sign-in session keys every edge of a test cluster shares (the operator's file).
pub const SESSION_KEYS: &str = "8f0e4d1c2b3a49586776a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0\n";

/// Writes `keys` as the session-keys file of `state_dir`.
pub fn provide_keys(state_dir: &Path, keys: &str) {
    std::fs::create_dir_all(state_dir).expect("state dir");
    std::fs::write(state_dir.join("session-keys"), keys).expect("session keys");
}

/// The `cluster:` section of edge `edge_id` over `redis`, taking links from the other edges on
/// a free loopback port.
pub fn cluster_config(redis: &RedisServer, edge_id: &str) -> ClusterConfig {
    ClusterConfig {
        store: redis.url(),
        edge_id: edge_id.into(),
        peer_secret: PEER_SECRET.into(),
        advertise_addr: Some(crate::any_port()),
    }
}

/// An in-process edge `edge_id` of the cluster over `redis`.
pub async fn clustered(redis: &RedisServer, edge_id: &str) -> anyhow::Result<TestEdge> {
    clustered_with(redis, edge_id, |_| {}).await
}

/// An in-process edge `edge_id` of the cluster over `redis`, after `tweak` (which may write
/// into its state dir, or change its configuration).
pub async fn clustered_with(
    redis: &RedisServer,
    edge_id: &str,
    tweak: impl FnOnce(&mut sluice_edge::EdgeConfig),
) -> anyhow::Result<TestEdge> {
    let config = cluster_config(redis, edge_id);
    TestEdge::start_with(|c| {
        provide_keys(&c.state_dir, SESSION_KEYS);
        c.cluster = Some(config);
        tweak(c);
    })
    .await
}

//! Edges of one test cluster over a [`RedisServer`]: the peer secret and sign-in session keys
//! they share, in-process edges configured to join (each reachable by the others on a
//! loopback port of its own, `advertise_addr`), and for tests of agents linked to several
//! edges, edges sharing one tunnel certificate ([`SharedCert`]), in this process
//! ([`clustered_edge`]) or as the `edge` binary ([`clustered_edge_process`], which a test can
//! kill), so one agent with one `--edge-ca` trusts every edge.

use crate::redis::RedisServer;
use crate::{any_port, EdgeProcess, TestEdge};
use sluice_agent::AgentConfig;
use sluice_edge::ClusterConfig;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

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
        rate_limit_fallback: sluice_edge::RateLimitFallback::default(),
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

/// One tunnel certificate and key for every edge of a test cluster (as an operator gives the
/// edges behind one name the same certificate).
pub struct SharedCert {
    dir: tempfile::TempDir,
}

impl SharedCert {
    /// A self-signed certificate for `localhost`, `127.0.0.1` and `::1`, as an edge makes its
    /// own.
    pub fn new() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let names = ["localhost", "127.0.0.1", "::1"].map(String::from).to_vec();
        let made = rcgen::generate_simple_self_signed(names)?;
        std::fs::write(dir.path().join("tunnel.crt"), made.cert.pem())?;
        std::fs::write(dir.path().join("tunnel.key"), made.key_pair.serialize_pem())?;
        Ok(Self { dir })
    }

    /// The certificate agents trust (`--edge-ca`).
    pub fn cert(&self) -> PathBuf {
        self.dir.path().join("tunnel.crt")
    }

    /// Puts the certificate, its key and the session keys into an edge's state dir, before
    /// the edge starts.
    pub fn provide(&self, state_dir: &Path) -> anyhow::Result<()> {
        std::fs::create_dir_all(state_dir)?;
        for name in ["tunnel.crt", "tunnel.key"] {
            std::fs::copy(self.dir.path().join(name), state_dir.join(name))?;
        }
        std::fs::write(state_dir.join("session-keys"), SESSION_KEYS)?;
        Ok(())
    }
}

/// An edge in this process, in the cluster on `redis` as `edge_id`, with `cert`.
pub async fn clustered_edge(
    redis: &RedisServer,
    cert: &SharedCert,
    edge_id: &str,
) -> anyhow::Result<TestEdge> {
    let config = cluster_config(redis, edge_id);
    let mut provided = Ok(());
    let edge = TestEdge::start_with(|c| {
        provided = cert.provide(&c.state_dir);
        c.cluster = Some(config);
    })
    .await?;
    provided?;
    Ok(edge)
}

/// The `edge` binary in the cluster on `redis` as `edge_id`, with `cert`, its state in
/// `state_dir`; on `http` and `tunnel` (port 0 for any).
pub async fn clustered_edge_process(
    redis: &RedisServer,
    cert: &SharedCert,
    edge_id: &str,
    state_dir: &Path,
    http: SocketAddr,
    tunnel: SocketAddr,
) -> anyhow::Result<EdgeProcess> {
    cert.provide(state_dir)?;
    cluster_process(redis, edge_id, state_dir, http, tunnel).await
}

/// The `edge` binary in the cluster on `redis` as `edge_id` (configured by its flags, so it
/// can die without letting go), with the shared session keys, its state in `state_dir`; on
/// `http` and `tunnel` (port 0 for any).
pub async fn cluster_process(
    redis: &RedisServer,
    edge_id: &str,
    state_dir: &Path,
    http: SocketAddr,
    tunnel: SocketAddr,
) -> anyhow::Result<EdgeProcess> {
    provide_keys(state_dir, SESSION_KEYS);
    let store = redis.url();
    let flags = [
        "--cluster-store",
        &store,
        "--edge-id",
        edge_id,
        "--peer-secret",
        PEER_SECRET,
        "--advertise-addr",
        "127.0.0.1:0",
    ];
    EdgeProcess::spawn_with_args(state_dir, http, tunnel, crate::TOKEN, &flags).await
}

/// [`clustered_edge_process`] on any ports.
pub async fn clustered_edge_process_anywhere(
    redis: &RedisServer,
    cert: &SharedCert,
    edge_id: &str,
    state_dir: &Path,
) -> anyhow::Result<EdgeProcess> {
    clustered_edge_process(redis, cert, edge_id, state_dir, any_port(), any_port()).await
}

/// An agent config for one endpoint named `url` forwarding to `upstream`, linked to every
/// edge in `edges` (in that order), trusting `cert`, keeping `ha_connections` links.
pub fn ha_agent_config(
    edges: &[SocketAddr],
    cert: &SharedCert,
    url: &str,
    upstream: SocketAddr,
    ha_connections: usize,
) -> anyhow::Result<AgentConfig> {
    let first = edges
        .first()
        .ok_or_else(|| anyhow::anyhow!("no edge given"))?;
    let mut config = crate::agent_config(*first, &cert.cert(), crate::TOKEN, url, upstream);
    config.set_edges(edges.iter().map(SocketAddr::to_string))?;
    config.ha_connections = ha_connections;
    Ok(config)
}

//! A real edge with its admin API on a loopback port, one agent online and its events written
//! to a file, for the tests of the admin API over HTTP (auth, routes, bodies, `edge admin`,
//! schemathesis).

use crate::{any_port, closed_port, TestAgent, TestEdge, TOKEN};
use anyhow::Context;
use serde_json::Value;
use sluice_edge::admin::model::Source;
use sluice_edge::EventDestination;
use std::net::SocketAddr;
use std::path::PathBuf;

/// An admin token the test edges accept.
pub const ADMIN_TOKEN: &str = "adm_e2e_0123456789abcdef";

/// An edge serving the admin API, with one agent session online.
pub struct AdminServer {
    /// Where the admin API listens.
    pub addr: SocketAddr,
    /// The id of the agent session online from the start.
    pub session: String,
    /// The ids of edge.yaml's credentials (read-only), in the API's order.
    pub config_credentials: Vec<String>,
    events: PathBuf,
    _agent: TestAgent,
    edge: TestEdge,
    _dir: tempfile::TempDir,
}

impl AdminServer {
    /// Starts the edge (admin API on `127.0.0.1:0`, accepting [`ADMIN_TOKEN`]) and an agent
    /// on `seeded.localhost`.
    pub async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let events = dir.path().join("events.jsonl");
        let file = events.to_str().context("utf-8 path")?.to_string();
        let edge = TestEdge::start_with(|c| {
            c.admin_addr = Some(any_port());
            c.admin_tokens = vec![ADMIN_TOKEN.to_string()];
            c.event_destinations = vec![EventDestination::events_file(&file)];
        })
        .await?;
        let addr = edge.handle().admin_addr.context("no admin listener")?;
        let agent = TestAgent::start(edge.agent_config(TOKEN, "seeded", closed_port()?)).await?;
        let admin = edge.handle().admin();
        let session = admin
            .tunnel_sessions()
            .await?
            .first()
            .map(|s| s.id.clone())
            .context("the agent's session is not listed")?;
        let config_credentials = admin
            .credentials()
            .await?
            .into_iter()
            .filter(|c| c.source == Source::Config)
            .map(|c| c.id)
            .collect();
        Ok(Self {
            addr,
            session,
            config_credentials,
            events,
            _agent: agent,
            edge,
            _dir: dir,
        })
    }

    /// `http://ADDR`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The edge under test.
    pub fn edge(&self) -> &TestEdge {
        &self.edge
    }

    /// The audit events exported so far (every event but request and connection ones).
    pub fn audit(&self) -> anyhow::Result<Vec<Value>> {
        let text = std::fs::read_to_string(&self.events).unwrap_or_default();
        let mut out = Vec::new();
        for line in text.lines() {
            let event: Value = serde_json::from_str(line)?;
            let kind = event["event_type"].as_str().unwrap_or_default();
            if !kind.starts_with("http_request") && !kind.starts_with("tcp_connection") {
                out.push(event);
            }
        }
        Ok(out)
    }
}

//! The ways a client can reach the upstream apps: directly, through Sluice (with and without the
//! 10-rule policy, and with its agents linked over TLS over TCP instead of QUIC), rathole and
//! bore, each started as real processes on loopback. More Sluice
//! paths run only when asked for: a new QUIC stream per request instead of reused ones
//! (`SLUICE_BENCH_PATHS=...,sluice (a stream per request)`), pingora's own HTTP/1 server on the
//! public side instead of hyper's (`sluice (pingora HTTP/1 server)`), an agent that logs only
//! warnings, as on a terminal where the status screen replaces the log (`sluice (agent logs
//! off)`), the same without the inspector (`sluice (agent logs and inspector off)`), and an earlier build of
//! the edge and agent for same-run comparisons (`SLUICE_BENCH_BASELINE=DIR` holding its `edge`
//! and `agent`). Two cluster paths share one setup (two edges and a redis-server, the agents
//! on the second edge) and differ only in the edge the requests enter: the one with the agents,
//! or the other, which forwards them (docs/cluster.md).

use anyhow::Context as _;
use sluice_e2e::cluster::{provide_keys, PEER_SECRET, SESSION_KEYS};
use sluice_e2e::process::{agent_command_from, base_command, command_at};
use sluice_e2e::redis::RedisServer;
use sluice_e2e::{any_port, free_tcp_port, within, AgentProcess, EdgeProcess, TOKEN};
use std::net::SocketAddr;
use std::path::Path as FsPath;
use std::process::Stdio;
use std::time::Duration;
use tokio::process::{Child, Command};

/// The 10-rule policy of the policy engine's bench.
const POLICY_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/ten-rule-policy.yml");

/// Which way the traffic goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathKind {
    Direct,
    Sluice,
    SluicePolicy,
    /// Sluice with its agents on the TCP transport (`--transport tcp`).
    SluiceTcpTransport,
    /// Sluice with a new QUIC stream per request (the edge's stream reuse off).
    SluiceStreamPerRequest,
    /// Sluice with pingora's HTTP/1 server on the public side (drops HTTP/1.1 trailers).
    SluicePingoraH1,
    /// Sluice with the agent logging warnings only (no per-request line).
    SluiceAgentLogsOff,
    /// Sluice with the agent logging warnings only and its inspector off.
    SluiceAgentQuiet,
    /// The build in `SLUICE_BENCH_BASELINE`.
    SluiceBaseline,
    /// Two edges sharing a redis-server, the agents linked to the second: requests enter it.
    SluiceClusterOwner,
    /// The same cluster, requests entering the first edge, which forwards them to the second.
    SluiceClusterForwarded,
    Rathole,
    Bore,
}

/// The environment variable naming the baseline build's directory.
const BASELINE: &str = "SLUICE_BENCH_BASELINE";

impl PathKind {
    pub const ALL: [PathKind; 13] = [
        PathKind::Direct,
        PathKind::Sluice,
        PathKind::SluicePolicy,
        PathKind::SluiceTcpTransport,
        PathKind::SluiceStreamPerRequest,
        PathKind::SluicePingoraH1,
        PathKind::SluiceAgentLogsOff,
        PathKind::SluiceAgentQuiet,
        PathKind::SluiceBaseline,
        PathKind::SluiceClusterOwner,
        PathKind::SluiceClusterForwarded,
        PathKind::Rathole,
        PathKind::Bore,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PathKind::Direct => "direct",
            PathKind::Sluice => "sluice",
            PathKind::SluicePolicy => "sluice + 10-rule policy",
            PathKind::SluiceTcpTransport => "sluice (TCP transport)",
            PathKind::SluiceStreamPerRequest => "sluice (a stream per request)",
            PathKind::SluicePingoraH1 => "sluice (pingora HTTP/1 server)",
            PathKind::SluiceAgentLogsOff => "sluice (agent logs off)",
            PathKind::SluiceAgentQuiet => "sluice (agent logs and inspector off)",
            PathKind::SluiceBaseline => "sluice (baseline build)",
            PathKind::SluiceClusterOwner => "sluice cluster (edge with the agent)",
            PathKind::SluiceClusterForwarded => "sluice cluster (forwarded by another edge)",
            PathKind::Rathole => "rathole",
            PathKind::Bore => "bore",
        }
    }

    /// Whether a run without `SLUICE_BENCH_PATHS` includes this path: the optional ones only
    /// when named (or, for the baseline, when a baseline build is given).
    pub fn by_default(self) -> bool {
        match self {
            PathKind::SluiceStreamPerRequest
            | PathKind::SluicePingoraH1
            | PathKind::SluiceAgentLogsOff
            | PathKind::SluiceAgentQuiet => false,
            PathKind::SluiceBaseline => std::env::var_os(BASELINE).is_some(),
            _ => true,
        }
    }
}

/// Where a client connects for the app and for the websocket echo, and the Host it sends.
pub struct Target {
    pub addr: SocketAddr,
    pub host: String,
}

/// A started path; dropping it kills its processes.
pub struct Path {
    pub app: Target,
    pub ws: Target,
    sluice: Option<(EdgeProcess, Vec<AgentProcess>)>,
    /// A cluster's other edge and its store.
    cluster: Option<(EdgeProcess, RedisServer)>,
    children: Vec<Child>,
}

impl Path {
    /// Starts `kind` in front of the app at `app` and the websocket echo at `ws`.
    pub async fn start(
        kind: PathKind,
        app: SocketAddr,
        ws: SocketAddr,
        dir: &FsPath,
    ) -> anyhow::Result<Self> {
        let folder: String = kind
            .label()
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let dir = dir.join(folder);
        std::fs::create_dir_all(&dir)?;
        match kind {
            PathKind::Direct => Ok(Self::plain(app, ws, Vec::new())),
            PathKind::Sluice
            | PathKind::SluicePolicy
            | PathKind::SluiceTcpTransport
            | PathKind::SluiceStreamPerRequest
            | PathKind::SluicePingoraH1
            | PathKind::SluiceAgentLogsOff
            | PathKind::SluiceAgentQuiet
            | PathKind::SluiceBaseline => sluice(kind, app, ws, &dir).await,
            PathKind::SluiceClusterOwner | PathKind::SluiceClusterForwarded => {
                cluster(kind, app, ws, &dir).await
            }
            PathKind::Rathole => rathole(app, ws, &dir).await,
            PathKind::Bore => bore(app, ws, &dir).await,
        }
    }

    fn plain(app: SocketAddr, ws: SocketAddr, children: Vec<Child>) -> Self {
        let target = |addr: SocketAddr| Target {
            addr,
            host: addr.to_string(),
        };
        Self {
            app: target(app),
            ws: target(ws),
            sluice: None,
            cluster: None,
            children,
        }
    }

    /// The tunnel's own processes (not the app, not the load generator), whose CPU time the
    /// small-GET load reports per request.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids: Vec<u32> = self.children.iter().filter_map(Child::id).collect();
        if let Some((edge, agents)) = &self.sluice {
            pids.extend(edge.pid().ok());
            pids.extend(agents.iter().filter_map(|a| a.pid().ok()));
        }
        if let Some((edge, _)) = &self.cluster {
            pids.extend(edge.pid().ok());
        }
        pids
    }

    /// Stops the processes (SIGTERM for Sluice, kill for the others).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some((edge, agents)) = self.sluice.take() {
            for agent in agents {
                agent.terminate(Duration::from_secs(5)).await?;
            }
            edge.terminate(Duration::from_secs(5)).await?;
        }
        if let Some((edge, _redis)) = self.cluster.take() {
            edge.terminate(Duration::from_secs(5)).await?;
        }
        for mut child in self.children.drain(..) {
            let _ = child.kill().await;
        }
        Ok(())
    }
}

/// The `edge` and `agent` commands for `kind`: this build's, or the baseline build's.
pub fn sluice_commands(kind: PathKind) -> anyhow::Result<(Command, Command)> {
    if kind == PathKind::SluiceBaseline {
        let dir = std::path::PathBuf::from(
            std::env::var_os(BASELINE).context("SLUICE_BENCH_BASELINE is not set")?,
        );
        return Ok((
            command_at(&dir.join("edge")),
            command_at(&dir.join("agent")),
        ));
    }
    let mut edge = base_command("edge")?;
    match kind {
        PathKind::SluiceStreamPerRequest => {
            edge.env("SLUICE_AGENT_STREAM_REUSE", "0");
        }
        PathKind::SluicePingoraH1 => {
            edge.env("SLUICE_H1_SERVER", "pingora");
        }
        _ => {}
    }
    let mut agent = base_command("agent")?;
    if kind == PathKind::SluiceTcpTransport {
        agent.env("SLUICE_TRANSPORT", "tcp");
    }
    if matches!(
        kind,
        PathKind::SluiceAgentLogsOff | PathKind::SluiceAgentQuiet
    ) {
        // Warnings only: no `forwarded` line per request.
        agent.env("RUST_LOG", "warn");
    }
    Ok((edge, agent))
}

async fn sluice(
    kind: PathKind,
    app: SocketAddr,
    ws: SocketAddr,
    dir: &FsPath,
) -> anyhow::Result<Path> {
    let (edge, _) = sluice_commands(kind)?;
    let edge = EdgeProcess::spawn_command(edge, dir, any_port(), any_port(), TOKEN).await?;
    let agents = sluice_agents(kind, &edge, app, ws, dir).await?;
    let target = |name: &str| Target {
        addr: edge.http_addr,
        host: format!("{name}.localhost:{}", edge.http_addr.port()),
    };
    Ok(Path {
        app: target("app"),
        ws: target("ws"),
        sluice: Some((edge, agents)),
        cluster: None,
        children: Vec::new(),
    })
}

/// The `app` and `ws` agents of `kind` on `edge`.
async fn sluice_agents(
    kind: PathKind,
    edge: &EdgeProcess,
    app: SocketAddr,
    ws: SocketAddr,
    dir: &FsPath,
) -> anyhow::Result<Vec<AgentProcess>> {
    let mut agents = Vec::new();
    for (name, upstream) in [("app", app), ("ws", ws)] {
        let (_, agent) = sluice_commands(kind)?;
        let mut cmd =
            agent_command_from(agent, edge.tunnel_addr, &edge.cert, TOKEN, name, upstream);
        match kind {
            PathKind::SluicePolicy => {
                cmd.args(["--traffic-policy-file", POLICY_FILE]);
            }
            PathKind::SluiceAgentQuiet => {
                cmd.args(["--inspect", "false"]);
            }
            _ => {}
        }
        agents.push(AgentProcess::spawn(cmd, &dir.join(format!("agent-{name}.log"))).await?);
    }
    Ok(agents)
}

/// Two edges sharing a redis-server (docs/cluster.md), the agents linked to the second; the
/// requests enter the second edge, or the first, which forwards them.
async fn cluster(
    kind: PathKind,
    app: SocketAddr,
    ws: SocketAddr,
    dir: &FsPath,
) -> anyhow::Result<Path> {
    let redis = RedisServer::start().await?;
    let mut edges = Vec::new();
    for id in ["one", "two"] {
        let state = dir.join(id);
        provide_keys(&state, SESSION_KEYS);
        let (mut edge, _) = sluice_commands(kind)?;
        edge.args(["--cluster-store", &redis.url(), "--edge-id", id])
            .args([
                "--peer-secret",
                PEER_SECRET,
                "--advertise-addr",
                "127.0.0.1:0",
            ]);
        edges.push(EdgeProcess::spawn_command(edge, &state, any_port(), any_port(), TOKEN).await?);
    }
    let (owner, other) = (edges.remove(1), edges.remove(0));
    let agents = sluice_agents(kind, &owner, app, ws, dir).await?;
    let entry = match kind {
        PathKind::SluiceClusterForwarded => &other,
        _ => &owner,
    };
    let target = |name: &str| Target {
        addr: entry.http_addr,
        host: format!("{name}.localhost:{}", entry.http_addr.port()),
    };
    let (app, ws) = (target("app"), target("ws"));
    // The entry edge learns the endpoints from the store.
    within(Duration::from_secs(10), "the cluster to route", async {
        let client = reqwest::Client::new();
        loop {
            let url = format!("http://{}/", app.addr);
            let sent = client.get(url).header("host", &app.host).send().await;
            if sent.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await?;
    Ok(Path {
        app,
        ws,
        sluice: Some((owner, agents)),
        cluster: Some((other, redis)),
        children: Vec::new(),
    })
}

/// A binary installed by `scripts/bench`.
fn tool(name: &str) -> Command {
    let mut cmd = Command::new(name);
    cmd.kill_on_drop(true).stdin(Stdio::null());
    cmd
}

fn log_to(cmd: &mut Command, file: std::path::PathBuf) -> anyhow::Result<()> {
    let f = std::fs::File::create(file)?;
    cmd.stdout(f.try_clone()?).stderr(f);
    Ok(())
}

async fn rathole(app: SocketAddr, ws: SocketAddr, dir: &FsPath) -> anyhow::Result<Path> {
    let (public, children) = rathole_services(&[("app", app), ("ws", ws)], dir).await?;
    Ok(Path::plain(public[0], public[1], children))
}

/// A rathole server and client forwarding each `(name, local)` service: the services' public
/// addresses (in order) and the two processes.
pub async fn rathole_services(
    services: &[(&str, SocketAddr)],
    dir: &FsPath,
) -> anyhow::Result<(Vec<SocketAddr>, Vec<Child>)> {
    let control = free_tcp_port()?;
    let mut public = Vec::new();
    let (mut server, mut client) = (
        format!("[server]\nbind_addr = \"{control}\"\n"),
        format!("[client]\nremote_addr = \"{control}\"\n"),
    );
    // rathole authenticates each service with its token.
    for (name, local) in services {
        let addr = free_tcp_port()?;
        server +=
            &format!("[server.services.{name}]\ntoken = \"{TOKEN}\"\nbind_addr = \"{addr}\"\n");
        client +=
            &format!("[client.services.{name}]\ntoken = \"{TOKEN}\"\nlocal_addr = \"{local}\"\n");
        public.push(addr);
    }
    let mut children = Vec::new();
    for (role, config) in [("server", server), ("client", client)] {
        let file = dir.join(format!("{role}.toml"));
        std::fs::write(&file, config)?;
        let mut cmd = tool("rathole");
        cmd.arg(format!("--{role}")).arg(&file);
        log_to(&mut cmd, dir.join(format!("rathole-{role}.log")))?;
        children.push(
            cmd.spawn()
                .context("starting rathole (run ./scripts/bench)")?,
        );
    }
    for addr in &public {
        wait_forwarding(*addr, "rathole").await?;
    }
    Ok((public, children))
}

async fn bore(app: SocketAddr, ws: SocketAddr, dir: &FsPath) -> anyhow::Result<Path> {
    let (public, children) = bore_services(&[("app", app), ("ws", ws)], dir).await?;
    Ok(Path::plain(public[0], public[1], children))
}

/// A bore server and one `bore local` per `(name, local)` service: the services' public
/// addresses (in order) and the processes. Only one can run at a time (bore's fixed control
/// port).
pub async fn bore_services(
    services: &[(&str, SocketAddr)],
    dir: &FsPath,
) -> anyhow::Result<(Vec<SocketAddr>, Vec<Child>)> {
    // bore's server listens on its fixed control port 7835 and opens the requested ports.
    let secret = TOKEN;
    let mut server = tool("bore");
    server.args(["server", "--secret", secret, "--bind-addr", "127.0.0.1"]);
    log_to(&mut server, dir.join("bore-server.log"))?;
    let mut children = vec![server
        .spawn()
        .context("starting bore (run ./scripts/bench)")?];
    wait_forwarding(SocketAddr::from(([127, 0, 0, 1], 7835)), "bore server").await?;
    let mut public = Vec::new();
    for (name, local) in services {
        let port = free_tcp_port()?.port();
        let mut client = tool("bore");
        client
            .args([
                "local",
                &local.port().to_string(),
                "--local-host",
                "127.0.0.1",
            ])
            .args([
                "--to",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--secret",
                secret,
            ]);
        log_to(&mut client, dir.join(format!("bore-{name}.log")))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        children.push(client.spawn()?);
        wait_forwarding(addr, "bore client").await?;
        public.push(addr);
    }
    Ok((public, children))
}

/// Waits until a TCP connection to `addr` succeeds (the tunnel is listening).
async fn wait_forwarding(addr: SocketAddr, what: &str) -> anyhow::Result<()> {
    within(Duration::from_secs(5), what, async {
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
}

//! Sluice-only measurements: edge memory per connected agent, memory with many open websockets,
//! and how soon the URL answers again after an edge restart.

use futures_util::StreamExt;
use sluice_e2e::process::{agent_command, cpu_time};
use sluice_e2e::{agent_config, AgentProcess, EdgeProcess, TestAgent, TOKEN};
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Agent counts whose edge memory is reported.
const AGENT_COUNTS: [usize; 3] = [1, 100, 1000];
/// Open websockets whose memory is reported, and how long opening them may take.
const WEBSOCKETS: usize = 10_000;
const WEBSOCKET_DEADLINE: Duration = Duration::from_secs(120);

/// What the scale runs measured.
#[derive(Clone, Debug, Default)]
pub struct Scale {
    /// (agents, edge RSS bytes).
    pub edge_rss_by_agents: Vec<(usize, u64)>,
    /// The edge's CPU share (of one core) while the most agents sit idle.
    pub edge_idle_cpu: f64,
    /// Websockets actually opened, edge RSS, agent RSS (bytes).
    pub websockets: (usize, u64, u64),
    /// From the old edge's exit to the first 200 from the new one.
    pub restart: Duration,
}

impl Scale {
    /// Edge memory per extra connected agent, from the largest and smallest counts.
    pub fn per_agent_bytes(&self) -> Option<f64> {
        let (first, last) = (
            self.edge_rss_by_agents.first()?,
            self.edge_rss_by_agents.last()?,
        );
        (last.0 > first.0).then(|| (last.1 as f64 - first.1 as f64) / (last.0 - first.0) as f64)
    }
}

pub async fn run(dir: &Path, app: SocketAddr, ws: SocketAddr) -> anyhow::Result<Scale> {
    let (edge_rss_by_agents, edge_idle_cpu) = idle_agents(&dir.join("idle"), app).await?;
    Ok(Scale {
        edge_rss_by_agents,
        edge_idle_cpu,
        websockets: websockets(&dir.join("ws"), ws).await?,
        restart: restart(&dir.join("restart"), app).await?,
    })
}

/// How long the edge's CPU time is watched with the most agents idle.
const IDLE_CPU_WINDOW: Duration = Duration::from_secs(10);

/// Edge RSS with 1, 100 and 1000 idle agents connected (agents run in this process), and the
/// edge's CPU share while the 1000 sit idle (keep-alives only: nothing probes idle sessions).
async fn idle_agents(dir: &Path, app: SocketAddr) -> anyhow::Result<(Vec<(usize, u64)>, f64)> {
    std::fs::create_dir_all(dir)?;
    // All the agents share one token, so the per-token session limit must allow them.
    let limit = AGENT_COUNTS[AGENT_COUNTS.len() - 1].to_string();
    let edge = EdgeProcess::spawn_with_args(
        dir,
        sluice_e2e::any_port(),
        sluice_e2e::any_port(),
        TOKEN,
        &["--max-agents-per-token", &limit],
    )
    .await?;
    let mut agents = Vec::new();
    let mut out = Vec::new();
    for count in AGENT_COUNTS {
        while agents.len() < count {
            let name = format!("idle{}", agents.len());
            let config = agent_config(edge.tunnel_addr, &edge.cert, TOKEN, &name, app);
            agents.push(TestAgent::start(config).await?);
        }
        // Let handshakes' transient buffers go before reading memory.
        tokio::time::sleep(Duration::from_secs(2)).await;
        out.push((count, edge.rss()?));
        eprintln!("   {count} agents: edge RSS {} KiB", edge.rss()? >> 10);
    }
    let pid = edge.pid()?;
    let before = cpu_time(pid)?;
    tokio::time::sleep(IDLE_CPU_WINDOW).await;
    let idle_cpu = (cpu_time(pid)? - before).as_secs_f64() / IDLE_CPU_WINDOW.as_secs_f64();
    eprintln!(
        "   {} idle agents: edge CPU {:.1} %",
        agents.len(),
        idle_cpu * 100.0
    );
    for agent in agents {
        agent.stop().await?;
    }
    edge.terminate(Duration::from_secs(10)).await?;
    Ok((out, idle_cpu))
}

/// Opens up to `WEBSOCKETS` websockets through one edge and agent; (opened, edge RSS, agent RSS).
async fn websockets(dir: &Path, ws: SocketAddr) -> anyhow::Result<(usize, u64, u64)> {
    std::fs::create_dir_all(dir)?;
    let edge =
        EdgeProcess::spawn(dir, sluice_e2e::any_port(), sluice_e2e::any_port(), TOKEN).await?;
    let mut cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "ws", ws)?;
    // Each open websocket holds one stream; the default limit is 1024.
    cmd.args([
        "--max-concurrent-requests",
        &(WEBSOCKETS + 1024).to_string(),
    ]);
    let agent = AgentProcess::spawn(cmd, &dir.join("agent.log")).await?;
    let host = format!("ws.localhost:{}", edge.http_addr.port());
    let started = Instant::now();
    let open = futures_util::stream::iter(0..WEBSOCKETS)
        .map(|_| open_websocket(edge.http_addr, &host))
        .buffer_unordered(64)
        .take_while(|r| {
            let keep = r.is_ok() && started.elapsed() < WEBSOCKET_DEADLINE;
            if let Err(e) = r {
                eprintln!("   websocket failed: {e:#}");
            }
            async move { keep }
        })
        .filter_map(|r| async move { r.ok() })
        .collect::<Vec<_>>()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let result = (open.len(), edge.rss()?, agent.rss()?);
    eprintln!(
        "   {} websockets: edge {} MiB, agent {} MiB",
        result.0,
        result.1 >> 20,
        result.2 >> 20
    );
    drop(open);
    agent.terminate(Duration::from_secs(10)).await?;
    edge.terminate(Duration::from_secs(10)).await?;
    Ok(result)
}

type Ws = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;

async fn open_websocket(addr: SocketAddr, host: &str) -> anyhow::Result<Ws> {
    let mut request = format!("ws://{host}/").into_client_request()?;
    request.headers_mut().insert("host", host.parse()?);
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (ws, _) = tokio_tungstenite::client_async(request, stream).await?;
    Ok(ws)
}

/// SIGTERM the edge, start it again on the same ports, and time until the agent's URL answers.
async fn restart(dir: &Path, app: SocketAddr) -> anyhow::Result<Duration> {
    std::fs::create_dir_all(dir)?;
    let edge = EdgeProcess::spawn_on_fixed_ports(dir, TOKEN).await?;
    let (http, tunnel) = (edge.http_addr, edge.tunnel_addr);
    let cmd = agent_command(tunnel, &edge.cert, TOKEN, "again", app)?;
    let agent = AgentProcess::spawn(cmd, &dir.join("agent.log")).await?;
    edge.terminate(Duration::from_secs(10)).await?;
    let stopped = Instant::now();
    let edge = EdgeProcess::respawn(dir, http, tunnel, TOKEN).await?;
    let client = sluice_e2e::client();
    let url = format!("http://again.localhost:{}/", http.port());
    let deadline = stopped + Duration::from_secs(30);
    let took = loop {
        if let Ok(resp) = client.get(&url).send().await {
            if resp.status() == 200 {
                break stopped.elapsed();
            }
        }
        anyhow::ensure!(Instant::now() < deadline, "URL did not answer within 30 s");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    agent.terminate(Duration::from_secs(10)).await?;
    edge.terminate(Duration::from_secs(10)).await?;
    Ok(took)
}

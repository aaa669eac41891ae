//! Soak run (not in CI): mixed traffic through a real edge and agents for a long time while
//! agents are killed and restarted, sampling the edge's and agents' RSS and open descriptors
//! every 10 s into a CSV. `./scripts/soak [MINUTES]` runs it (default 60) and plots the CSV.
//!
//! Memory must stay flat: the script's plot and the last line printed here compare the last
//! tenth of the run with the first tenth after warm-up.

use sluice_e2e::process::{agent_command, open_fds};
use sluice_e2e::upstream;
use sluice_e2e::{any_port, client, AgentProcess, EdgeProcess, TOKEN};
use std::io::Write as _;
use std::time::{Duration, Instant};

const AGENTS: usize = 4;
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// One agent is killed (SIGKILL) and started again this often.
const RESTART_EVERY: Duration = Duration::from_secs(30);
/// Concurrent client loops.
const CLIENTS: usize = 16;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let minutes: u64 = std::env::var("SLUICE_SOAK_MINUTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    let out = std::env::var("SLUICE_SOAK_CSV").unwrap_or_else(|_| "soak.csv".into());
    let until = Instant::now() + Duration::from_secs(minutes * 60);
    let dir = tempfile::tempdir()?;
    let app = upstream::app("soak").await?;
    let edge = EdgeProcess::spawn(dir.path(), any_port(), any_port(), TOKEN).await?;
    let start_agent = |i: usize| {
        let cmd = agent_command(
            edge.tunnel_addr,
            &edge.cert,
            TOKEN,
            &format!("soak{i}"),
            app.addr,
        );
        let log = dir.path().join(format!("agent{i}.log"));
        async move { AgentProcess::spawn(cmd?, &log).await }
    };
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        agents.push(start_agent(i).await?);
    }
    let urls: Vec<String> = agents.iter().map(|a| a.url.clone()).collect();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..CLIENTS {
        let urls = urls.clone();
        clients.spawn(async move { traffic(c, urls, until).await });
    }
    let mut csv = std::fs::File::create(&out)?;
    writeln!(csv, "seconds,edge_rss_kib,edge_fds,agent_rss_kib,agent_fds")?;
    let started = Instant::now();
    let (mut next_sample, mut next_restart, mut victim) = (started, started + RESTART_EVERY, 0);
    while Instant::now() < until {
        if Instant::now() >= next_restart {
            let old = std::mem::replace(&mut agents[victim], start_agent(victim).await?);
            old.kill().await?;
            victim = (victim + 1) % AGENTS;
            next_restart += RESTART_EVERY;
        }
        if Instant::now() >= next_sample {
            // The agent that has run longest (never restarted since the previous round).
            let steady = &agents[(victim + AGENTS - 1) % AGENTS];
            let line = format!(
                "{},{},{},{},{}",
                started.elapsed().as_secs(),
                edge.rss()? >> 10,
                open_fds(edge.pid()?)?,
                steady.rss()? >> 10,
                open_fds(steady.pid()?)?
            );
            println!("{line}");
            writeln!(csv, "{line}")?;
            next_sample += SAMPLE_EVERY;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let mut failures = 0u64;
    while let Some(r) = clients.join_next().await {
        failures += r?;
    }
    println!("client errors (during agent restarts they are expected): {failures}");
    for agent in agents {
        agent.terminate(Duration::from_secs(10)).await?;
    }
    edge.terminate(Duration::from_secs(10)).await?;
    Ok(())
}

/// One client loop: small GETs, a 1 MiB upload every 20th request, until `until`; errors.
async fn traffic(c: usize, urls: Vec<String>, until: Instant) -> u64 {
    let client = client();
    let mut errors = 0;
    let mut i = 0usize;
    while Instant::now() < until {
        let url = &urls[(c + i) % urls.len()];
        let ok = if i.is_multiple_of(20) {
            let body = vec![b's'; 1 << 20];
            client.post(format!("{url}/sha256")).body(body).send().await
        } else {
            client.get(format!("{url}/item/{i}")).send().await
        };
        match ok {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
            }
            _ => errors += 1,
        }
        i += 1;
    }
    errors
}

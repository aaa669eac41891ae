//! Agents linked to several edges (docs/cluster.md, "Agents linked to several edges"): an
//! agent given edges two and three of a cluster keeps a link to each and answers through both
//! (and through edge one, which forwards);
//! killing edge two under a closed-loop load through edge three fails no request and keeps the
//! URL, and the agent links to edge two again once it is back; an edge that runs alone gets
//! exactly one link whatever `ha_connections` says; a cluster edge reached at two addresses
//! keeps one link, the second session taking the first one's place without a lost request. Real edges (edge two of the second test is
//! the binary, so it can be SIGKILLed), a real `redis-server`, loopback only.

use sluice_agent::{AgentEvent, TransportChoice};
use sluice_e2e::cluster::{clustered_edge, clustered_edge_process, ha_agent_config, SharedCert};
use sluice_e2e::impair::{ImpairedLink, Impairment};
use sluice_e2e::inspector::InspectorClient;
use sluice_e2e::process::base_command;
use sluice_e2e::redis::RedisServer;
use sluice_e2e::upstream;
use sluice_e2e::{
    client, eventually, expected_transport, free_tcp_port, free_udp_port, within, AgentProcess,
    EdgeProcess, TestAgent, TestEdge, TOKEN,
};
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Status and `upstream` field of `GET /` for `host` sent to the edge at `http`.
async fn answer(http: SocketAddr, host: &str) -> anyhow::Result<(u16, String)> {
    answer_with(&client(), http, host).await
}

/// [`answer`] on `client`'s connections.
async fn answer_with(
    client: &reqwest::Client,
    http: SocketAddr,
    host: &str,
) -> anyhow::Result<(u16, String)> {
    let resp = client
        .get(format!("http://{host}:{}/", http.port()))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let body: serde_json::Value = serde_json::from_str(&resp.text().await?).unwrap_or_default();
    Ok((
        status,
        body["upstream"].as_str().unwrap_or_default().to_string(),
    ))
}

/// The line of `output` after `prefix`, trimmed.
fn line_after<'a>(output: &'a str, prefix: &str) -> Option<&'a str> {
    output
        .lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .map(str::trim)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_linked_to_edges_two_and_three_answers_through_both() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let cert = SharedCert::new()?;
    let one = clustered_edge(&redis, &cert, "edge-one").await?;
    let two = clustered_edge(&redis, &cert, "edge-two").await?;
    let three = clustered_edge(&redis, &cert, "edge-three").await?;
    let app = upstream::app("both").await?;
    let dir = tempfile::tempdir()?;
    // The binary, given both edges in one comma-separated --edge.
    let mut cmd = base_command("agent")?;
    cmd.args(["http", &format!("http://{}", app.addr)])
        .args([
            "--edge",
            &format!("{},{}", two.tunnel_addr, three.tunnel_addr),
        ])
        .args([
            "--ha-connections",
            "2",
            "--authtoken",
            TOKEN,
            "--url",
            "both",
        ])
        .args(["--inspect-addr", "127.0.0.1:0"])
        .arg("--edge-ca")
        .arg(cert.cert());
    if std::env::var_os("SLUICE_TEST_TRANSPORT").is_some() {
        cmd.env("SLUICE_TRANSPORT", sluice_e2e::test_transport_flag());
    }
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let result = async {
        let inspector = line_after(&agent.output(), "Inspector")
            .map(str::to_string)
            .ok_or_else(|| anyhow::anyhow!("no inspector line:\n{}", agent.output()))?;
        let api = InspectorClient::at(inspector);
        let links = eventually(
            Duration::from_secs(15),
            "two links in /api/tunnels",
            || async {
                let tunnels = api.get("/api/tunnels").await.ok()?;
                let links = tunnels["links"].as_array()?.clone();
                (links.len() == 2).then_some(links)
            },
        )
        .await?;
        let ids: BTreeSet<&str> = links.iter().filter_map(|l| l["edge_id"].as_str()).collect();
        assert_eq!(ids, BTreeSet::from(["edge-three", "edge-two"]), "{links:?}");
        let edges: BTreeSet<&str> = links.iter().filter_map(|l| l["edge"].as_str()).collect();
        let (a, b) = (two.tunnel_addr.to_string(), three.tunnel_addr.to_string());
        assert_eq!(edges, BTreeSet::from([a.as_str(), b.as_str()]), "{links:?}");
        for link in &links {
            assert_eq!(link["transport"], expected_transport(), "{link}");
            assert!(
                link["session_id"].as_str().is_some_and(|s| !s.is_empty()),
                "{link}"
            );
        }
        // Through each linked edge, the same URL answers from the same app.
        let host = "both.localhost";
        assert_eq!(answer(two.http_addr, host).await?, (200, "both".into()));
        assert_eq!(answer(three.http_addr, host).await?, (200, "both".into()));
        // Edge one has no link: it forwards to edge two or three.
        assert_eq!(answer(one.http_addr, host).await?, (200, "both".into()));
        // One line per link on the plain output.
        let output = agent.output();
        for id in ["edge-two", "edge-three"] {
            assert!(
                output
                    .lines()
                    .any(|l| l.starts_with(&format!("Link       {id} at "))),
                "{output}"
            );
        }
        anyhow::Ok(())
    }
    .await;
    let log = agent.output();
    let status = agent.terminate(Duration::from_secs(15)).await?;
    result.map_err(|e| e.context(log))?;
    assert!(status.success(), "{status}");
    // Every link left: both edges freed the name at once.
    for edge in [&two, &three] {
        assert_eq!(answer(edge.http_addr, "both.localhost").await?.0, 404);
    }
    for edge in [one, two, three] {
        edge.shutdown().await;
    }
    Ok(())
}

/// Waits for the agent's next `Online` for the edge named `edge_id`; the hostname it names
/// must stay `hostname` (each test edge's URL has its own HTTP port; edges behind one name
/// share theirs, and so the whole URL).
async fn online_at(
    agent: &mut TestAgent,
    edge_id: &str,
    hostname: &str,
    limit: Duration,
) -> anyhow::Result<()> {
    within(limit, &format!("a link to {edge_id}"), async {
        while let Some(event) = agent.events.recv().await {
            if let AgentEvent::Online {
                endpoints, edge, ..
            } = event
            {
                assert_eq!(endpoints[0].0.hostname, hostname, "the hostname changed");
                if edge.edge_id.as_deref() == Some(edge_id) {
                    return Ok(());
                }
            }
        }
        anyhow::bail!("agent events ended")
    })
    .await?
}

/// Starts the clustered `edge` binary as `edge-two` on fixed ports (so it can come back on
/// them), retrying while a port is still held.
async fn edge_two(
    redis: &RedisServer,
    cert: &SharedCert,
    dir: &std::path::Path,
    ports: Option<(SocketAddr, SocketAddr)>,
) -> anyhow::Result<EdgeProcess> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (http, tunnel) = match ports {
            Some(p) => p,
            None => (free_tcp_port()?, free_udp_port()?),
        };
        match clustered_edge_process(redis, cert, "edge-two", dir, http, tunnel).await {
            Ok(edge) => return Ok(edge),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_of_edge_two_under_load_through_edge_three_fails_no_request() -> anyhow::Result<()>
{
    let redis = RedisServer::start().await?;
    let cert = SharedCert::new()?;
    let dir = tempfile::tempdir()?;
    let two = edge_two(&redis, &cert, dir.path(), None).await?;
    let ports = (two.http_addr, two.tunnel_addr);
    let three = clustered_edge(&redis, &cert, "edge-three").await?;
    let app = upstream::app("steady").await?;
    let config = ha_agent_config(
        &[two.tunnel_addr, three.tunnel_addr],
        &cert,
        "steady",
        app.addr,
        2,
    )?;
    let mut agent = TestAgent::start(config).await?;
    let host = "steady.localhost";
    assert_eq!(agent.hostnames, [host]);
    online_at(&mut agent, "edge-three", host, Duration::from_secs(10)).await?;
    assert_eq!(answer(two.http_addr, host).await?, (200, "steady".into()));
    assert_eq!(answer(three.http_addr, host).await?, (200, "steady".into()));

    // A closed loop of 4 workers through edge three, bounded by count and by time (10 s).
    // Edge two is killed after 0.8 s and comes back on its ports 0.7 s later (same state, so
    // its reset key ends the agent's old link at the next packet): the agent loses that link
    // and links to edge two again, all under the load.
    const WORKERS: usize = 4;
    const MAX_REQUESTS: u64 = 200_000;
    let stop_at = Instant::now() + Duration::from_secs(10);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let ok = Arc::new(AtomicU64::new(0));
    let ok_after_kill = Arc::new(AtomicU64::new(0));
    let killed = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));
    let mut workers = Vec::new();
    for _ in 0..WORKERS {
        let (stop, sent, ok, ok_after_kill, killed, failures) = (
            stop.clone(),
            sent.clone(),
            ok.clone(),
            ok_after_kill.clone(),
            killed.clone(),
            failures.clone(),
        );
        let edge = three.http_addr;
        workers.push(tokio::spawn(async move {
            let client = client();
            while !stop.load(Ordering::Relaxed)
                && Instant::now() < stop_at
                && sent.fetch_add(1, Ordering::Relaxed) < MAX_REQUESTS
            {
                match answer_with(&client, edge, host).await {
                    Ok((200, up)) if up == "steady" => {
                        ok.fetch_add(1, Ordering::Relaxed);
                        if killed.load(Ordering::Relaxed) {
                            ok_after_kill.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    other => failures
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(format!("{other:?}")),
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    two.kill().await?;
    killed.store(true, Ordering::Relaxed);
    let kill = Instant::now();
    tokio::time::sleep(Duration::from_millis(700)).await;
    let two = edge_two(&redis, &cert, dir.path(), Some(ports)).await?;
    // The link to edge two is reported lost (the one to edge three still online), then up
    // again, with the same hostname.
    let relinked = within(
        stop_at.saturating_duration_since(Instant::now()),
        "the agent to lose edge two and link to it again",
        async {
            let mut lost = None;
            while let Some(event) = agent.events.recv().await {
                match event {
                    AgentEvent::Reconnecting { links_online, .. } => {
                        lost.get_or_insert(links_online);
                    }
                    AgentEvent::Online {
                        endpoints, edge, ..
                    } => {
                        assert_eq!(endpoints[0].0.hostname, host, "the hostname changed");
                        if edge.edge_id.as_deref() == Some("edge-two") {
                            return lost;
                        }
                    }
                }
            }
            None
        },
    )
    .await;
    println!(
        "linked to edge two again {:.2?} after the kill",
        kill.elapsed()
    );
    let through_two = if relinked.is_ok() {
        eventually(
            Duration::from_secs(3),
            "edge two to route again",
            || async {
                (answer(two.http_addr, host).await.ok()? == (200, "steady".into())).then_some(())
            },
        )
        .await
    } else {
        Ok(())
    };
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        within(Duration::from_secs(15), "a load worker", w).await??;
    }
    let failures = failures.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let (ok, after) = (
        ok.load(Ordering::Relaxed),
        ok_after_kill.load(Ordering::Relaxed),
    );
    println!("{ok} requests answered through edge three, {after} after edge two was killed");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert_eq!(relinked?, Some(1), "lost with one link left online");
    through_two?;
    assert!(
        after >= 100,
        "too few requests after the kill to tell: {after}"
    );
    assert_eq!(answer(three.http_addr, host).await?, (200, "steady".into()));
    agent.stop().await?;
    two.kill().await?;
    three.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_runs_alone_gets_exactly_one_link() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    // A second address of the same edge (a relay, as an L4 balancer would be).
    let relay = ImpairedLink::start(edge.tunnel_addr, Impairment::default(), 19).await?;
    let app = upstream::app("alone").await?;
    let mut config = edge.agent_config(TOKEN, "alone", app.addr);
    config.set_edges([edge.tunnel_addr.to_string(), relay.addr().to_string()])?;
    config.ha_connections = 2;
    let mut agent = TestAgent::start(config).await?;
    let sessions = || edge.metric("sluice_edge_agent_transport_sessions", expected_transport());
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        assert_eq!(sessions(), 1.0, "one session on the edge");
        assert_eq!(
            answer(edge.http_addr, "alone.localhost").await?,
            (200, "alone".into())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // No second link was tried: nothing went through the relay, and no link came or went.
    assert_eq!(
        relay.stats().seen,
        0,
        "a link was dialled through the second address"
    );
    if let Ok(event) = agent.events.try_recv() {
        panic!("the link changed: {event:?}");
    }
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_reached_at_two_addresses_keeps_one_link_and_loses_no_request() -> anyhow::Result<()>
{
    let redis = RedisServer::start().await?;
    let cert = SharedCert::new()?;
    let edge = clustered_edge(&redis, &cert, "edge-one").await?;
    // The same cluster edge at a second address (as an L4 balancer may send two dials there),
    // closed until the load runs.
    let closed = Impairment {
        blackhole: true,
        ..Impairment::default()
    };
    let relay = ImpairedLink::start(edge.tunnel_addr, closed, 23).await?;
    let app = upstream::app("twice").await?;
    let mut config = ha_agent_config(
        &[edge.tunnel_addr, relay.addr()],
        &cert,
        "twice",
        app.addr,
        2,
    )?;
    config.transport = TransportChoice::Auto;
    let mut agent = TestAgent::start(config).await?;
    let host = "twice.localhost";
    // Requests go on while the second link meets the first one's edge: 4 workers, each
    // request 50 ms at the app, so some are always in flight on the first link.
    let stop_at = Instant::now() + Duration::from_secs(4);
    let mut load = Vec::new();
    for _ in 0..4 {
        let http = edge.http_addr;
        load.push(tokio::spawn(async move {
            let (client, mut ok, mut failed) = (client(), 0u64, Vec::new());
            let url = format!("http://{host}:{}/sleep/50", http.port());
            while Instant::now() < stop_at && ok + (failed.len() as u64) < 1_000 {
                let sent = client
                    .get(&url)
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => match r.text().await {
                        Ok(body) if body == "slept" => ok += 1,
                        other => failed.push(format!("{other:?}")),
                    },
                    other => failed.push(format!("{other:?}")),
                }
            }
            (ok, failed)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    relay.blackhole(false);
    // The new session (through the relay) takes the old one's place, make-before-break.
    let taken_over = within(
        Duration::from_secs(5),
        "the second link to meet edge one",
        async {
            while let Some(event) = agent.events.recv().await {
                if let AgentEvent::Online { edge, .. } = event {
                    return Some(edge);
                }
            }
            None
        },
    )
    .await?;
    let (mut ok, mut failed) = (0, Vec::new());
    for worker in load {
        let (n, f) = within(Duration::from_secs(10), "a load worker", worker).await??;
        ok += n;
        failed.extend(f);
    }
    println!("{ok} requests answered while the second address met the same edge");
    assert!(
        failed.is_empty(),
        "{} failed: {:?}",
        failed.len(),
        &failed[..failed.len().min(5)]
    );
    let taken_over = taken_over.ok_or_else(|| anyhow::anyhow!("agent events ended"))?;
    assert_eq!(taken_over.slot, 0, "{taken_over:?}");
    assert_eq!(taken_over.addr, relay.addr(), "{taken_over:?}");
    assert_eq!(taken_over.edge_id.as_deref(), Some("edge-one"));
    // Settled: one session on the edge, both addresses left alone, the agent still running.
    // Over QUIC whatever the test pass: the relay carries UDP only.
    let sessions = || edge.metric("sluice_edge_agent_transport_sessions", "quic");
    eventually(
        Duration::from_secs(5),
        "the old session to drain",
        || async { (sessions() == 1.0).then_some(()) },
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    if let Ok(event) = agent.events.try_recv() {
        panic!("the link changed again: {event:?}");
    }
    assert!(!agent.is_finished());
    assert_eq!(answer(edge.http_addr, host).await?, (200, "twice".into()));
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

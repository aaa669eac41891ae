//! The agent's transports (docs/hardening.md, "Transport fallback"): `auto` falls back to TLS
//! over TCP when UDP is blocked and comes back to QUIC when it works again, without cutting
//! what runs; `quic` and `tcp` never use the other transport; the TCP listener refuses what the
//! QUIC one refuses, and TLS 1.2. The agent reaches the edge's QUIC port through the
//! impairment relay (src/impair.rs), which blackholes or drops UDP; TCP goes straight to the
//! edge.
//!
//! The spine's own behaviours (gigabyte transfers, websockets, gRPC with trailers, concurrent
//! requests, a killed agent, an edge restart) run over TCP in `scripts/test`'s second pass
//! (`SLUICE_TEST_TRANSPORT=tcp`).

use anyhow::Context;
use futures_util::StreamExt;
use sluice_agent::{AgentConfig, AgentError, AgentEvent, Transport, TransportChoice};
use sluice_e2e::impair::{ImpairedLink, Impairment};
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{client, data, eventually, within, Launch, TestAgent, TestEdge, TOKEN};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};

/// An edge, an app, and a relay in front of the edge's QUIC port.
struct Rig {
    edge: TestEdge,
    app: Upstream,
    relay: ImpairedLink,
}

impl Rig {
    async fn start(impairment: Impairment) -> anyhow::Result<Self> {
        let edge = TestEdge::start().await?;
        let app = upstream::app("app").await?;
        let relay = ImpairedLink::start(edge.tunnel_addr, impairment, 21).await?;
        Ok(Self { edge, app, relay })
    }

    /// An agent for `name` choosing `transport`: QUIC through the relay, TCP to the edge.
    fn config(&self, name: &str, transport: TransportChoice) -> anyhow::Result<AgentConfig> {
        let mut config = self.edge.agent_config(TOKEN, name, self.app.addr);
        config.edge = self.relay.addr().to_string();
        let tcp = self
            .edge
            .tunnel_tcp_addr
            .context("the edge has no TCP listener")?;
        config.edge_tcp = Some(tcp.to_string());
        config.transport = transport;
        // Long enough not to move back during a test that does not ask for it.
        config.quic_probe_interval = Duration::from_secs(120);
        Ok(config)
    }

    /// How many sessions are online over `transport`, by the edge's metric.
    fn sessions_over(&self, transport: &str) -> i64 {
        self.edge
            .metric("sluice_edge_agent_transport_sessions", transport) as i64
    }

    /// The transports of the sessions the admin API lists.
    async fn listed_transports(&self) -> anyhow::Result<Vec<String>> {
        let sessions = self.edge.handle().admin().tunnel_sessions().await?;
        Ok(sessions
            .into_iter()
            .flat_map(|s| s.links)
            .map(|l| l.transport)
            .collect())
    }
}

async fn get_ok(url: &str) -> anyhow::Result<()> {
    let resp = client().get(url).send().await?;
    anyhow::ensure!(resp.status() == 200, "GET {url}: {}", resp.status());
    Ok(())
}

/// The transport of the next `Online` event.
async fn next_transport(agent: &mut TestAgent, limit: Duration) -> anyhow::Result<Transport> {
    match agent.next_online(limit).await? {
        AgentEvent::Online { link, .. } => Ok(link.transport()),
        other => anyhow::bail!("not an online event: {other:?}"),
    }
}

/// Waits for the next `Reconnecting` event.
async fn next_loss(agent: &mut TestAgent, limit: Duration) -> anyhow::Result<String> {
    within(limit, "the agent to lose its session", async {
        while let Some(ev) = agent.events.recv().await {
            if let AgentEvent::Reconnecting { reason, .. } = ev {
                return Ok(reason);
            }
        }
        anyhow::bail!("agent event channel closed")
    })
    .await?
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_udp_blackholed_from_the_start_auto_is_online_over_tcp_within_3_s(
) -> anyhow::Result<()> {
    let rig = Rig::start(Impairment {
        blackhole: true,
        ..Impairment::default()
    })
    .await?;
    let started = Instant::now();
    let agent = TestAgent::start(rig.config("blocked", TransportChoice::Auto)?).await?;
    let online_after = started.elapsed();
    println!("online over TCP {online_after:.2?} after starting");
    assert!(
        online_after < Duration::from_secs(3),
        "online only after {online_after:.2?}"
    );
    get_ok(agent.url()).await?;
    assert_eq!(rig.sessions_over("tcp"), 1);
    assert_eq!(rig.sessions_over("quic"), 0);
    assert_eq!(rig.listed_transports().await?, ["tcp"]);
    assert!(rig.relay.stats().seen > 0, "QUIC was tried first");
    agent.stop().await?;
    rig.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_udp_socket_that_refuses_to_send_races_tcp_at_once() -> anyhow::Result<()> {
    let rig = Rig::start(Impairment::default()).await?;
    let mut config = rig.config("refused", TransportChoice::Auto)?;
    // The kernel refuses a datagram to the broadcast address from a socket without
    // SO_BROADCAST (EACCES), as a local firewall refuses with EPERM; nothing is sent.
    config.edge = format!("255.255.255.255:{}", rig.edge.tunnel_addr.port());
    let started = Instant::now();
    let agent = TestAgent::start(config).await?;
    let online_after = started.elapsed();
    println!("online over TCP {online_after:.2?} after starting");
    // Well before the 1.5 s that an unanswered QUIC handshake waits.
    assert!(
        online_after < Duration::from_secs(1),
        "online only after {online_after:.2?}"
    );
    assert_eq!(rig.sessions_over("tcp"), 1);
    agent.stop().await?;
    rig.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quic_with_udp_blocked_never_uses_tcp() -> anyhow::Result<()> {
    let rig = Rig::start(Impairment {
        blackhole: true,
        ..Impairment::default()
    })
    .await?;
    // A TCP listener that only counts: any connection to it is a failure.
    let trap = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let trap_addr = trap.local_addr()?;
    let dialled = Arc::new(AtomicUsize::new(0));
    let counted = dialled.clone();
    let trap_task = tokio::spawn(async move {
        while trap.accept().await.is_ok() {
            counted.fetch_add(1, Ordering::Relaxed);
        }
    });
    let mut config = rig.config("quic-only", TransportChoice::Quic)?;
    config.edge_tcp = Some(trap_addr.to_string());
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let (stop, stop_rx) = watch::channel(false);
    let task = tokio::spawn(sluice_agent::run(config, Some(events_tx), stop_rx));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut online = false;
    while let Ok(ev) = events.try_recv() {
        online |= matches!(ev, AgentEvent::Online { .. });
    }
    assert!(!online, "a QUIC-only agent came online with UDP blocked");
    assert_eq!(
        dialled.load(Ordering::Relaxed),
        0,
        "a QUIC-only agent dialled TCP"
    );
    assert_eq!(rig.sessions_over("tcp"), 0);
    let _ = stop.send(true);
    within(Duration::from_secs(10), "agent to stop", task).await???;
    trap_task.abort();
    rig.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_sends_no_udp_at_all() -> anyhow::Result<()> {
    let rig = Rig::start(Impairment::default()).await?;
    let agent = TestAgent::start(rig.config("tcp-only", TransportChoice::Tcp)?).await?;
    for _ in 0..5 {
        get_ok(agent.url()).await?;
    }
    assert_eq!(rig.sessions_over("tcp"), 1);
    agent.stop().await?;
    assert_eq!(rig.relay.stats().seen, 0, "a TCP-only agent sent UDP");
    rig.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_udp_returns_the_agent_moves_back_to_quic_and_a_download_started_on_tcp_completes(
) -> anyhow::Result<()> {
    const LEN: u64 = 48 * 1024 * 1024;
    let rig = Rig::start(Impairment {
        blackhole: true,
        ..Impairment::default()
    })
    .await?;
    let mut config = rig.config("mover", TransportChoice::Auto)?;
    config.quic_probe_interval = Duration::from_millis(400);
    let mut agent = TestAgent::start(config).await?;
    assert_eq!(rig.sessions_over("tcp"), 1);

    // A download starts over TCP and is read slowly, so it is still running at the move.
    let expected = tokio::task::spawn_blocking(|| data::digest_of(LEN, 5));
    let resp = client()
        .get(format!("{}/bytes/{LEN}/5", agent.url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let mut body = resp.bytes_stream();
    let digest = data::SharedDigest::default();
    while digest.finish().1 < 1024 * 1024 {
        let chunk = body.next().await.context("body ended early")??;
        digest.update(&chunk);
    }

    rig.relay.blackhole(false);
    let unblocked = Instant::now();
    let moved = next_transport(&mut agent, Duration::from_secs(10)).await?;
    println!(
        "back on QUIC {:.2?} after UDP returned",
        unblocked.elapsed()
    );
    assert_eq!(moved, Transport::Quic);
    assert_eq!(rig.sessions_over("quic"), 1);
    // New requests go to the QUIC session while the TCP one still carries the download.
    get_ok(agent.url()).await?;
    assert_eq!(
        rig.sessions_over("tcp"),
        1,
        "the TCP session must drain, not be cut"
    );

    while let Some(chunk) = body.next().await {
        digest.update(&chunk.context("the download was cut by the move")?);
    }
    let (got, len) = digest.finish();
    assert_eq!(len, LEN);
    assert_eq!(got, expected.await?);
    // Its last request done, the old session closes.
    eventually(
        Duration::from_secs(5),
        "the TCP session to close",
        || async { (rig.sessions_over("tcp") == 0).then_some(()) },
    )
    .await?;
    assert_eq!(rig.listed_transports().await?, ["quic"]);
    get_ok(agent.url()).await?;
    agent.stop().await?;
    rig.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thirty_percent_udp_loss_falls_back_only_after_repeated_deaths() -> anyhow::Result<()> {
    let rig = Rig::start(Impairment::default()).await?;
    let mut agent = TestAgent::start(rig.config("lossy", TransportChoice::Auto)?).await?;
    assert_eq!(rig.sessions_over("quic"), 1);

    // 30 % loss both ways: slower, but QUIC holds, and nothing falls back.
    rig.relay.set(Impairment {
        loss: 0.3,
        ..Impairment::default()
    });
    for _ in 0..10 {
        get_ok(agent.url()).await?;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        agent.events.try_recv().is_err(),
        "the session changed under 30 % loss"
    );
    assert_eq!(rig.sessions_over("quic"), 1);
    rig.relay.set(Impairment::default());

    // UDP that lets a handshake through and then starves the link: the first young death
    // is not enough to leave QUIC…
    rig.relay.blackhole(true);
    let reason = next_loss(&mut agent, Duration::from_secs(20)).await?;
    println!("first death: {reason}");
    rig.relay.blackhole(false);
    assert_eq!(
        next_transport(&mut agent, Duration::from_secs(10)).await?,
        Transport::Quic
    );
    // …the second is: the next session starts on TCP although UDP would answer now.
    rig.relay.blackhole(true);
    let reason = next_loss(&mut agent, Duration::from_secs(20)).await?;
    println!("second death: {reason}");
    rig.relay.blackhole(false);
    assert_eq!(
        next_transport(&mut agent, Duration::from_secs(10)).await?,
        Transport::Tcp
    );
    get_ok(agent.url()).await?;
    agent.stop().await?;
    rig.edge.shutdown().await;
    Ok(())
}

/// How the edge refuses a wrong token over `transport`.
async fn refusal(rig: &Rig, transport: TransportChoice) -> anyhow::Result<(String, String)> {
    let mut config = rig.config("refused", transport)?;
    config.authtoken = sluice_proto::control::Secret("not-a-token".into());
    match TestAgent::launch(config).await? {
        Launch::Exited(Err(AgentError::Rejected(r))) => Ok((r.code.to_string(), r.message)),
        Launch::Exited(other) => anyhow::bail!("exited otherwise: {other:?}"),
        Launch::Online(_) => anyhow::bail!("a wrong token came online"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_token_over_tcp_is_refused_as_over_quic() -> anyhow::Result<()> {
    let rig = Rig::start(Impairment::default()).await?;
    let quic = refusal(&rig, TransportChoice::Quic).await?;
    let tcp = refusal(&rig, TransportChoice::Tcp).await?;
    assert_eq!(tcp, quic);
    assert_eq!(tcp.0, "ERR_SLUICE_105");
    rig.edge.shutdown().await;
    Ok(())
}

/// A TLS handshake with the edge's TCP listener at `addr`, with `versions` and ALPN `alpn`.
async fn tls_handshake(
    addr: SocketAddr,
    cert: &std::path::Path,
    versions: &[&'static rustls::SupportedProtocolVersion],
    alpn: &[u8],
) -> anyhow::Result<Vec<u8>> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls_pemfile::certs(&mut std::io::BufReader::new(std::fs::File::open(cert)?)) {
        roots.add(c?)?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![alpn.to_vec()];
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(
            rustls::pki_types::ServerName::try_from("localhost")?,
            stream,
        )
        .await?;
    Ok(tls.get_ref().1.alpn_protocol().unwrap_or_default().to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tcp_listener_speaks_tls_1_3_only() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let addr = edge.tunnel_tcp_addr.context("no TCP listener")?;
    assert_eq!(
        addr.port(),
        edge.tunnel_addr.port(),
        "TCP shares the QUIC port number"
    );
    let alpn = tls_handshake(
        addr,
        &edge.cert,
        &[&rustls::version::TLS13],
        sluice_proto::ALPN_TCP,
    )
    .await?;
    assert_eq!(alpn, sluice_proto::ALPN_TCP);
    let old = tls_handshake(
        addr,
        &edge.cert,
        &[&rustls::version::TLS12],
        sluice_proto::ALPN_TCP,
    )
    .await;
    let err = old.expect_err("TLS 1.2 was accepted");
    println!("TLS 1.2 refused: {err:#}");
    assert!(format!("{err:#}").contains("ProtocolVersion"), "{err:#}");
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_binary_says_which_transport_it_is_on() -> anyhow::Result<()> {
    let rig = Rig::start(Impairment::default()).await?;
    let dir = tempfile::tempdir()?;
    let tcp = rig.edge.tunnel_tcp_addr.context("no TCP listener")?;
    let mut cmd = sluice_e2e::process::agent_command(
        rig.relay.addr(),
        &rig.edge.cert,
        TOKEN,
        "printed",
        rig.app.addr,
    )?;
    cmd.args(["--transport", "tcp", "--edge-tcp", &tcp.to_string()]);
    let agent = sluice_e2e::AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    get_ok(&agent.url).await?;
    eventually(Duration::from_secs(5), "the transport line", || async {
        agent
            .output()
            .contains("Transport  TLS over TCP")
            .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", agent.output()))?;
    assert_eq!(rig.relay.stats().seen, 0, "--transport tcp sent UDP");
    agent.terminate(Duration::from_secs(10)).await?;
    rig.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_can_share_the_https_port_by_alpn() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = sluice_e2e::tls::TestCa::new("sluice test CA")?;
    let (wildcard, _) = ca.issue(dir.path(), "wildcard", &["*.tunnel.test"])?;
    let domain = sluice_edge::Hostname::parse("tunnel.test")?;
    let edge = TestEdge::start_with(|c| {
        c.domain = domain;
        let mut https = sluice_edge::HttpsConfig::new(sluice_e2e::any_port());
        https.default_cert = Some(wildcard);
        c.https = Some(https);
        // Only the HTTPS port takes agents over TCP.
        c.tunnel_tcp = sluice_edge::TunnelTcp::Off;
        c.tunnel_tcp_on_https = true;
    })
    .await?;
    assert_eq!(edge.tunnel_tcp_addr, None);
    let https = edge.https()?;
    let app = upstream::app("shared").await?;
    let mut config = edge.agent_config(TOKEN, "shared", app.addr);
    config.transport = TransportChoice::Tcp;
    config.edge_tcp = Some(https.to_string());
    let agent = TestAgent::start(config).await?;
    // Browsers on the same port still get the edge's HTTPS, and reach the agent through it.
    let resp = ca.https_client()?.get(agent.url()).send().await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-upstream"], "shared");
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

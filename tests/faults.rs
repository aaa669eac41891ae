//! Network faults on the agent↔edge QUIC path, injected by the seeded impairment relay:
//! loss with delay, blackholes shorter and longer than the idle timeout, and faults that must
//! not be taken for a dead agent (no false disconnects).

use sluice_agent::AgentEvent;
use sluice_e2e::data;
use sluice_e2e::impair::{ImpairedLink, Impairment};
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{client, endpoint_freed, error_code, eventually, TestAgent, TestEdge, TOKEN};
use sluice_proto::transport::IDLE_TIMEOUT;
use std::time::{Duration, Instant};

/// The seed for every relay here; change it (or read it from a failure) to replay a run.
const SEED: u64 = 0x51u64 << 32 | 0xce;

/// An edge, an upstream app, and an agent that reaches the edge only through a relay.
struct Impaired {
    edge: TestEdge,
    link: ImpairedLink,
    agent: TestAgent,
    _up: Upstream,
}

async fn impaired(name: &str, impairment: Impairment) -> anyhow::Result<Impaired> {
    let edge = TestEdge::start().await?;
    let up = upstream::app(name).await?;
    let link = ImpairedLink::start(edge.tunnel_addr, impairment, SEED).await?;
    let config = sluice_e2e::agent_config(link.addr(), &edge.cert, TOKEN, name, up.addr);
    let agent = TestAgent::start(config).await?;
    Ok(Impaired {
        edge,
        link,
        agent,
        _up: up,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_slow_link_still_delivers_100_mib_intact() -> anyhow::Result<()> {
    const LEN: u64 = 100 << 20;
    // 5 % loss each way and 100 ms of round trip (50 ms each way).
    let t = impaired(
        "lossy",
        Impairment {
            loss: 0.05,
            delay: Duration::from_millis(50),
            ..Impairment::default()
        },
    )
    .await?;
    let expected = tokio::task::spawn_blocking(|| data::digest_of(LEN, 5));
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/bytes/{LEN}/5", t.agent.url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (got, len) = data::read_digest(resp).await?;
    assert_eq!(len, LEN);
    assert_eq!(got, expected.await?);
    let stats = t.link.stats();
    println!(
        "100 MiB over 5% loss + 100 ms RTT in {:.1?}; relay {stats:?}",
        started.elapsed()
    );
    assert!(stats.dropped > 0, "the relay dropped nothing: {stats:?}");
    t.agent.stop().await?;
    t.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_longer_than_the_idle_timeout_ends_in_reconnect_to_the_same_url(
) -> anyhow::Result<()> {
    let mut t = impaired("hole", Impairment::default()).await?;
    let url = t.agent.url().to_string();
    assert_eq!(client().get(&url).send().await?.status(), 200);

    t.link.blackhole(true);
    tokio::time::sleep(IDLE_TIMEOUT).await;
    // Both sides give up on the link: the edge frees the name.
    endpoint_freed(&url, Duration::from_secs(30)).await?;
    t.link.blackhole(false);

    t.agent.next_online(Duration::from_secs(20)).await?;
    assert_eq!(t.agent.url(), url, "the agent came back under another URL");
    eventually(
        Duration::from_secs(10),
        "the URL to answer again",
        || async {
            let resp = client().get(&url).send().await.ok()?;
            (resp.status() == 200).then_some(())
        },
    )
    .await?;
    t.agent.stop().await?;
    t.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackhole_during_a_request_fails_that_client_promptly_with_a_code() -> anyhow::Result<()> {
    let t = impaired("inflight", Impairment::default()).await?;
    let url = format!("{}/sleep/30000", t.agent.url());
    let request = tokio::spawn(async move {
        let started = Instant::now();
        let resp = client().get(url).send().await?;
        Ok::<_, anyhow::Error>((started.elapsed(), resp))
    });
    // Let the request reach the upstream, then cut the link.
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.link.blackhole(true);
    let (took, resp) = request.await??;
    let code = error_code(resp.headers());
    assert_eq!(resp.status(), 502, "{:?}", resp.headers());
    assert_eq!(
        code.as_deref(),
        Some("ERR_SLUICE_3210"),
        "{:?}",
        resp.headers()
    );
    // Promptly: the edge probes an agent that requests wait on and gives up after 2.7 s of
    // silence (edge/src/tunnel/liveness.rs), well before the 8 s idle timeout; the relay drops
    // packets silently, so no ICMP report helps here.
    println!("the request failed {took:?} after it was sent");
    assert!(
        took < Duration::from_millis(500) + Duration::from_secs(4),
        "the client waited {took:?}"
    );
    t.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reordered_duplicated_jittery_link_keeps_every_request_and_byte() -> anyhow::Result<()> {
    const LEN: u64 = 8 << 20;
    let t = impaired(
        "jittery",
        Impairment {
            loss: 0.02,
            delay: Duration::from_millis(10),
            jitter: Duration::from_millis(10),
            reorder: 0.05,
            duplicate: 0.05,
            blackhole: false,
        },
    )
    .await?;
    // An upload: the upstream hashes what it receives.
    let digest = data::SharedDigest::default();
    let body = reqwest::Body::wrap_stream(data::hashed_stream(LEN, 3, digest.clone()));
    let resp = client()
        .post(format!("{}/sha256", t.agent.url()))
        .body(body)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let (sent, n) = digest.finish();
    assert_eq!(resp.text().await?.trim(), format!("{sent} {n}"));
    // Fifty concurrent small requests all get their own answer.
    let requests = (0..50u64).map(|i| {
        let url = format!("{}/item/{i}", t.agent.url());
        async move {
            let resp = client().get(url).send().await?;
            anyhow::ensure!(resp.status() == 200, "item {i}: {}", resp.status());
            anyhow::ensure!(
                resp.bytes().await? == upstream::item_body(i),
                "item {i} mixed up"
            );
            Ok(())
        }
    });
    for r in futures_util::future::join_all(requests).await {
        r?;
    }
    let stats = t.link.stats();
    assert!(stats.duplicated > 0 && stats.dropped > 0, "{stats:?}");
    t.agent.stop().await?;
    t.edge.shutdown().await;
    Ok(())
}

/// Every event the agent reported since it came online (or since the last call), described:
/// a lost session shows as `Reconnecting` and then another `Online`.
fn agent_events(agent: &mut TestAgent) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(ev) = agent.events.try_recv() {
        out.push(match ev {
            AgentEvent::Reconnecting { reason, .. } => format!("Reconnecting: {reason}"),
            AgentEvent::Online {
                session_id,
                reconnected,
                ..
            } => format!("Online: session {session_id}, reconnected {reconnected}"),
        });
    }
    out
}

/// `GET url`: status and body, with the time it took.
async fn timed_get(url: String) -> anyhow::Result<(Duration, u16, String)> {
    let started = Instant::now();
    let resp = client().get(url).send().await?;
    let status = resp.status().as_u16();
    Ok((started.elapsed(), status, resp.text().await?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_second_blackhole_during_a_slow_request_keeps_the_session() -> anyhow::Result<()> {
    let mut t = impaired("brief", Impairment::default()).await?;
    let url = t.agent.url().to_string();
    assert_eq!(client().get(&url).send().await?.status(), 200);
    // The upstream answers after 4 s; the link is gone for 2 s of that.
    let request = tokio::spawn(timed_get(format!("{url}/sleep/4000")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    t.link.blackhole(true);
    tokio::time::sleep(Duration::from_secs(2)).await;
    t.link.blackhole(false);
    let (took, status, body) =
        sluice_e2e::within(Duration::from_secs(20), "the slow request", request).await???;
    println!("slow request across a 2 s blackhole: {status} after {took:.2?}");
    assert_eq!((status, body.as_str()), (200, "slept"));
    assert!(t.link.stats().dropped > 0, "{:?}", t.link.stats());
    // Still the first session: the agent never reconnected, and the URL still answers.
    assert_eq!(client().get(&url).send().await?.status(), 200);
    let events = agent_events(&mut t.agent);
    assert!(events.is_empty(), "the session was lost: {events:?}");
    assert_eq!(t.agent.url(), url);
    t.agent.stop().await?;
    t.edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_slow_link_with_concurrent_slow_requests_keeps_the_session() -> anyhow::Result<()> {
    // The shape of `lossy_slow_link_still_delivers_100_mib_intact`: 5 % loss each way, 100 ms
    // of round trip; here with requests that sit idle at the upstream for 3 s.
    let mut t = impaired(
        "lossyslow",
        Impairment {
            loss: 0.05,
            delay: Duration::from_millis(50),
            ..Impairment::default()
        },
    )
    .await?;
    let url = t.agent.url().to_string();
    let started = Instant::now();
    for round in 0..2 {
        let slow = (0..8).map(|_| timed_get(format!("{url}/sleep/3000")));
        let quick = (0..8).map(|i| timed_get(format!("{url}/item/{i}")));
        let results = sluice_e2e::within(
            Duration::from_secs(30),
            "a round of requests",
            futures_util::future::join_all(slow.chain(quick)),
        )
        .await?;
        for (i, r) in results.into_iter().enumerate() {
            let (took, status, _) = r?;
            assert_eq!(status, 200, "round {round}, request {i} after {took:.2?}");
        }
    }
    let stats = t.link.stats();
    println!(
        "2 rounds of 8 slow + 8 quick requests in {:.2?}; relay {stats:?}",
        started.elapsed()
    );
    assert!(stats.dropped > 0, "the relay dropped nothing: {stats:?}");
    let events = agent_events(&mut t.agent);
    assert!(events.is_empty(), "the session was lost: {events:?}");
    t.agent.stop().await?;
    t.edge.shutdown().await;
    Ok(())
}

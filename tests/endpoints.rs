//! Endpoints as ngrok defines them: an endpoint is a scheme and a hostname, and agents that all
//! enable pooling share one endpoint, each request going to one of them at random; a pool's
//! agents restart one by one without a failed request.

use sluice_agent::{AgentConfig, AgentError};
use sluice_e2e::tls::TestCa;
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{client, Launch, TestAgent, TestEdge, OTHER_TOKEN, TOKEN};
use sluice_proto::error_code::ErrorCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The `x-upstream` name that answered a GET of `url` (the test apps name themselves).
async fn answered_by(http: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let resp = http
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    anyhow::ensure!(resp.status() == 200, "{url}: {}", resp.status());
    Ok(resp
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string())
}

/// `edge`'s agent config for `url` in front of `up`, with pooling as given.
fn config(edge: &TestEdge, token: &str, url: &str, up: &Upstream, pooling: bool) -> AgentConfig {
    let mut config = edge.agent_config(token, url, up.addr);
    config.endpoints[0].pooling_enabled = pooling;
    config
}

/// The rejection a launch ended with; panics when the agent came online.
async fn refusal(config: AgentConfig) -> anyhow::Result<(ErrorCode, String)> {
    match TestAgent::launch(config).await? {
        Launch::Exited(Err(AgentError::Rejected(r))) => Ok((r.code, r.message)),
        Launch::Exited(other) => anyhow::bail!("expected a rejection, got {other:?}"),
        Launch::Online(_) => anyhow::bail!("the agent came online"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_pooled_agents_share_one_url_at_random() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let mut ups = Vec::new();
    let mut agents = Vec::new();
    for name in ["one", "two", "three"] {
        let up = upstream::app(name).await?;
        agents.push(TestAgent::start(config(&edge, TOKEN, "pool", &up, true)).await?);
        ups.push(up);
    }
    let http = client();
    let url = edge.url("pool.localhost");
    let mut counts: HashMap<String, u32> = HashMap::new();
    for _ in 0..300 {
        *counts.entry(answered_by(&http, &url).await?).or_default() += 1;
    }
    println!("answers per member: {counts:?}");
    // 100 each expected; 60 is about five standard deviations below.
    for name in ["one", "two", "three"] {
        let n = counts.get(name).copied().unwrap_or_default();
        assert!(n >= 60, "{name} answered {n} of 300: {counts:?}");
    }

    // A member that leaves gets no more requests; the others carry on.
    agents.remove(0).stop().await?;
    for _ in 0..30 {
        assert_ne!(answered_by(&http, &url).await?, "one");
    }
    for agent in agents {
        agent.stop().await?;
    }
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pooling_needs_every_member_and_one_authtoken() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (a, b) = (upstream::app("a").await?, upstream::app("b").await?);

    // Unpooled holder: a pooled newcomer of the same token is refused with the hint.
    let holder = TestAgent::start(config(&edge, TOKEN, "solo", &a, false)).await?;
    let (code, message) = refusal(config(&edge, TOKEN, "solo", &b, true)).await?;
    assert_eq!(code, ErrorCode::HostnameTaken);
    assert_eq!(code.number(), 334);
    assert!(message.contains("--pooling-enabled"), "{message}");
    assert_eq!(
        answered_by(&client(), &edge.url("solo.localhost")).await?,
        "a"
    );
    holder.stop().await?;

    // Pooled holder: an unpooled newcomer of the same token is refused with the hint, and a
    // pooled one of another token is refused as for any name it does not own.
    let holder = TestAgent::start(config(&edge, TOKEN, "shared", &a, true)).await?;
    let (code, message) = refusal(config(&edge, TOKEN, "shared", &b, false)).await?;
    assert_eq!(code, ErrorCode::HostnameTaken);
    assert!(message.contains("--pooling-enabled"), "{message}");
    let (code, message) = refusal(config(&edge, OTHER_TOKEN, "shared", &b, true)).await?;
    assert_eq!(code, ErrorCode::HostnameTaken);
    assert!(!message.contains("--pooling-enabled"), "{message}");
    assert_eq!(
        answered_by(&client(), &edge.url("shared.localhost")).await?,
        "a"
    );
    holder.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_and_https_on_one_name_are_two_endpoints() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = TestEdge::start_https(&ca, dir.path(), "tunnel.test").await?;
    let https_port = edge.https()?.port();
    let http = ca.https_client()?;
    let plain = format!("http://both.tunnel.test:{}/", edge.http_addr.port());
    let secure = format!("https://both.tunnel.test:{https_port}/");
    let (a, b) = (
        upstream::app("plain").await?,
        upstream::app("secure").await?,
    );

    // One agent, both schemes.
    let mut both = config(&edge, TOKEN, "http://both", &a, false);
    let mut second = both.endpoints[0].clone();
    second.url = Some("https://both".into());
    second.upstream = b.addr.to_string().parse()?;
    both.endpoints.push(second);
    let agent = TestAgent::start(both).await?;
    assert_eq!(answered_by(&http, &plain).await?, "plain");
    assert_eq!(answered_by(&http, &secure).await?, "secure");
    agent.stop().await?;

    // Two agents, one scheme each; neither replaces the other.
    let first = TestAgent::start(config(&edge, TOKEN, "http://both", &a, false)).await?;
    let second = TestAgent::start(config(&edge, TOKEN, "https://both", &b, false)).await?;
    assert_eq!(answered_by(&http, &plain).await?, "plain");
    assert_eq!(answered_by(&http, &secure).await?, "secure");
    assert!(!first.is_finished() && !second.is_finished());
    first.stop().await?;
    second.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// Sends GETs to `url` one after another until `stop` is set (at most 20,000); returns how many
/// succeeded and what each failure was.
async fn closed_loop(url: String, stop: Arc<AtomicBool>) -> (u32, Vec<String>) {
    let http = client();
    let (mut ok, mut failures) = (0, Vec::new());
    for _ in 0..20_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        match answered_by(&http, &url).await {
            Ok(_) => ok += 1,
            Err(e) => failures.push(e.to_string()),
        }
    }
    (ok, failures)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_a_pool_one_agent_at_a_time_fails_no_request() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (a, b) = (upstream::app("a").await?, upstream::app("b").await?);
    let start = |up: &Upstream| TestAgent::start(config(&edge, TOKEN, "rolling", up, true));
    let mut members = [start(&a).await?, start(&b).await?];
    let stop = Arc::new(AtomicBool::new(false));
    let load: Vec<_> = (0..4)
        .map(|_| tokio::spawn(closed_loop(edge.url("rolling.localhost"), stop.clone())))
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for _round in 0..2 {
        for (i, up) in [&a, &b].into_iter().enumerate() {
            let fresh = start(up).await?;
            std::mem::replace(&mut members[i], fresh).stop().await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    let (mut ok, mut failures) = (0, Vec::new());
    for worker in load {
        let (n, f) = worker.await?;
        ok += n;
        failures.extend(f);
    }
    println!(
        "{ok} requests answered during four restarts, {} failed",
        failures.len()
    );
    assert!(ok > 100, "only {ok} requests went through");
    assert!(
        failures.is_empty(),
        "{} failed: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    for member in members {
        member.stop().await?;
    }
    edge.shutdown().await;
    Ok(())
}

//! Endpoints as ngrok defines them: an endpoint is a scheme and a hostname, and agents that all
//! enable pooling share one endpoint, each request going to one of them at random; a pool's
//! agents restart one by one without a failed request.

use sluice_agent::{AgentConfig, AgentError};
use sluice_e2e::process::agent_command;
use sluice_e2e::tls::TestCa;
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{client, AgentProcess, Launch, TestAgent, TestEdge, OTHER_TOKEN, TOKEN};
use sluice_proto::control::{PolicyKind, PolicySource};
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
async fn each_pool_member_runs_its_own_policy() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let mut agents = Vec::new();
    let mut ups = Vec::new();
    for name in ["one", "two"] {
        let up = upstream::app(name).await?;
        let mut config = config(&edge, TOKEN, "mixed", &up, true);
        config.endpoints[0].policies = vec![PolicySource {
            origin: format!("{name}.yml"),
            kind: PolicyKind::Document,
            text: format!(
                "on_http_response: [{{actions: [{{type: add-headers, config: {{headers: {{x-policy: {name}}}}}}}]}}]"
            ),
        }];
        agents.push(TestAgent::start(config).await?);
        ups.push(up);
    }
    let http = client();
    let mut seen = HashMap::new();
    for _ in 0..40 {
        let resp = http.get(edge.url("mixed.localhost")).send().await?;
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string()
        };
        let (by, policy) = (header("x-upstream"), header("x-policy"));
        assert_eq!(
            by, policy,
            "a member's answer carried another member's policy"
        );
        *seen.entry(by).or_insert(0u32) += 1;
    }
    assert_eq!(seen.len(), 2, "both members answered: {seen:?}");
    for agent in agents {
        agent.stop().await?;
    }
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_waiting_for_a_dead_members_stream_goes_to_another_member() -> anyhow::Result<()>
{
    let edge = TestEdge::start().await?;
    // Member A takes one request at a time, and its app holds every request: once one is in,
    // the next requests picked for A wait at the edge for a stream.
    let held = Arc::new(tokio::sync::Notify::new());
    let in_a = held.clone();
    let slow = upstream::serve(move |_req| {
        let in_a = in_a.clone();
        async move {
            in_a.notify_one();
            tokio::time::sleep(Duration::from_secs(20)).await;
            hyper::Response::new(upstream::full("late"))
        }
    })
    .await?;
    let dir = tempfile::tempdir()?;
    let mut cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "moving", slow.addr)?;
    cmd.args(["--pooling-enabled", "--max-concurrent-requests", "1"]);
    let a = AgentProcess::spawn(cmd, &dir.path().join("a.log")).await?;
    let b_up = upstream::app("b").await?;
    let b = TestAgent::start(config(&edge, TOKEN, "moving", &b_up, true)).await?;
    let url = edge.url("moving.localhost");
    let get = |url: String| {
        tokio::spawn(async move {
            let resp = client()
                .get(url)
                .timeout(Duration::from_secs(15))
                .send()
                .await?;
            let by = resp
                .headers()
                .get("x-upstream")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            anyhow::Ok((resp.status().as_u16(), by))
        })
    };
    // Requests until one sits in A's app (the others B answers).
    let mut occupying = Vec::new();
    let occupied = async {
        loop {
            occupying.push(get(url.clone()));
            tokio::select! {
                () = held.notified() => break,
                () = tokio::time::sleep(Duration::from_millis(100)) => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(10), occupied).await?;
    // Twenty more: about half are picked for A and wait for its only stream. Then A's process
    // dies; the edge notices within about a second, and the waiting requests, which never
    // reached A, go to B.
    let waiting: Vec<_> = (0..20).map(|_| get(url.clone())).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.kill().await?;
    for request in waiting {
        let (status, by) = request.await??;
        assert_eq!(
            (status, by.as_str()),
            (200, "b"),
            "a waiting request failed"
        );
    }
    b.stop().await?;
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

//! Each request error code, produced by real failures.

use sluice_e2e::process::agent_command;
use sluice_e2e::{
    client, closed_port, endpoint_freed, error_code, upstream, within, AgentProcess, TestAgent,
    TestEdge, TOKEN,
};
use std::time::{Duration, Instant};

async fn expect_error(url: &str, status: u16, code: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let resp = client().get(url).send().await?;
    let elapsed = started.elapsed();
    let headers = resp.headers().clone();
    let got = resp.status().as_u16();
    let body = resp.text().await?;
    assert_eq!(got, status, "{url}: body {body}");
    assert_eq!(
        error_code(&headers).as_deref(),
        Some(code),
        "{url}: {headers:?}"
    );
    assert!(body.contains(code), "{url}: body {body}");
    assert!(!headers.contains_key("sluice-agent-error"));
    Ok(elapsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_8012() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "down", closed_port()?)).await?;
    expect_error(agent.url(), 502, "ERR_SLUICE_8012").await?;
    // The session survives upstream failures.
    expect_error(agent.url(), 502, "ERR_SLUICE_8012").await?;
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_is_504_3005_after_the_agents_timeout() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("slow").await?;
    let mut config = edge.agent_config(TOKEN, "slow", up.addr);
    config.upstream_timeout = Duration::from_secs(1);
    let agent = TestAgent::start(config).await?;
    let took = expect_error(
        &format!("{}/sleep/5000", agent.url()),
        504,
        "ERR_SLUICE_3005",
    )
    .await?;
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(4),
        "504 after {took:?}, expected about 1 s"
    );
    // A fast answer on the same endpoint still works.
    let resp = client()
        .get(format!("{}/sleep/10", agent.url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_at_its_stream_limit_is_503_3008() -> anyhow::Result<()> {
    let edge = TestEdge::start_with(|c| c.stream_open_timeout = Duration::from_millis(500)).await?;
    // The upstream reports each request as it arrives, then answers after 3 s.
    let (arrived_tx, mut arrived) = tokio::sync::mpsc::unbounded_channel();
    let up = upstream::serve(move |_req| {
        let _ = arrived_tx.send(());
        async {
            tokio::time::sleep(Duration::from_secs(3)).await;
            http::Response::new(upstream::full("held"))
        }
    })
    .await?;
    let mut config = edge.agent_config(TOKEN, "narrow", up.addr);
    config.max_concurrent_requests = 1;
    let agent = TestAgent::start(config).await?;
    // One slow request holds the only stream the agent grants.
    let slow = tokio::spawn(client().get(agent.url()).send());
    within(
        Duration::from_secs(5),
        "the first request upstream",
        arrived.recv(),
    )
    .await?;
    let took = expect_error(agent.url(), 503, "ERR_SLUICE_3008").await?;
    assert!(took < Duration::from_secs(2), "503 after {took:?}");
    let slow = slow.await??;
    assert_eq!(
        slow.status(),
        200,
        "the request holding the stream still completes"
    );
    assert_eq!(slow.text().await?, "held");
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_upstream_is_502_3004() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::garbage().await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "garbage", up.addr)).await?;
    expect_error(agent.url(), 502, "ERR_SLUICE_3004").await?;
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_is_502_3210_until_its_route_expires() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("victim").await?;
    let dir = tempfile::tempdir()?;
    let cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "victim", up.addr)?;
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let url = agent.url.clone();
    let resp = client().get(&url).send().await?;
    assert_eq!(resp.status(), 200);
    agent.kill().await?;
    if sluice_e2e::test_transport() == sluice_agent::TransportChoice::Tcp {
        // Over TCP the kernel resets the dead process's connection: the route goes at once.
        endpoint_freed(&url, Duration::from_secs(2)).await?;
        edge.shutdown().await;
        return Ok(());
    }
    // The edge has not noticed yet (no close frame): the route is there, the agent is not.
    let took = expect_error(&url, 502, "ERR_SLUICE_3210").await?;
    println!("502 ERR_SLUICE_3210 after {took:?}");
    // Once the QUIC idle timeout has passed, the route is gone.
    endpoint_freed(&url, Duration::from_secs(30)).await?;
    edge.shutdown().await;
    Ok(())
}

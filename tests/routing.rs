//! Routing by `Host`: exact names, wildcards (most specific wins), unknown hosts.

use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{
    assert_endpoint_not_found, client, error_code, h1_connect, TestAgent, TestEdge, OTHER_TOKEN,
    TOKEN,
};
use std::time::Duration;

async fn upstream_name(c: &reqwest::Client, url: &str) -> anyhow::Result<String> {
    let resp = c.get(url).send().await?;
    anyhow::ensure!(resp.status() == 200, "{url}: {}", resp.status());
    Ok(Seen::parse(&resp.text().await?)?.upstream)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_each_get_their_own_hosts_traffic() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (up_a, up_b) = (upstream::app("alpha").await?, upstream::app("beta").await?);
    let a = TestAgent::start(edge.agent_config(TOKEN, "alpha", up_a.addr)).await?;
    let b = TestAgent::start(edge.agent_config(OTHER_TOKEN, "beta", up_b.addr)).await?;
    assert_eq!(a.url(), edge.url("alpha.localhost"));
    assert_eq!(b.url(), edge.url("beta.localhost"));
    let c = client();
    for _ in 0..3 {
        assert_eq!(
            upstream_name(&c, &edge.url("alpha.localhost")).await?,
            "alpha"
        );
        assert_eq!(
            upstream_name(&c, &edge.url("beta.localhost")).await?,
            "beta"
        );
    }
    // Host matching ignores case and the port.
    let seen = c
        .get(format!("http://127.0.0.1:{}/x?y=1", edge.http_addr.port()))
        .header("host", "BETA.LocalHost:1234")
        .send()
        .await?;
    assert_eq!(seen.status(), 200);
    let seen = Seen::parse(&seen.text().await?)?;
    assert_eq!(seen.upstream, "beta");
    assert_eq!(seen.uri, "/x?y=1");
    a.stop().await?;
    b.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exact_beats_wildcard_and_the_most_specific_wildcard_wins() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up_wild = upstream::app("wild").await?;
    let up_deep = upstream::app("deep-wild").await?;
    let up_exact = upstream::app("exact").await?;
    let wild = TestAgent::start(edge.agent_config(TOKEN, "*.team.localhost", up_wild.addr)).await?;
    let deep =
        TestAgent::start(edge.agent_config(TOKEN, "*.eu.team.localhost", up_deep.addr)).await?;
    let exact =
        TestAgent::start(edge.agent_config(TOKEN, "api.team.localhost", up_exact.addr)).await?;
    assert_eq!(wild.hostnames, ["*.team.localhost"]);
    let c = client();
    for (host, want) in [
        ("api.team.localhost", "exact"),
        ("web.team.localhost", "wild"),
        ("a.b.team.localhost", "wild"),
        ("x.eu.team.localhost", "deep-wild"),
        ("api.eu.team.localhost", "deep-wild"),
    ] {
        assert_eq!(upstream_name(&c, &edge.url(host)).await?, want, "{host}");
    }
    // The wildcard does not cover its own base name.
    let resp = c.get(edge.url("team.localhost")).send().await?;
    assert_endpoint_not_found(&resp);
    for agent in [wild, deep, exact] {
        agent.stop().await?;
    }
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_host_is_404_3200() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("known").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "known", up.addr)).await?;
    let c = client();
    for host in [
        "nobody.localhost",
        "known.localhost.evil",
        "knownx.localhost",
        "127.0.0.1",
    ] {
        let resp = c.get(edge.url(host)).send().await?;
        assert_eq!(resp.status(), 404, "{host}");
        assert_eq!(
            error_code(resp.headers()).as_deref(),
            Some("ERR_SLUICE_3200"),
            "{host}"
        );
        let body = resp.text().await?;
        assert!(body.contains("ERR_SLUICE_3200"), "{host}: {body}");
    }
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_without_host_is_400_3206() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let mut conn = h1_connect(edge.http_addr).await?;
    // HTTP/1.0 permits leaving Host out; hyper's connection-level client adds none. The
    // public listener reads 24 bytes to tell HTTP/1 from h2c, so the request carries a header
    // to be longer than that (docs/architecture.md, "Trailers and HTTP/2").
    let req = http::Request::builder()
        .uri("/")
        .version(http::Version::HTTP_10)
        .header("user-agent", "sluice-test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))?;
    let resp = tokio::time::timeout(Duration::from_secs(10), conn.send_request(req)).await??;
    assert_eq!(resp.status(), 400);
    assert_eq!(
        error_code(resp.headers()).as_deref(),
        Some("ERR_SLUICE_3206")
    );
    edge.shutdown().await;
    Ok(())
}

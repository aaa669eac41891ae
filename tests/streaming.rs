//! Bulk and long-lived traffic: gigabyte uploads and downloads through the real binaries with
//! bounded memory, websockets, and many concurrent requests over one agent.

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use sluice_e2e::data::{self, SharedDigest};
use sluice_e2e::process::agent_command;
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{any_port, client, within, AgentProcess, EdgeProcess, TestAgent, TestEdge, TOKEN};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

const GIB: u64 = 1 << 30;
/// Neither process may hold more than this at its peak while a gigabyte passes through.
const RSS_LIMIT: u64 = 320 << 20;

struct Binaries {
    edge: EdgeProcess,
    agent: AgentProcess,
    _up: Upstream,
    _dir: tempfile::TempDir,
}

async fn binaries(name: &str) -> anyhow::Result<Binaries> {
    let dir = tempfile::tempdir()?;
    let up = upstream::app(name).await?;
    let edge = EdgeProcess::spawn(dir.path(), any_port(), any_port(), TOKEN).await?;
    let cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, name, up.addr)?;
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    Ok(Binaries {
        edge,
        agent,
        _up: up,
        _dir: dir,
    })
}

fn check_memory(b: &Binaries) -> anyhow::Result<()> {
    let (edge, agent) = (b.edge.peak_rss()?, b.agent.peak_rss()?);
    println!(
        "peak RSS: edge {} MiB, agent {} MiB",
        edge >> 20,
        agent >> 20
    );
    assert!(edge < RSS_LIMIT, "edge peaked at {} MiB", edge >> 20);
    assert!(agent < RSS_LIMIT, "agent peaked at {} MiB", agent >> 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gib_upload_arrives_intact_with_bounded_memory() -> anyhow::Result<()> {
    let b = binaries("upload").await?;
    let digest = SharedDigest::default();
    let body = reqwest::Body::wrap_stream(data::hashed_stream(GIB, 7, digest.clone()));
    let started = Instant::now();
    let resp = client()
        .post(format!("{}/sha256", b.agent.url))
        .body(body)
        .send()
        .await;
    let resp = match resp {
        Ok(r) => r,
        Err(e) => anyhow::bail!(
            "upload failed: {e:?}\n{}\n{}",
            b.edge.output(),
            b.agent.output()
        ),
    };
    assert_eq!(resp.status(), 200);
    let answer = resp.text().await?;
    let elapsed = started.elapsed();
    let (sent_digest, sent_len) = digest.finish();
    assert_eq!(sent_len, GIB);
    assert_eq!(
        answer,
        format!("{sent_digest} {GIB}"),
        "upstream's digest and length"
    );
    println!(
        "1 GiB upload in {elapsed:.2?} ({:.0} MiB/s)",
        1024.0 / elapsed.as_secs_f64()
    );
    check_memory(&b)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gib_download_arrives_intact_with_bounded_memory() -> anyhow::Result<()> {
    let b = binaries("download").await?;
    let expected = tokio::task::spawn_blocking(|| data::digest_of(GIB, 11));
    let started = Instant::now();
    let resp = client()
        .get(format!("{}/bytes/{GIB}/11", b.agent.url))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.content_length(), Some(GIB));
    let (got, len) = data::read_digest(resp)
        .await
        .with_context(|| format!("{}\n{}", b.edge.output(), b.agent.output()))?;
    let elapsed = started.elapsed();
    assert_eq!(len, GIB);
    assert_eq!(got, expected.await?);
    println!(
        "1 GiB download in {elapsed:.2?} ({:.0} MiB/s)",
        1024.0 / elapsed.as_secs_f64()
    );
    check_memory(&b)?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_through_the_tunnel() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::websocket_echo().await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "ws", up.addr)).await?;
    let tcp = tokio::net::TcpStream::connect(edge.http_addr).await?;
    let url = format!("ws://ws.localhost:{}/socket", edge.http_addr.port());
    let (mut ws, resp) = within(
        Duration::from_secs(10),
        "websocket handshake",
        tokio_tungstenite::client_async(url, tcp),
    )
    .await??;
    assert_eq!(resp.status(), 101);
    let big: Vec<u8> = data::Generator::new(1 << 20, 5)
        .flat_map(|c| c.to_vec())
        .collect();
    within(Duration::from_secs(30), "echoes", async {
        for i in 0..50 {
            ws.send(Message::text(format!("hello {i}"))).await?;
            let echo = ws
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("closed before echo {i}"))?
                .with_context(|| format!("echo {i}"))?;
            assert_eq!(echo, Message::text(format!("hello {i}")));
        }
        ws.send(Message::binary(big.clone())).await?;
        let echo = ws
            .next()
            .await
            .ok_or_else(|| anyhow::anyhow!("closed before the 1 MiB echo"))?
            .context("1 MiB echo")?;
        assert_eq!(echo.into_data().as_ref(), &big[..]);
        ws.close(None).await.context("sending close")?;
        // The close handshake completes: the server's close frame comes back through the tunnel.
        let mut closed = false;
        while let Some(msg) = ws.next().await {
            if msg.context("awaiting the server's close frame")?.is_close() {
                closed = true;
                break;
            }
        }
        anyhow::ensure!(closed, "no close frame came back");
        // The upstream then closes its connection, and so does the edge with the client's, as
        // the upstream would directly: the client is not left waiting for its own timeout.
        let end = within(Duration::from_secs(2), "the connection's end", ws.next()).await?;
        anyhow::ensure!(end.is_none(), "after the close handshake: {end:?}");
        anyhow::Ok(())
    })
    .await??;
    // A client closes its side once the server's ended (until then the agent's stop would
    // wait for the connection to drain).
    drop(ws);
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_requests_over_one_agent() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("busy").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "busy", up.addr)).await?;
    let c = client();
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..200u64 {
        let (c, url) = (c.clone(), format!("{}/item/{i}", agent.url()));
        set.spawn(async move {
            let resp = c.get(&url).send().await?;
            anyhow::ensure!(resp.status() == 200, "{url}: {}", resp.status());
            let item = resp.headers().get("x-item").cloned();
            anyhow::ensure!(item == Some(i.into()), "{url}: x-item {item:?}");
            let body = resp.bytes().await?;
            anyhow::ensure!(body == upstream::item_body(i), "{url}: wrong body");
            anyhow::Ok(())
        });
    }
    let mut failures = Vec::new();
    within(Duration::from_secs(60), "200 requests", async {
        while let Some(r) = set.join_next().await {
            if let Err(e) = r.map_err(anyhow::Error::from).and_then(|r| r) {
                failures.push(e.to_string());
            }
        }
    })
    .await?;
    println!("200 concurrent requests in {:.2?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} failed: {failures:#?}",
        failures.len()
    );
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

//! Proxy header semantics end to end, and HTTP/1.1 keep-alive on the client connection.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{client, error_code, h1_connect, within, TestAgent, TestEdge, TOKEN};
use std::time::Duration;

fn request(
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> anyhow::Result<http::Request<Full<Bytes>>> {
    let mut b = http::Request::builder().uri(path).header("host", host);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Ok(b.body(Full::new(Bytes::new()))?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_headers_are_appended_and_host_is_kept() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("fwd").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "fwd", up.addr)).await?;
    let c = client();

    // Client-sent values are preserved, the edge's come last.
    let resp = c
        .get(edge.url("fwd.localhost"))
        .header("x-forwarded-for", "203.0.113.9, 198.51.100.2")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "public.example")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let seen = Seen::parse(&resp.text().await?)?;
    assert_eq!(
        seen.header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 198.51.100.2, 127.0.0.1")
    );
    assert_eq!(
        seen.header("x-forwarded-proto").as_deref(),
        Some("https, http")
    );
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("public.example")
    );

    // Without client values, only ours; x-forwarded-host is the public host (no port).
    let resp = c.get(edge.url("fwd.localhost")).send().await?;
    let seen = Seen::parse(&resp.text().await?)?;
    assert_eq!(seen.header("x-forwarded-for").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("fwd.localhost")
    );
    // The default host-header mode preserves the public Host.
    let host = seen.header("host").unwrap_or_default();
    assert!(
        host.starts_with("fwd.localhost"),
        "host seen upstream: {host}"
    );
    assert!(seen.header("sluice-agent-error").is_none());

    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
/// `te: trailers` and `Trailer` are not checked here: trailers pass end to end, and
/// `tests/trailers.rs` checks that both reach the other side (issue #14).
async fn hop_by_hop_headers_are_dropped_both_ways() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("hop").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "hop", up.addr)).await?;
    let host = "hop.localhost";

    let mut conn = h1_connect(edge.http_addr).await?;
    let req = request(
        host,
        "/echo",
        &[
            ("connection", "keep-alive, x-conn-named"),
            ("x-conn-named", "must not pass"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic c2VjcmV0"),
            ("proxy-connection", "keep-alive"),
            ("x-end-to-end", "kept"),
        ],
    )?;
    let resp = within(Duration::from_secs(10), "echo", conn.send_request(req)).await??;
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await?.to_bytes();
    let seen = Seen::parse(&String::from_utf8_lossy(&body))?;
    for name in [
        "x-conn-named",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
    ] {
        assert!(
            seen.header(name).is_none(),
            "{name} reached the upstream: {:?}",
            seen.headers
        );
    }
    if let Some(c) = seen.header("connection") {
        assert!(!c.contains("x-conn-named"), "connection seen upstream: {c}");
    }
    assert_eq!(seen.header("x-end-to-end").as_deref(), Some("kept"));

    // Response direction.
    let resp = within(Duration::from_secs(10), "/hop", async {
        conn.ready().await?;
        conn.send_request(request(host, "/hop", &[])?)
            .await
            .map_err(anyhow::Error::from)
    })
    .await??;
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    for name in ["x-resp-secret", "keep-alive", "proxy-authenticate"] {
        assert!(!h.contains_key(name), "{name} reached the client: {h:?}");
    }
    assert_eq!(
        h.get("x-resp-kept").map(|v| v.as_bytes()),
        Some(&b"yes"[..])
    );
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_serves_many_requests_on_one_client_connection() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("ka").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "ka", up.addr)).await?;
    let mut conn = h1_connect(edge.http_addr).await?;
    for i in 0..10u64 {
        within(Duration::from_secs(5), "connection ready", conn.ready())
            .await?
            .map_err(|e| anyhow::anyhow!("request {i}: connection not reusable: {e}"))?;
        let req = if i % 2 == 0 {
            request("ka.localhost", &format!("/item/{i}"), &[])?
        } else {
            http::Request::builder()
                .method("POST")
                .uri(format!("/echo/{i}"))
                .header("host", "ka.localhost")
                .body(Full::new(Bytes::from(format!("body number {i}"))))?
        };
        let resp = within(Duration::from_secs(10), "response", conn.send_request(req)).await??;
        assert_eq!(resp.status(), 200, "request {i}");
        let body = resp.into_body().collect().await?.to_bytes();
        if i % 2 == 0 {
            assert_eq!(body, upstream::item_body(i), "request {i}");
        } else {
            let seen = Seen::parse(&String::from_utf8_lossy(&body))?;
            assert_eq!(seen.method, "POST");
            assert_eq!(seen.body, format!("body number {i}"));
        }
    }
    assert!(!conn.is_closed());
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_cannot_forge_sluice_error_codes() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("forger").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "forger", up.addr)).await?;
    let resp = client()
        .get(format!("{}/forge", agent.url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(error_code(resp.headers()), None, "{:?}", resp.headers());
    assert!(!resp.headers().contains_key("sluice-agent-error"));
    assert_eq!(resp.text().await?, "forged");
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expect_100_continue_upload_is_not_stalled() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let edge = TestEdge::start().await?;
    let up = upstream::app("expect").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "expect", up.addr)).await?;
    // What curl does for large uploads: headers first, body only after `100 Continue`.
    let mut tcp = tokio::net::TcpStream::connect(edge.http_addr).await?;
    tcp.write_all(
        b"POST /sha256 HTTP/1.1\r\nHost: expect.localhost\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
    )
    .await?;
    let mut buf = vec![0u8; 4096];
    let n = within(Duration::from_secs(2), "100 Continue", tcp.read(&mut buf)).await??;
    let head = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(head.starts_with("HTTP/1.1 100"), "got: {head}");
    tcp.write_all(b"hello").await?;
    let mut rest = Vec::new();
    within(Duration::from_secs(10), "final response", async {
        while !String::from_utf8_lossy(&rest).contains(" 5") {
            let n = tcp.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "closed: {}", String::from_utf8_lossy(&rest));
            rest.extend_from_slice(&buf[..n]);
        }
        anyhow::Ok(())
    })
    .await??;
    let text = String::from_utf8_lossy(&rest);
    assert!(text.contains("HTTP/1.1 200"), "{text}");
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

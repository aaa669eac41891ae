//! The Rust SDK against a real edge: the code of `agent/examples/expose_self.rs` (included
//! below, so the example is built and run by the tests) exposes an in-process service and a
//! request stream; the SDK also forwards to an upstream URL like `agent http`.

#[allow(dead_code)]
#[path = "../agent/examples/expose_self.rs"]
mod example;

use sluice_agent::sdk::{Session, StartError};
use sluice_e2e::upstream::app;
use sluice_e2e::{assert_endpoint_not_found, client, eventually, TestEdge, TOKEN};
use std::time::Duration;

fn builder(edge: &TestEdge, token: &str) -> sluice_agent::sdk::SessionBuilder {
    Session::builder(edge.tunnel_addr.to_string(), token).edge_ca(&edge.cert)
}

#[tokio::test]
async fn example_exposes_a_service_and_a_request_stream() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let tunnel = example::expose(builder(&edge, TOKEN)).await?;
    let port = edge.http_addr.port();
    assert_eq!(
        tunnel.urls(),
        [
            format!("http://hello.localhost:{port}"),
            format!("http://inbox.localhost:{port}")
        ]
    );
    let http = client();
    let r = http.get(format!("{}/abc", tunnel.urls()[0])).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await?, "hello from Rust, you asked for /abc");
    for (n, size) in [(1, 10usize), (2, 300_000)] {
        let r = http
            .post(&tunnel.urls()[1])
            .body(vec![b'x'; size])
            .send()
            .await?;
        assert_eq!(r.text().await?, format!("request {n}: {size} bytes"));
    }
    let hello = tunnel.urls()[0].clone();
    tunnel.stop().await?;
    // Stopped cleanly: the edge freed the hostname at once.
    eventually(Duration::from_secs(10), "hostname freed", || async {
        let r = http.get(&hello).send().await.ok()?;
        (r.status() == 404).then_some(r)
    })
    .await
    .map(|r| assert_endpoint_not_found(&r))
}

#[tokio::test]
async fn sdk_forwards_to_an_upstream_url_and_reports_refusals() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let upstream = app("sdk-upstream").await?;
    let tunnel = builder(&edge, TOKEN)
        .forward(
            Some("sdk-fwd"),
            format!("http://{}", upstream.addr).parse()?,
        )
        .start()
        .await?;
    let r = client()
        .get(format!("{}/hello", tunnel.urls()[0]))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    tunnel.stop().await?;

    let refused = builder(&edge, "not-a-token")
        .forward(None, format!("http://{}", upstream.addr).parse()?)
        .start()
        .await
        .expect_err("bad token");
    assert!(matches!(refused, StartError::Agent(_)), "{refused}");
    assert!(matches!(
        builder(&edge, TOKEN).start().await,
        Err(StartError::NoEndpoints)
    ));
    Ok(())
}

#[tokio::test]
async fn sdk_brings_a_tcp_endpoint_online_and_bytes_round_trip() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let edge = TestEdge::start_with(|c| c.tcp_ports = sluice_e2e::tcp_port_range(20).ok()).await?;
    let echo = sluice_e2e::upstream::tcp_echo().await?;
    let tunnel = builder(&edge, TOKEN)
        .tcp(None, &echo.addr.to_string())?
        .start()
        .await?;
    let url = &tunnel.urls()[0];
    let port: u16 = url
        .strip_prefix("tcp://localhost:")
        .and_then(|p| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not a tcp:// URL: {url}"))?;
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    conn.write_all(&sent).await?;
    conn.shutdown().await?;
    let mut back = Vec::new();
    sluice_e2e::within(
        Duration::from_secs(10),
        "the echo",
        conn.read_to_end(&mut back),
    )
    .await??;
    assert!(back == sent, "{} bytes back of {}", back.len(), sent.len());
    tunnel.stop().await?;
    Ok(())
}

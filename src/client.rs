//! Clients: a reqwest client whose resolver maps every name to 127.0.0.1 (so public URLs such
//! as `http://demo.localhost:PORT` work and nothing leaves loopback), and a single-connection
//! hyper client for keep-alive and raw-header tests.

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::Full;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Resolves every name to 127.0.0.1 (the URL's port is kept).
struct Loopback;

impl Resolve for Loopback {
    fn resolve(&self, _name: Name) -> Resolving {
        Box::pin(async {
            let addrs: Addrs = Box::new(std::iter::once(SocketAddr::from(([127, 0, 0, 1], 0))));
            Ok(addrs)
        })
    }
}

/// An HTTP client for public URLs on a test edge; requests time out after 120 s.
pub fn client() -> reqwest::Client {
    client_builder()
        .build()
        .unwrap_or_else(|e| panic!("reqwest client: {e}"))
}

/// [`client`]'s builder, to adjust.
pub fn client_builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .dns_resolver(Arc::new(Loopback))
        .no_proxy()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(120))
}

/// The `sluice-error-code` header, if any.
pub fn error_code(headers: &HeaderMap) -> Option<String> {
    headers
        .get("sluice-error-code")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// Asserts that `resp` is the edge's "no endpoint for this host" answer: 404 with
/// `ERR_SLUICE_3200`.
pub fn assert_endpoint_not_found(resp: &reqwest::Response) {
    assert_eq!(resp.status(), 404, "{:?}", resp.headers());
    assert_eq!(
        error_code(resp.headers()).as_deref(),
        Some("ERR_SLUICE_3200"),
        "{:?}",
        resp.headers()
    );
}

/// Polls `url` until the edge answers 404 `ERR_SLUICE_3200` (its route freed), for up to
/// `limit`. After an agent vanishes without a goodbye the edge frees the name once the QUIC idle
/// timeout has passed, a little later on a loaded machine; meanwhile requests reach the dead
/// session (502 `ERR_SLUICE_3210`).
pub async fn endpoint_freed(url: &str, limit: Duration) -> anyhow::Result<()> {
    let resp = crate::eventually(limit, "the edge to free the name", || async {
        let resp = client().get(url).send().await.ok()?;
        (resp.status() == 404).then_some(resp)
    })
    .await?;
    assert_endpoint_not_found(&resp);
    Ok(())
}

/// One HTTP/1.1 connection to `addr`; every request sent on the returned handle uses it.
pub async fn h1_connect(addr: SocketAddr) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(addr).await?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// Writes `request` as raw bytes on a new connection to `addr` and returns everything the
/// server sends until it closes the connection or 10 s pass (so requests should say
/// `Connection: close`). For inputs no well-behaved client library would produce.
pub async fn raw_exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream.write_all(request).await?;
    let mut answer = Vec::new();
    let read = stream.read_to_end(&mut answer);
    // A reset after the answer still leaves the answer in `answer`.
    let _ = tokio::time::timeout(Duration::from_secs(10), read).await;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// The status code of a raw HTTP/1.1 answer, if it has a status line.
pub fn raw_status(answer: &str) -> Option<u16> {
    answer.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

/// The status of `GET url`, and the name of the [`crate::upstream::app`] that answered (its
/// `x-upstream` header), if one did.
pub async fn probe(url: &str) -> anyhow::Result<(u16, Option<String>)> {
    let resp = client()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let name = resp
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    Ok((status, name))
}

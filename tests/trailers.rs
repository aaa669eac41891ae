//! HTTP/1.1 trailers through edge and agent, both ways, with a raw HTTP/1.1 client (bytes
//! written and parsed here, so nothing between the test and the wire drops or adds a field)
//! and a hyper HTTP/1.1 upstream.
//!
//! hyper sends response trailers only when the request carried `te: trailers` and only the
//! fields the response declared in `Trailer`, as RFC 9110 intends; so `te: trailers` has to
//! reach the upstream for any of this to work.

use bytes::Bytes;
use futures_util::stream;
use http::Response;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use sha2::{Digest, Sha256};
use sluice_agent::UpstreamProtocol;
use sluice_e2e::data::{hex, Generator};
use sluice_e2e::upstream::{self, Body, Upstream};
use sluice_e2e::{TestAgent, TestEdge, TOKEN};
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An upstream that reads the whole request (body and trailers) and answers, chunked, a JSON
/// report of it: `{method, te, trailer, trailers: [[name, value]…], body_len, body_sha256}`,
/// followed by the response trailers `x-trailer-one: sluice` and `x-body-sha256: HEX` (of the
/// response body), both declared in its `Trailer` header.
async fn reporting_upstream() -> anyhow::Result<Upstream> {
    upstream::serve(report).await
}

/// The same upstream speaking HTTP/2 with prior knowledge (h2c), as gRPC servers do: request
/// trailers arrive as an HTTP/2 trailers frame, without the HTTP/1.1 chunked encoding.
async fn reporting_h2_upstream() -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind(sluice_e2e::any_port()).await?;
    let addr = listener.local_addr()?;
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req| async move {
                    Ok::<_, std::convert::Infallible>(report(req).await)
                });
                let _ =
                    hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                        .serve_connection(hyper_util::rt::TokioIo::new(tcp), svc)
                        .await;
            });
        }
    });
    Ok((addr, task))
}

/// [`reporting_upstream`]'s answer to `req`.
async fn report(req: http::Request<hyper::body::Incoming>) -> Response<Body> {
    {
        let header = |name: &str| {
            let values: Vec<String> = req
                .headers()
                .get_all(name)
                .iter()
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
                .collect();
            (!values.is_empty()).then(|| values.join(", "))
        };
        let (te, trailer, method) = (header("te"), header("trailer"), req.method().to_string());
        let (mut hash, mut len, mut trailers) = (Sha256::new(), 0u64, Vec::new());
        let mut body = req.into_body();
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { break };
            match frame.into_data() {
                Ok(data) => {
                    hash.update(&data);
                    len += data.len() as u64;
                }
                Err(frame) => {
                    if let Ok(t) = frame.into_trailers() {
                        for (k, v) in &t {
                            let v = String::from_utf8_lossy(v.as_bytes()).into_owned();
                            trailers.push((k.to_string(), v));
                        }
                    }
                }
            }
        }
        let report = serde_json::json!({
            "method": method, "te": te, "trailer": trailer, "trailers": trailers,
            "body_len": len, "body_sha256": hex(&hash.finalize()),
        })
        .to_string()
        .into_bytes();
        let mut response_trailers = http::HeaderMap::new();
        response_trailers.insert("x-trailer-one", http::HeaderValue::from_static("sluice"));
        let digest = hex(&Sha256::digest(&report));
        response_trailers.insert(
            "x-body-sha256",
            digest.parse().unwrap_or_else(|_| unreachable!()),
        );
        // Three data frames and the trailers: no length known up front, so hyper chunks it.
        let third = report.len() / 3;
        let mut frames: Vec<Result<Frame<Bytes>, std::io::Error>> = [
            &report[..third],
            &report[third..2 * third],
            &report[2 * third..],
        ]
        .iter()
        .map(|part| Ok(Frame::data(Bytes::copy_from_slice(part))))
        .collect();
        frames.push(Ok(Frame::trailers(response_trailers)));
        let body: Body = BodyExt::boxed(StreamBody::new(stream::iter(frames)));
        let mut resp = Response::new(body);
        resp.headers_mut().insert(
            http::header::TRAILER,
            http::HeaderValue::from_static("x-trailer-one, x-body-sha256"),
        );
        resp
    }
}

/// Header or trailer fields in order, names lowercase.
type Fields = Vec<(String, String)>;

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct RawResponse {
    status: u16,
    headers: Fields,
    chunked: bool,
    body: Vec<u8>,
    trailers: Fields,
}

impl RawResponse {
    fn header(&self, name: &str) -> Option<&str> {
        find(&self.headers, name)
    }

    fn trailer(&self, name: &str) -> Option<&str> {
        find(&self.trailers, name)
    }

    /// The JSON report of [`reporting_upstream`].
    fn report(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            anyhow::anyhow!(
                "not the upstream's report ({e}): {self:?} {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

fn find<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Writes `request` on a new connection to `addr` and reads the answer until the server closes
/// (requests say `Connection: close`), for at most 10 s; then parses it.
async fn exchange(addr: SocketAddr, request: &[u8]) -> anyhow::Result<RawResponse> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(request).await?;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut raw)).await;
    anyhow::ensure!(
        read.is_ok(),
        "no end of response in 10 s; got so far:\n{}",
        String::from_utf8_lossy(&raw)
    );
    parse_response(&raw)
        .map_err(|e| anyhow::anyhow!("{e}; the raw answer:\n{}", String::from_utf8_lossy(&raw)))
}

/// Splits at the first CRLF: (line, rest).
fn line(buf: &[u8]) -> anyhow::Result<(&str, &[u8])> {
    let at = buf
        .windows(2)
        .position(|w| w == b"\r\n")
        .ok_or_else(|| anyhow::anyhow!("unterminated line"))?;
    Ok((std::str::from_utf8(&buf[..at])?, &buf[at + 2..]))
}

/// Header (or trailer) fields up to and including the empty line: (fields, rest).
fn fields(mut buf: &[u8]) -> anyhow::Result<(Fields, &[u8])> {
    let mut out = Vec::new();
    loop {
        let (l, rest) = line(buf)?;
        buf = rest;
        if l.is_empty() {
            return Ok((out, buf));
        }
        let (k, v) = l
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("bad field line {l:?}"))?;
        out.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
}

fn parse_response(raw: &[u8]) -> anyhow::Result<RawResponse> {
    let (status_line, rest) = line(raw)?;
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("bad status line {status_line:?}"))?;
    let (headers, mut rest) = fields(rest)?;
    let chunked = find(&headers, "transfer-encoding")
        .is_some_and(|te| te.to_ascii_lowercase().contains("chunked"));
    let (mut body, mut trailers) = (Vec::new(), Vec::new());
    if chunked {
        loop {
            let (size_line, after) = line(rest)?;
            let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                .map_err(|e| anyhow::anyhow!("bad chunk size {size_line:?}: {e}"))?;
            if size == 0 {
                (trailers, _) = fields(after)?;
                break;
            }
            anyhow::ensure!(after.len() >= size + 2, "chunk of {size} cut short");
            body.extend_from_slice(&after[..size]);
            anyhow::ensure!(
                &after[size..size + 2] == b"\r\n",
                "chunk not followed by CRLF"
            );
            rest = &after[size + 2..];
        }
    } else {
        let len = find(&headers, "content-length").map_or(Ok(rest.len()), str::parse)?;
        anyhow::ensure!(rest.len() >= len, "body cut short: {} of {len}", rest.len());
        body.extend_from_slice(&rest[..len]);
    }
    Ok(RawResponse {
        status,
        headers,
        chunked,
        body,
        trailers,
    })
}

/// `GET` with `TE: trailers` to `addr` for `host`: the upstream reports it saw `te: trailers`.
async fn check_te_reaches_the_upstream(addr: SocketAddr, host: &str) -> anyhow::Result<()> {
    let request =
        format!("GET /plain HTTP/1.1\r\nHost: {host}\r\nTE: trailers\r\nConnection: close\r\n\r\n");
    let resp = exchange(addr, request.as_bytes()).await?;
    anyhow::ensure!(resp.status == 200, "{resp:?}");
    let report = resp.report()?;
    println!("upstream saw: {report}");
    anyhow::ensure!(report["te"] == "trailers", "te at the upstream: {report}");
    Ok(())
}

/// `GET` with `TE: trailers`: the response is chunked, announces its trailers in `Trailer` and
/// ends with them, the digest trailer matching the body.
async fn check_response_trailers(addr: SocketAddr, host: &str) -> anyhow::Result<()> {
    let request = format!(
        "GET /report HTTP/1.1\r\nHost: {host}\r\nTE: trailers\r\nConnection: close\r\n\r\n"
    );
    let resp = exchange(addr, request.as_bytes()).await?;
    println!(
        "status {}, chunked {}, headers {:?}, trailers {:?}, body {}",
        resp.status,
        resp.chunked,
        resp.headers,
        resp.trailers,
        String::from_utf8_lossy(&resp.body)
    );
    anyhow::ensure!(resp.status == 200, "{resp:?}");
    let report = resp.report()?;
    anyhow::ensure!(resp.chunked, "trailers need a chunked response: {resp:?}");
    anyhow::ensure!(
        resp.trailer("x-trailer-one") == Some("sluice"),
        "response trailers {:?} (te at the upstream: {})",
        resp.trailers,
        report["te"]
    );
    let digest = hex(&Sha256::digest(&resp.body));
    anyhow::ensure!(
        resp.trailer("x-body-sha256") == Some(digest.as_str()),
        "the trailer's digest of the body it follows ({digest}): {:?}",
        resp.trailers
    );
    // The fields the trailers hold are announced in the head.
    let announced = resp
        .header("trailer")
        .unwrap_or_default()
        .to_ascii_lowercase();
    anyhow::ensure!(
        announced.contains("x-trailer-one") && announced.contains("x-body-sha256"),
        "Trailer header: {announced:?}"
    );
    Ok(())
}

/// 300 KiB of generated bytes and their SHA-256.
fn upload_body() -> (Vec<u8>, String) {
    let body: Vec<u8> = Generator::new(300 << 10, 21)
        .flat_map(|c| c.to_vec())
        .collect();
    let digest = hex(&Sha256::digest(&body));
    (body, digest)
}

/// `body` in chunks of 50,000 bytes, the last chunk, and two trailer fields (one `digest`).
fn chunked_with_trailers(body: &[u8], digest: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in body.chunks(50_000) {
        out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        out.extend_from_slice(chunk);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(
        format!("0\r\nx-upload-sha256: {digest}\r\nx-upload-note: two fields\r\n\r\n").as_bytes(),
    );
    out
}

/// The head of the chunked upload with trailers, plus `extra` header lines.
fn upload_head(host: &str, extra: &str) -> String {
    format!(
        "POST /upload HTTP/1.1\r\nHost: {host}\r\nTE: trailers\r\nTransfer-Encoding: chunked\r\n\
         Trailer: x-upload-sha256, x-upload-note\r\n{extra}Connection: close\r\n\r\n"
    )
}

/// A chunked `POST` of 300 KiB with two trailers (one the body's digest): the upstream gets
/// the body and both trailers.
async fn check_request_trailers(addr: SocketAddr, host: &str) -> anyhow::Result<()> {
    let (body, digest) = upload_body();
    let mut request = upload_head(host, "").into_bytes();
    request.extend_from_slice(&chunked_with_trailers(&body, &digest));
    let resp = exchange(addr, &request).await?;
    check_upload_report(&resp, &body, digest)
}

/// The upstream's report of the upload: method, body and both trailers as sent.
fn check_upload_report(resp: &RawResponse, body: &[u8], digest: String) -> anyhow::Result<()> {
    anyhow::ensure!(resp.status == 200, "{resp:?}");
    let report = resp.report()?;
    println!("upstream saw: {report}");
    anyhow::ensure!(report["method"] == "POST", "{report}");
    anyhow::ensure!(report["body_len"] == body.len() as u64, "{report}");
    anyhow::ensure!(report["body_sha256"] == digest.as_str(), "{report}");
    let mut trailers: Fields = report["trailers"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p[0].as_str().unwrap_or("").into(),
                        p[1].as_str().unwrap_or("").into(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    trailers.sort();
    let expected = [
        ("x-upload-note".to_string(), "two fields".to_string()),
        ("x-upload-sha256".to_string(), digest),
    ];
    anyhow::ensure!(
        trailers == expected,
        "request trailers at the upstream: {report}"
    );
    Ok(())
}

/// The chunked upload with trailers, sent as curl sends large uploads: the head alone with
/// `Expect: 100-continue`, the body only after `100 Continue` came back. The upstream gets the
/// body and both trailers.
async fn check_expect_continue_upload(addr: SocketAddr, host: &str) -> anyhow::Result<()> {
    let (body, digest) = upload_body();
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    tcp.write_all(upload_head(host, "Expect: 100-continue\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    let interim_end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(at) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
                return anyhow::Ok(at + 4);
            }
            let n = tcp.read(&mut buf).await?;
            anyhow::ensure!(n > 0, "closed: {}", String::from_utf8_lossy(&raw));
            raw.extend_from_slice(&buf[..n]);
        }
    })
    .await
    .map_err(|_| anyhow::anyhow!("no 100 Continue in 5 s: {}", String::from_utf8_lossy(&raw)))??;
    anyhow::ensure!(
        raw.starts_with(b"HTTP/1.1 100"),
        "expected 100 Continue before the body, got: {}",
        String::from_utf8_lossy(&raw)
    );
    let mut rest = raw.split_off(interim_end);
    tcp.write_all(&chunked_with_trailers(&body, &digest))
        .await?;
    let read = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut rest)).await;
    anyhow::ensure!(read.is_ok(), "no end of response in 10 s");
    let resp = parse_response(&rest)
        .map_err(|e| anyhow::anyhow!("{e}; the raw answer:\n{}", String::from_utf8_lossy(&rest)))?;
    check_upload_report(&resp, &body, digest)
}

/// The upstream of a [`Setup`], stopped when dropped.
enum Up {
    Http1 { _server: Upstream },
    Http2(tokio::task::JoinHandle<()>),
}

impl Drop for Up {
    fn drop(&mut self) {
        if let Up::Http2(task) = self {
            task.abort();
        }
    }
}

/// An edge, the reporting upstream and an agent for `name`; the `Host` to send.
struct Setup {
    edge: TestEdge,
    agent: TestAgent,
    host: String,
    _up: Up,
}

async fn setup(name: &str) -> anyhow::Result<Setup> {
    let edge = TestEdge::start().await?;
    let up = reporting_upstream().await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, name, up.addr)).await?;
    let host = format!("{}:{}", agent.hostnames[0], edge.http_addr.port());
    Ok(Setup {
        edge,
        agent,
        host,
        _up: Up::Http1 { _server: up },
    })
}

/// [`setup`] with the reporting upstream on HTTP/2 (`--upstream-protocol http2`, h2c).
async fn setup_h2(name: &str) -> anyhow::Result<Setup> {
    let edge = TestEdge::start().await?;
    let (addr, task) = reporting_h2_upstream().await?;
    let up = Up::Http2(task);
    let mut config = edge.agent_config(TOKEN, name, addr);
    config.endpoints[0].upstream_protocol = UpstreamProtocol::Http2;
    let agent = TestAgent::start(config).await?;
    let host = format!("{}:{}", agent.hostnames[0], edge.http_addr.port());
    Ok(Setup {
        edge,
        agent,
        host,
        _up: up,
    })
}

impl Setup {
    /// Runs `check` through the edge, then stops agent and edge.
    async fn check<F, Fut>(self, check: F) -> anyhow::Result<()>
    where
        F: FnOnce(SocketAddr, String) -> Fut,
        Fut: std::future::Future<Output = anyhow::Result<()>>,
    {
        let result = check(self.edge.http_addr, self.host.clone()).await;
        self.agent.stop().await?;
        self.edge.shutdown().await;
        result
    }
}

/// The control: the raw client and the upstream exchange trailers both ways when nothing is
/// between them, so a failure of the tests below is the tunnel's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_both_ways_without_the_tunnel() -> anyhow::Result<()> {
    let up = reporting_upstream().await?;
    let host = up.addr.to_string();
    check_te_reaches_the_upstream(up.addr, &host).await?;
    check_response_trailers(up.addr, &host).await?;
    check_request_trailers(up.addr, &host).await?;
    check_expect_continue_upload(up.addr, &host).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn te_trailers_from_the_client_reaches_the_upstream() -> anyhow::Result<()> {
    let s = setup("te").await?;
    s.check(|addr, host| async move { check_te_reaches_the_upstream(addr, &host).await })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_response_trailers_reach_an_http1_client() -> anyhow::Result<()> {
    let s = setup("resptrail").await?;
    s.check(|addr, host| async move { check_response_trailers(addr, &host).await })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_trailers_reach_the_upstream() -> anyhow::Result<()> {
    let s = setup("reqtrail").await?;
    s.check(|addr, host| async move { check_request_trailers(addr, &host).await })
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_with_trailers_after_100_continue_reaches_the_upstream() -> anyhow::Result<()>
{
    let s = setup("expect").await?;
    s.check(|addr, host| async move { check_expect_continue_upload(addr, &host).await })
        .await
}

/// gRPC-like: an HTTP/1.1 client's request trailers reach an HTTP/2 upstream as an HTTP/2
/// trailers frame.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_request_trailers_reach_an_http2_upstream() -> anyhow::Result<()> {
    let s = setup_h2("reqtrail2").await?;
    s.check(|addr, host| async move { check_request_trailers(addr, &host).await })
        .await
}

/// An HTTP/2 upstream's response trailers (declared in its `Trailer` field) reach an HTTP/1.1
/// client that sent `te: trailers`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_upstream_response_trailers_reach_an_http1_client() -> anyhow::Result<()> {
    let s = setup_h2("resptrail2").await?;
    s.check(|addr, host| async move { check_response_trailers(addr, &host).await })
        .await
}

//! request-body-find-replace, response-body-find-replace and sse-find-replace through a real
//! edge and agent: bodies rewritten to another length arrive whole over HTTP/1.1 (chunked,
//! on a reused connection) and h2c, and an event stream is rewritten event by event while
//! it streams.

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use sluice_e2e::upstream::{self, Body, Upstream};
use sluice_e2e::{client, TestAgent, TestEdge, TOKEN};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, Mutex};

const POLICY: &str = "\
on_http_request:
  - actions:
      - type: request-body-find-replace
        config:
          replacements:
            - from: 'card=([0-9]{4})[0-9]{12}'
              to: 'card=$1-redacted'
on_http_response:
  - expressions: [\"req.url.path == '/fixed'\"]
    actions:
      - type: response-body-find-replace
        config:
          replacements:
            - from: 'internal-host-[0-9]+'
              to: 'public'
on_event_stream_message:
  - actions:
      - type: sse-find-replace
        config:
          replacements:
            - from: 'sk-[a-z0-9]+'
              to: '[key]'
";

/// The upstream's fixed body: `internal-host-N` every 40 bytes or so, 300 KiB in all, so
/// matches fall across the chunks the body travels in.
fn fixed_body() -> String {
    (0..8000)
        .map(|i| format!("row {i:05}: internal-host-{i} ok\n"))
        .collect()
}

/// What the policy makes of [`fixed_body`].
fn fixed_rewritten() -> String {
    (0..8000)
        .map(|i| format!("row {i:05}: public ok\n"))
        .collect()
}

/// The upstream: `/fixed` answers [`fixed_body`] with a `content-length`; `/echo` answers
/// the request body it got, prefixed with its `content-length` header (`-` without one);
/// `/events` streams two events, the second only once the test says so.
async fn app(next_event: Arc<Mutex<mpsc::Receiver<()>>>) -> anyhow::Result<Upstream> {
    upstream::serve(move |req| {
        let next_event = next_event.clone();
        async move {
            match req.uri().path() {
                "/fixed" => {
                    let body = fixed_body();
                    http::Response::builder()
                        .header("content-type", "text/plain")
                        .header("content-length", body.len())
                        .body(upstream::full(body))
                        .unwrap_or_default()
                }
                "/echo" => {
                    let len = req
                        .headers()
                        .get("content-length")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("-")
                        .to_string();
                    let body = req.into_body().collect().await.map(|b| b.to_bytes());
                    let body = body.unwrap_or_default();
                    let text = format!("{len}|{}", String::from_utf8_lossy(&body));
                    http::Response::new(upstream::full(text))
                }
                _ => events(next_event),
            }
        }
    })
    .await
}

/// An event stream: event 1 at once, event 2 after the test's signal, then the end.
fn events(next_event: Arc<Mutex<mpsc::Receiver<()>>>) -> http::Response<Body> {
    let step = futures_util::stream::unfold(0u8, move |n| {
        let next_event = next_event.clone();
        async move {
            let chunk: &'static str = match n {
                0 => "id: 1\ndata: first sk-abc123\n\n",
                1 => {
                    next_event.lock().await.recv().await?;
                    "id: 2\ndata: second sk-zz9\ndata: and more\n\n"
                }
                _ => return None,
            };
            Some((
                Ok::<_, std::io::Error>(Frame::data(Bytes::from(chunk))),
                n + 1,
            ))
        }
    });
    http::Response::builder()
        .header("content-type", "text/event-stream")
        .header("cache-control", "no-cache")
        .body(BodyExt::boxed(StreamBody::new(step)))
        .unwrap_or_default()
}

struct Setup {
    edge: TestEdge,
    agent: TestAgent,
    next_event: mpsc::Sender<()>,
    _app: Upstream,
}

async fn setup(name: &str) -> anyhow::Result<Setup> {
    let edge = TestEdge::start().await?;
    let (next_event, rx) = mpsc::channel(1);
    let app = app(Arc::new(Mutex::new(rx))).await?;
    let mut config = edge.agent_config(TOKEN, name, app.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: "body.yml".into(),
        kind: PolicyKind::Document,
        text: POLICY.into(),
    }];
    let agent = TestAgent::start(config).await?;
    Ok(Setup {
        edge,
        agent,
        next_event,
        _app: app,
    })
}

#[tokio::test]
async fn a_response_rewritten_to_another_length_arrives_whole_over_http1_and_h2c(
) -> anyhow::Result<()> {
    let s = setup("resbody").await?;
    let url = format!("{}/fixed", s.agent.url());
    let expected = fixed_rewritten();

    // HTTP/1.1 on one kept-alive connection: the second answer is only right if the first
    // one's framing was.
    let mut h1 = sluice_e2e::client::h1_connect(s.edge.http_addr).await?;
    for round in 0..2 {
        let req = http::Request::get("/fixed")
            .header("host", "resbody.localhost")
            .body(Full::new(Bytes::new()))?;
        let resp = h1.send_request(req).await?;
        assert_eq!(resp.status(), 200, "round {round}");
        assert_eq!(
            resp.headers()
                .get("transfer-encoding")
                .map(|v| v.as_bytes()),
            Some(&b"chunked"[..]),
            "{:?}",
            resp.headers()
        );
        assert!(resp.headers().get("content-length").is_none());
        let body = resp.into_body().collect().await?.to_bytes();
        assert!(
            body == expected.as_bytes(),
            "round {round}: {} bytes",
            body.len()
        );
    }

    // h2c: no length, the stream's end frames the body.
    let h2 = sluice_e2e::client::client_builder()
        .http2_prior_knowledge()
        .build()?;
    let resp = h2.get(&url).send().await?;
    assert_eq!(resp.version(), http::Version::HTTP_2);
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("content-length").is_none());
    let body = resp.text().await?;
    assert!(body == expected, "{} bytes", body.len());
    Ok(())
}

#[tokio::test]
async fn a_request_body_is_rewritten_on_its_way_up() -> anyhow::Result<()> {
    let s = setup("reqbody").await?;
    let url = format!("{}/echo", s.agent.url());
    // 200 KiB with a card number every 40 bytes: it crosses the chunks the body travels in.
    let body: String = (0..5000)
        .map(|i| format!("{i:06} card=4111{:012} end\n", i))
        .collect();
    let expected: String = (0..5000)
        .map(|i| format!("{i:06} card=4111-redacted end\n"))
        .collect();
    for http in [
        client(),
        sluice_e2e::client::client_builder()
            .http2_prior_knowledge()
            .build()?,
    ] {
        let resp = http.post(&url).body(body.clone()).send().await?;
        assert_eq!(resp.status(), 200);
        let text = resp.text().await?;
        let (len, seen) = text.split_once('|').unwrap_or_default();
        // The changed body carries no stale length up to the app.
        assert_eq!(len, "-");
        assert!(
            seen == expected,
            "{} bytes: {}",
            seen.len(),
            &seen[..seen.len().min(80)]
        );
    }
    Ok(())
}

/// Reads `resp` until `want` has arrived (or 10 s pass), returning everything read.
async fn read_until(
    stream: &mut (impl futures_util::Stream<Item = reqwest::Result<Bytes>> + Unpin),
    got: &mut String,
    want: &str,
) -> anyhow::Result<()> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.contains(want) {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(chunk)) => got.push_str(&String::from_utf8_lossy(&chunk?)),
            Ok(None) => anyhow::bail!("the stream ended before {want:?}; got {got:?}"),
            Err(_) => anyhow::bail!("no {want:?} within 10 s; got {got:?}"),
        }
    }
    Ok(())
}

#[tokio::test]
async fn an_event_stream_is_rewritten_event_by_event_while_it_streams() -> anyhow::Result<()> {
    let s = setup("sse").await?;
    let url = format!("{}/events", s.agent.url());
    for http in [
        client(),
        sluice_e2e::client::client_builder()
            .http2_prior_knowledge()
            .build()?,
    ] {
        let resp = http.get(&url).send().await?;
        assert_eq!(resp.status(), 200);
        let version = resp.version();
        let mut stream = resp.bytes_stream();
        let mut got = String::new();
        // The upstream sends event 2 only after the client has event 1, rewritten.
        read_until(&mut stream, &mut got, "id: 1\ndata: first [key]\n\n").await?;
        assert!(!got.contains("second"), "{version:?}: {got:?}");
        s.next_event.send(()).await?;
        read_until(&mut stream, &mut got, "data: and more\n\n").await?;
        assert_eq!(
            got, "id: 1\ndata: first [key]\n\nid: 2\ndata: second [key]\ndata: and more\n\n",
            "{version:?}"
        );
        // Nothing more but the end (HTTP/2 may close with an empty DATA frame).
        let rest = tokio::time::timeout(Duration::from_secs(10), async {
            let mut rest = Vec::new();
            while let Some(chunk) = stream.next().await {
                rest.extend_from_slice(&chunk?);
            }
            anyhow::Ok(rest)
        });
        assert_eq!(rest.await??, b"", "{version:?}: the stream ends");
    }
    Ok(())
}

//! Hostile input at the public listener: request smuggling shapes, malformed and oversized
//! heads, unusual request targets, and paths written to slip past policy rules.

use sluice_e2e::client::{raw_exchange, raw_status};
use sluice_e2e::upstream::{self, full, Upstream};
use sluice_e2e::{TestAgent, TestEdge, TOKEN};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::sync::{Arc, Mutex};

/// An edge with one agent named `NAME` whose upstream records every request target it sees.
struct Recorded {
    edge: TestEdge,
    agent: TestAgent,
    seen: Arc<Mutex<Vec<String>>>,
    _up: Upstream,
}

const NAME: &str = "target";
const HOST: &str = "target.localhost";

async fn recorded(policy: Option<&str>) -> anyhow::Result<Recorded> {
    let edge = TestEdge::start().await?;
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    let up = upstream::serve(move |req| {
        log.lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(req.uri().to_string());
        async { hyper::Response::new(full("upstream")) }
    })
    .await?;
    let mut config = edge.agent_config(TOKEN, NAME, up.addr);
    if let Some(policy) = policy {
        config.endpoints[0].policies = vec![PolicySource {
            origin: "test policy".into(),
            kind: PolicyKind::Document,
            text: policy.into(),
        }];
    }
    let agent = TestAgent::start(config).await?;
    Ok(Recorded {
        edge,
        agent,
        seen,
        _up: up,
    })
}

impl Recorded {
    async fn send(&self, request: &str) -> anyhow::Result<String> {
        raw_exchange(self.edge.http_addr, request.as_bytes()).await
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Sends `request` and asserts that the edge refused it (one of `statuses`, or a closed
    /// connection) and that nothing reached the upstream.
    async fn assert_refused(&self, request: &str, statuses: &[u16]) -> anyhow::Result<()> {
        let answer = self.send(request).await?;
        assert!(
            raw_status(&answer).is_some_and(|s| statuses.contains(&s)) || answer.is_empty(),
            "expected one of {statuses:?} or a closed connection, got: {answer}"
        );
        assert!(self.seen().is_empty(), "{:?}", self.seen());
        Ok(())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.agent.stop().await?;
        self.edge.shutdown().await;
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_cannot_smuggle_a_request() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    let smuggle = format!(
        "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n\
         0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    );
    let answer = t.send(&smuggle).await?;
    println!("{answer}");
    assert!(
        !t.seen().iter().any(|p| p.contains("smuggled")),
        "smuggled request reached the upstream: {:?}",
        t.seen()
    );
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_content_lengths_are_refused() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    t.assert_refused(
        &format!(
            "POST / HTTP/1.1\r\nHost: {HOST}\r\nContent-Length: 3\r\nContent-Length: 30\r\nConnection: close\r\n\r\nabc"
        ),
        &[400],
    )
    .await?;
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn obsolete_line_folding_is_refused() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    t.assert_refused(
        &format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Folded: a\r\n b\r\nConnection: close\r\n\r\n"
        ),
        &[400],
    )
    .await?;
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duplicate_host_headers_are_refused() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    t.assert_refused(
        &format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nHost: other.localhost\r\nConnection: close\r\n\r\n"
        ),
        &[400],
    )
    .await?;
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_naming_another_host_is_refused() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    t.assert_refused(
        &format!(
            "GET http://other.localhost/x HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        ),
        &[400],
    )
    .await?;
    // Absolute form naming the same host is an ordinary request.
    let answer = t
        .send(&format!(
            "GET http://{HOST}/same HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        ))
        .await?;
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
    assert_eq!(t.seen(), ["/same"]);
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_requests_are_refused() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    t.assert_refused(
        &format!("CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\nConnection: close\r\n\r\n"),
        &[400, 405],
    )
    .await?;
    t.stop().await
}

fn assert_431(answer: &str) {
    assert_eq!(raw_status(answer), Some(431), "{answer}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("sluice-error-code: err_sluice_3231"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_get_431() -> anyhow::Result<()> {
    let t = recorded(None).await?;
    let big = "a".repeat(100 * 1024);
    let answer = t
        .send(&format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\nX-Big: {big}\r\nConnection: close\r\n\r\n"
        ))
        .await?;
    assert_431(&answer);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let answer = t
        .send(&format!(
            "GET / HTTP/1.1\r\nHost: {HOST}\r\n{many}Connection: close\r\n\r\n"
        ))
        .await?;
    assert_431(&answer);
    assert!(t.seen().is_empty(), "{:?}", t.seen());
    t.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encoded_and_dotted_paths_cannot_slip_past_a_path_rule() -> anyhow::Result<()> {
    let policy = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/admin')"]
    actions:
      - type: deny
        config: { status_code: 403 }
"#;
    let t = recorded(Some(policy)).await?;
    for target in [
        "/admin",
        "/%61dmin",
        "/%61%64%6D%69%6E/x",
        "/x/../admin",
        "/./admin",
        "//admin",
    ] {
        let answer = t
            .send(&format!(
                "GET {target} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
            ))
            .await?;
        assert_eq!(raw_status(&answer), Some(403), "{target}: {answer}");
    }
    assert!(t.seen().is_empty(), "{:?}", t.seen());
    // Other paths pass, and the upstream sees the same normalized path the policy saw.
    let answer = t
        .send(&format!(
            "GET /%75ser/./profile HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n"
        ))
        .await?;
    assert_eq!(raw_status(&answer), Some(200), "{answer}");
    assert_eq!(t.seen(), ["/user/profile"]);
    t.stop().await
}

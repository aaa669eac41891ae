//! http-request through a real edge and agent, calling real local servers: the answer read by
//! later rules in both phases, retries, the time, size and redirect limits with their codes,
//! and the edge's outbound rules keeping policies away from its own networks.

use http_body_util::BodyExt;
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{client, TestAgent, TestEdge, TOKEN};
use sluice_edge::OutboundConfig;
use sluice_proto::control::{PolicyKind, PolicySource};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One request the called server got: method, path and query, headers, body.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    target: String,
    headers: http::HeaderMap,
    body: String,
}

/// The server policies call:
/// - `/check`: 200 `{"verdict":"ok"}` when `x-token: good`, else 403;
/// - `/flaky`: 503 twice, then 200 (the count is per server);
/// - `/big`: 300 KiB;
/// - `/loop`: a redirect to itself;
/// - `/to-v6`: a redirect to `[::1]` on the same port;
/// - `/slow`: answers after 5 s;
/// - anything else: 200 `seen`.
struct Called {
    server: Upstream,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Called {
    async fn start() -> anyhow::Result<Self> {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let flaky = Arc::new(AtomicUsize::new(0));
        let log = seen.clone();
        let server = upstream::serve(move |req| {
            let log = log.clone();
            let flaky = flaky.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = body
                    .collect()
                    .await
                    .map(|b| b.to_bytes())
                    .unwrap_or_default();
                let target = parts.uri.path_and_query().map(|p| p.to_string());
                log.lock().unwrap_or_else(|p| p.into_inner()).push(Seen {
                    method: parts.method.to_string(),
                    target: target.unwrap_or_default(),
                    headers: parts.headers.clone(),
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let reply = |status: u16, body: String| {
                    http::Response::builder()
                        .status(status)
                        .body(upstream::full(body))
                        .unwrap_or_default()
                };
                let redirect = |to: String| {
                    http::Response::builder()
                        .status(302)
                        .header("location", to)
                        .body(upstream::full(""))
                        .unwrap_or_default()
                };
                let port = parts
                    .headers
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .and_then(|h| h.rsplit(':').next())
                    .unwrap_or_default()
                    .to_string();
                match parts.uri.path() {
                    "/check" if parts.headers.get("x-token").is_some_and(|t| t == "good") => {
                        reply(200, r#"{"verdict":"ok"}"#.into())
                    }
                    "/check" => reply(403, r#"{"verdict":"no"}"#.into()),
                    "/flaky" if flaky.fetch_add(1, Ordering::SeqCst) < 2 => {
                        reply(503, "busy".into())
                    }
                    "/big" => reply(200, "x".repeat(300 * 1024)),
                    "/loop" => redirect("/loop".into()),
                    "/to-v6" => redirect(format!("http://[::1]:{port}/")),
                    "/slow" => {
                        tokio::time::sleep(Duration::from_secs(5)).await;
                        reply(200, "late".into())
                    }
                    _ => reply(200, "seen".into()),
                }
            }
        })
        .await?;
        Ok(Self { server, seen })
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.server.addr)
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// An edge whose policies may call loopback (as an operator who runs the called services on
/// the edge's machine allows with `outbound.allow`).
async fn edge_allowing_loopback() -> anyhow::Result<TestEdge> {
    TestEdge::start_with(|c| {
        c.outbound.allow = vec!["127.0.0.0/8".parse().unwrap_or_else(|_| unreachable!())];
    })
    .await
}

/// An agent for `name` whose endpoint runs `policy`, forwarding to the test app.
async fn agent(edge: &TestEdge, name: &str, policy: &str) -> anyhow::Result<(TestAgent, Upstream)> {
    let app = upstream::app("app").await?;
    let mut config = edge.agent_config(TOKEN, name, app.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: "http-request.yml".into(),
        kind: PolicyKind::Document,
        text: policy.into(),
    }];
    Ok((TestAgent::start(config).await?, app))
}

/// The status and body of a GET of `url` with `x-token: token`.
async fn with_token(url: &str, token: &str) -> anyhow::Result<(u16, String)> {
    let resp = client::client()
        .get(url)
        .header("x-token", token)
        .send()
        .await?;
    Ok((resp.status().as_u16(), resp.text().await?))
}

/// A policy whose one http-request has `config`, then answers with `answer` (a template).
fn calling(config: &str, answer: &str) -> String {
    format!(
        "on_http_request:\n  - actions:\n      - type: http-request\n        config: {config}\n  - actions:\n      - type: custom-response\n        config: {{status_code: 200, body: \"{answer}\"}}\n"
    )
}

#[tokio::test]
async fn later_rules_read_the_answer_and_the_called_server_sees_the_call() -> anyhow::Result<()> {
    let edge = edge_allowing_loopback().await?;
    let called = Called::start().await?;
    let policy = format!(
        r#"on_http_request:
  - actions:
      - type: http-request
        config:
          url: "{url}"
          method: POST
          query_params: [{{key: path, value: "${{req.url.path}}"}}]
          headers: {{x-token: "${{getReqHeader('x-token')[0]}}", content-type: application/json}}
          body: '{{"client":"${{conn.client_ip}}"}}'
          on_error: halt
  - expressions: ["actions.ngrok.http_request.res.status_code != 200"]
    actions: [{{type: deny, config: {{status_code: 401}}}}]
  - actions:
      - type: add-headers
        config:
          headers:
            x-verdict: "${{json.decode(actions.ngrok.http_request.res.body).verdict}}"
"#,
        url = called.url("/check")
    );
    let (agent, _app) = agent(&edge, "callout", &policy).await?;
    let (status, echoed) = with_token(&format!("{}/hello", agent.url()), "good").await?;
    assert_eq!(status, 200);
    assert!(echoed.contains(r#"["x-verdict","ok"]"#), "{echoed}");
    let (status, _) = with_token(&format!("{}/hello", agent.url()), "bad").await?;
    assert_eq!(status, 401);

    let seen = called.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    let call = &seen[0];
    assert_eq!(call.method, "POST");
    assert_eq!(call.target, "/check?path=%2Fhello");
    assert_eq!(call.body, r#"{"client":"127.0.0.1"}"#);
    let header = |n: &str| call.headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(header("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(header("sluice-http-request-hops"), Some("1"));
    assert!(header("user-agent").is_some_and(|ua| ua.starts_with("sluice/")));
    Ok(())
}

#[tokio::test]
async fn retries_while_the_condition_holds() -> anyhow::Result<()> {
    let edge = edge_allowing_loopback().await?;
    let called = Called::start().await?;
    let config = format!(
        "{{url: '{}', retry_condition: 'last_attempt.res.status_code >= 500 && attempts < 4'}}",
        called.url("/flaky")
    );
    let answer = "${size(actions.ngrok.http_request.attempts)} ${actions.ngrok.http_request.attempts[0].response_status_code} ${actions.ngrok.http_request.res.status_code} ${actions.ngrok.http_request.res.body}";
    let (agent, _app) = agent(&edge, "retry", &calling(&config, answer)).await?;
    let body = client::client()
        .get(agent.url())
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "3 503 200 seen");
    assert_eq!(called.seen().len(), 3);
    Ok(())
}

#[tokio::test]
async fn on_http_response_calls_out_too() -> anyhow::Result<()> {
    let edge = edge_allowing_loopback().await?;
    let called = Called::start().await?;
    let policy = format!(
        r#"on_http_response:
  - actions:
      - type: http-request
        config: {{url: "{url}", method: PUT, body: "${{req.url.path}} got ${{res.status_code}}"}}
      - type: add-headers
        config:
          headers: {{x-audit: "${{actions.ngrok.http_request.res.status_code}}"}}
"#,
        url = called.url("/audit")
    );
    let (agent, _app) = agent(&edge, "audit", &policy).await?;
    let resp = client::client()
        .get(format!("{}/status/201", agent.url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        resp.headers().get("x-audit").and_then(|v| v.to_str().ok()),
        Some("200")
    );
    let seen = called.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].method, "PUT");
    assert_eq!(seen[0].body, "/status/201 got 201");
    Ok(())
}

/// The status and error code a halting call to `path` answers with.
async fn halted(
    edge: &TestEdge,
    name: &str,
    url: &str,
    extra: &str,
) -> anyhow::Result<(u16, String, String)> {
    let config = format!("{{url: '{url}', on_error: halt{extra}}}");
    let (agent, _app) = agent(edge, name, &calling(&config, "passed")).await?;
    let resp = client::client().get(agent.url()).send().await?;
    let status = resp.status().as_u16();
    let code = client::error_code(resp.headers()).unwrap_or_default();
    Ok((status, code, resp.text().await?))
}

#[tokio::test]
async fn time_size_and_redirect_limits_fail_the_call_with_their_codes() -> anyhow::Result<()> {
    let edge = edge_allowing_loopback().await?;
    let called = Called::start().await?;

    let started = Instant::now();
    let (status, code, _) = halted(&edge, "slow", &called.url("/slow"), ", timeout: 1s").await?;
    assert_eq!((status, code.as_str()), (504, "ERR_SLUICE_3602"));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );

    let (status, code, _) = halted(&edge, "big", &called.url("/big"), "").await?;
    assert_eq!((status, code.as_str()), (502, "ERR_SLUICE_3601"));

    let before = called.seen().len();
    let (status, code, body) =
        halted(&edge, "loop", &called.url("/loop"), ", max_redirects: 2").await?;
    assert_eq!((status, code.as_str()), (502, "ERR_SLUICE_3603"), "{body}");
    assert_eq!(
        called.seen().len() - before,
        3,
        "the first request and 2 redirects"
    );

    // max_redirects: 0 follows nothing: the redirect is the answer.
    let config = format!("{{url: '{}', max_redirects: 0}}", called.url("/loop"));
    let (agent, _app) = agent(
        &edge,
        "noredirect",
        &calling(&config, "${actions.ngrok.http_request.res.status_code}"),
    )
    .await?;
    let body = client::client()
        .get(agent.url())
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "302");
    Ok(())
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_operator_allows_them() -> anyhow::Result<()> {
    let called = Called::start().await?;
    let port = called.server.addr.port();

    // The default: no call reaches loopback, whether written as an address or a name.
    let edge = TestEdge::start_with(|c| c.outbound = OutboundConfig::default()).await?;
    for (name, url) in [
        ("literal", called.url("/x")),
        ("byname", format!("http://localhost:{port}/x")),
        (
            "metadata",
            "http://169.254.169.254/latest/meta-data/".to_string(),
        ),
    ] {
        let (status, code, body) = halted(&edge, name, &url, "").await?;
        assert_eq!(
            (status, code.as_str()),
            (502, "ERR_SLUICE_3604"),
            "{name}: {body}"
        );
        assert!(body.contains("outbound.allow"), "{name}: {body}");
    }
    assert!(called.seen().is_empty(), "{:?}", called.seen());

    // Allowed networks only: a redirect out of them is refused at that hop.
    let allowed = edge_allowing_loopback().await?;
    let (status, code, body) = halted(&allowed, "tov6", &called.url("/to-v6"), "").await?;
    assert_eq!((status, code.as_str()), (502, "ERR_SLUICE_3604"), "{body}");
    assert_eq!(called.seen().len(), 1, "only the first hop was sent");
    Ok(())
}

#[tokio::test]
async fn internal_endpoints_are_called_through_the_edge_and_only_by_their_namespace(
) -> anyhow::Result<()> {
    // The default rules: an internal endpoint is the edge's own business, not an address.
    let edge = TestEdge::start_with(|c| c.outbound = OutboundConfig::default()).await?;
    let called = Called::start().await?;
    // The authorization service, online only as an internal endpoint of the same token, with
    // a policy of its own that the call passes through.
    let mut authz = edge.agent_config(TOKEN, "authz.internal", called.server.addr);
    authz.endpoints[0].policies = vec![PolicySource {
        origin: "authz.yml".into(),
        kind: PolicyKind::Document,
        text: "on_http_request:\n  - actions: [{type: add-headers, config: {headers: {x-via: authz-policy}}}]\n".into(),
    }];
    let _authz = TestAgent::start(authz).await?;
    let policy = r#"on_http_request:
  - actions:
      - type: http-request
        config:
          url: "https://authz.internal/check?from=${req.url.path}"
          headers: {x-token: "${getReqHeader('x-token').join(',')}"}
          on_error: halt
  - expressions: ["actions.ngrok.http_request.res.status_code != 200"]
    actions: [{type: deny, config: {status_code: 401}}]
"#;
    let (front, _app) = agent(&edge, "front", policy).await?;
    let orders = format!("{}/orders", front.url());
    assert_eq!(with_token(&orders, "good").await?.0, 200);
    assert_eq!(with_token(&orders, "bad").await?.0, 401);
    let seen = called.seen();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[0].target, "/check?from=/orders");
    let header = |n: &str| seen[0].headers.get(n).and_then(|v| v.to_str().ok());
    assert_eq!(
        header("x-via"),
        Some("authz-policy"),
        "the target's policy ran"
    );
    assert_eq!(
        header("sluice-internal-call"),
        None,
        "the ticket stays in the edge"
    );

    // Another token's endpoint cannot reach it: not found in its namespace.
    let mut other = edge.agent_config(
        sluice_e2e::OTHER_TOKEN,
        "other",
        upstream::app("o").await?.addr,
    );
    other.endpoints[0].policies = vec![PolicySource {
        origin: "other.yml".into(),
        kind: PolicyKind::Document,
        text: calling(
            "{url: 'https://authz.internal/check', on_error: halt}",
            "passed",
        ),
    }];
    let other = TestAgent::start(other).await?;
    let http = client::client();
    let resp = http.get(other.url()).send().await?;
    assert_eq!(resp.status(), 502);
    assert_eq!(
        client::error_code(resp.headers()).as_deref(),
        Some("ERR_SLUICE_3605")
    );
    assert!(resp.text().await?.contains("authz.internal"));

    // A client cannot name an internal endpoint, ticket header or not.
    let forged = http
        .get(edge.url("authz.internal"))
        .header("sluice-internal-call", "00112233445566778899aabbccddeeff")
        .send()
        .await?;
    assert_eq!(forged.status(), 404);
    assert_eq!(called.seen().len(), 2);
    Ok(())
}

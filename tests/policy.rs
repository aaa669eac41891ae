//! Traffic policies through a real edge and agent: every action, the `--basic-auth` path from
//! the command line, operator policies, and invalid policies refused before going online.

use anyhow::Context as _;
use sluice_agent::policy_input;
use sluice_agent::AgentError;
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{
    assert_endpoint_not_found, client, error_code, AgentProcess, Launch, TestAgent, TestEdge, TOKEN,
};
use sluice_policy::Shorthand;
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::error_code::ErrorCode;
use std::path::Path;

const POLICY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/e2e-policy.yml");

async fn edge_and_agent(
    name: &str,
    flags: &Shorthand,
    file: Option<&Path>,
) -> anyhow::Result<(TestEdge, TestAgent, upstream::Upstream)> {
    let edge = TestEdge::start().await?;
    let app = upstream::app(name).await?;
    let mut config = edge.agent_config(TOKEN, name, app.addr);
    config.endpoints[0].policies = policy_input::layers(flags, file)?;
    let agent = TestAgent::start(config).await?;
    Ok((edge, agent, app))
}

#[tokio::test]
async fn every_policy_action_applies_through_the_tunnel() -> anyhow::Result<()> {
    let (_edge, agent, _app) =
        edge_and_agent("pol", &Shorthand::default(), Some(Path::new(POLICY))).await?;
    let base = agent.url().to_string();
    let http = client();

    // custom-response: answered at the edge, response rules still ran on it.
    let r = http.get(format!("{base}/maintenance")).send().await?;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.text().await?, "down for maintenance");

    // deny with a configured status carries its code.
    let r = http.get(format!("{base}/admin/users")).send().await?;
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3220"));

    // redirect
    let no_follow = sluice_e2e::client::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = no_follow.get(format!("{base}/old")).send().await?;
    assert_eq!(r.status(), 301);
    assert!(
        r.headers()["location"].to_str()?.ends_with("/new"),
        "{:?}",
        r.headers()
    );

    // url-rewrite, set-vars + interpolated add-headers, remove-headers on the request.
    let r = http
        .get(format!("{base}/api/v1/things?x=1"))
        .header("x-secret", "do not forward")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert!(r.headers().get("server").is_none(), "server header removed");
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(seen.uri, "/api/v2/things?x=1");
    assert_eq!(seen.header("x-tier").as_deref(), Some("gold"));
    assert_eq!(seen.header("x-client-ip").as_deref(), Some("127.0.0.1"));
    assert_eq!(seen.header("x-secret"), None);

    // rate-limit: capacity 2 per minute per client IP.
    for _ in 0..2 {
        let r = http.get(format!("{base}/limited")).send().await?;
        assert_eq!(r.status(), 200);
    }
    let r = http.get(format!("{base}/limited")).send().await?;
    assert_eq!(r.status(), 429);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3222"));

    // restrict-ips uses the L4 address; a forged x-forwarded-for does not help.
    let r = http
        .get(format!("{base}/private"))
        .header("x-forwarded-for", "10.1.2.3")
        .send()
        .await?;
    assert_eq!(r.status(), 403);
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3205"));

    // compress-response streams gzip; reqwest without the gzip feature shows raw bytes.
    let r = http
        .get(format!("{base}/bytes/200000/7"))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert!(
        r.headers().get("content-encoding").is_none(),
        "only /big is compressed"
    );
    let r = http
        .get(format!("{base}/big"))
        .header("accept-encoding", "gzip")
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let compressed = r.bytes().await?;
    let mut plain = String::new();
    std::io::Read::read_to_string(
        &mut flate2::read::GzDecoder::new(&compressed[..]),
        &mut plain,
    )
    .context("gunzip")?;
    assert_eq!(Seen::parse(&plain)?.uri, "/big");
    agent.stop().await
}

#[tokio::test]
async fn basic_auth_flag_from_the_command_line() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let app = upstream::app("cli").await?;
    let dir = tempfile::tempdir()?;
    let mut cmd =
        sluice_e2e::process::agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "cli", app.addr)?;
    cmd.args(["--basic-auth", "alice:correct-horse"]);
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let http = client();

    let r = http.get(format!("{}/", agent.url)).send().await?;
    assert_eq!(r.status(), 401);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"sluice\"");
    assert_eq!(error_code(r.headers()).as_deref(), Some("ERR_SLUICE_3221"));

    let r = http
        .get(format!("{}/", agent.url))
        .basic_auth("alice", Some("wrong-password"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);

    let r = http
        .get(format!("{}/hello", agent.url))
        .basic_auth("alice", Some("correct-horse"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(Seen::parse(&r.text().await?)?.uri, "/hello");
    agent.terminate(std::time::Duration::from_secs(10)).await?;
    Ok(())
}

#[tokio::test]
async fn invalid_policy_is_refused_before_going_online() -> anyhow::Result<()> {
    // Locally, with every problem located.
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bad.yml");
    std::fs::write(
        &file,
        "on_http_request:\n  - actions:\n      - type: custom-response\n        config: {status_code: 42}\n  - actions: [{type: no-such-action}]\n",
    )?;
    let err = policy_input::layers(&Shorthand::default(), Some(&file)).expect_err("invalid");
    let text = err.to_string();
    assert!(
        text.contains("on_http_request[0].actions[0].config.status_code"),
        "{text}"
    );
    assert!(text.contains("on_http_request[1].actions[0]"), "{text}");
    assert!(text.contains("bad.yml:4:"), "line numbers: {text}");

    // At the edge too, for a client that skips local validation: nothing goes online.
    let edge = TestEdge::start().await?;
    let app = upstream::app("bad").await?;
    let mut config = edge.agent_config(TOKEN, "bad", app.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: "raw.yml".into(),
        kind: PolicyKind::Document,
        text: "on_http_request:\n  - actions: [{type: deny, config: {status_code: nope}}]\n".into(),
    }];
    match TestAgent::launch(config).await? {
        Launch::Exited(Err(AgentError::Rejected(r))) => {
            assert_eq!(r.code, ErrorCode::PolicyInvalid);
            assert!(r.message.contains("raw.yml:2:"), "{}", r.message);
        }
        Launch::Exited(other) => anyhow::bail!("expected a policy rejection, got {other:?}"),
        Launch::Online(_) => anyhow::bail!("an invalid policy went online"),
    }
    let r = client().get(edge.url("bad.localhost")).send().await?;
    assert_eq!(r.status(), 404);
    Ok(())
}

#[tokio::test]
async fn operator_policy_runs_first_and_answers_without_an_agent() -> anyhow::Result<()> {
    let operator = sluice_edge::OperatorPolicy {
        pattern: sluice_edge::Hostname::parse("*.localhost")?,
        source: Some(PolicySource {
            origin: "operator.yml".into(),
            kind: PolicyKind::Document,
            text: concat!(
                "on_http_request:\n",
                "  - expressions: [\"req.host.startsWith('status.localhost')\"]\n",
                "    actions: [{type: custom-response, config: {status_code: 200, body: operator says ok}}]\n",
                "on_http_response:\n",
                "  - actions: [{type: add-headers, config: {headers: {x-operator: 'yes'}}}]\n",
            )
            .into(),
        }),
    };
    let edge = TestEdge::start_with(|c| c.operator_policies = vec![operator]).await?;
    let app = upstream::app("op").await?;
    let mut config = edge.agent_config(TOKEN, "op", app.addr);
    config.endpoints[0].policies = policy_input::layers(
        &Shorthand {
            response_header_add: vec!["x-agent: yes".into()],
            ..Shorthand::default()
        },
        None,
    )?;
    let agent = TestAgent::start(config).await?;
    let http = client();

    let r = http.get(agent.url()).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-operator"], "yes");
    assert_eq!(r.headers()["x-agent"], "yes");

    // No agent holds status.localhost, yet the operator policy answers it.
    let r = http.get(edge.url("status.localhost")).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await?, "operator says ok");
    // Other unheld names still get the 404 with its code.
    let r = http.get(edge.url("nobody.localhost")).send().await?;
    assert_endpoint_not_found(&r);
    agent.stop().await
}

/// Sends one raw HTTP/1.1 GET for `path` to the edge and reads until the connection ends (at
/// most 10 s): everything the client received.
async fn raw_get(edge: &TestEdge, host: &str, path: &str) -> anyhow::Result<Vec<u8>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(edge.http_addr).await?;
    let request = format!("GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await?;
    let mut received = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        conn.read_to_end(&mut received),
    )
    .await
    .context("the edge kept the connection open")??;
    Ok(received)
}

#[tokio::test]
async fn close_connection_drops_the_client_without_a_response() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("close.yml");
    std::fs::write(
        &file,
        "on_http_request:\n  - expressions: [\"req.url.path.startsWith('/wp-admin')\"]\n    actions:\n      - type: close-connection\n",
    )?;
    let (edge, agent, _app) = edge_and_agent("closer", &Shorthand::default(), Some(&file)).await?;
    let host = format!("closer.localhost:{}", edge.http_addr.port());
    let closed = raw_get(&edge, &host, "/wp-admin/setup.php").await?;
    assert!(
        closed.is_empty(),
        "expected no response, got {:?}",
        String::from_utf8_lossy(&closed)
    );
    let answered = raw_get(&edge, &host, "/").await?;
    assert!(
        answered.starts_with(b"HTTP/1.1 200"),
        "{:?}",
        String::from_utf8_lossy(&answered)
    );
    // Over HTTP/2 (h2c) the request's stream ends without a response.
    let h2 = sluice_e2e::client::client_builder()
        .http2_prior_knowledge()
        .build()?;
    let url = format!("http://{host}");
    let refused = h2.get(format!("{url}/wp-admin/")).send().await;
    assert!(refused.is_err(), "expected no response, got {refused:?}");
    assert_eq!(h2.get(&url).send().await?.status(), 200);
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn circuit_breaker_trips_on_upstream_errors_and_recovers() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("breaker.yml");
    std::fs::write(
        &file,
        "on_http_request:\n  - actions:\n      - type: circuit-breaker\n        config: {error_threshold: 0.5, volume_threshold: 4, tripped_duration: 1s}\n",
    )?;
    let (edge, agent, _app) = edge_and_agent("breaker", &Shorthand::default(), Some(&file)).await?;
    let http = client();
    let status = |path: &'static str| {
        let http = http.clone();
        let url = format!("{}{path}", agent.url());
        async move { anyhow::Ok(http.get(url).send().await?.status().as_u16()) }
    };
    for _ in 0..4 {
        assert_eq!(status("/status/500").await?, 500);
    }
    // Counted when each request completes: the breaker trips right after the fourth error.
    let tripped = sluice_e2e::eventually(
        std::time::Duration::from_secs(5),
        "the breaker to trip",
        || async {
            let r = http.get(agent.url()).send().await.ok()?;
            (r.status() == 503).then(|| error_code(r.headers()))
        },
    )
    .await?;
    assert_eq!(tripped.as_deref(), Some("ERR_SLUICE_3202"));
    tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
    assert_eq!(
        status("/").await?,
        200,
        "closed again after tripped_duration"
    );
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

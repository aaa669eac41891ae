//! Internal endpoints and forward-internal through real edges, agents and upstreams: internal
//! names are unreachable from the public listeners, cloud endpoints and agent endpoints
//! forward into their own authtoken's internal endpoints (never another's), responses pass
//! back through every endpoint's response phase, loops stop, and ngrok's default
//! cloud-endpoint policy works as published.

use sluice_e2e::scrape::{sample, scrape};
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{
    any_port, assert_endpoint_not_found, client, error_code, eventually, TestAgent, TestEdge,
    OTHER_TOKEN, TOKEN,
};
use sluice_edge::{CloudEndpointSpec, EdgeArgs, EdgeConfig, EventDestination};
use sluice_proto::control::{PolicyKind, PolicySource, Secret};
use std::time::Duration;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// A policy document layer labelled `origin`.
fn document(origin: &str, text: &str) -> PolicySource {
    PolicySource {
        origin: origin.into(),
        kind: PolicyKind::Document,
        text: text.into(),
    }
}

/// A cloud endpoint of [`TOKEN`] at `url` with `policy`.
fn cloud(url: &str, policy: &str, pooling: bool) -> CloudEndpointSpec {
    CloudEndpointSpec {
        origin: format!("test cloud endpoint {url}"),
        url: url.into(),
        policy: document(&format!("{url} policy"), policy),
        pooling_enabled: pooling,
        authtoken: Some(Secret(TOKEN.into())),
    }
}

/// An agent of `token` holding `url` in front of `up`, with `policy` when given.
async fn agent(
    edge: &TestEdge,
    token: &str,
    url: &str,
    up: &Upstream,
    policy: Option<&str>,
) -> anyhow::Result<TestAgent> {
    let mut config = edge.agent_config(token, url, up.addr);
    if let Some(policy) = policy {
        config.endpoints[0].policies = vec![document(&format!("{url} agent policy"), policy)];
    }
    TestAgent::start(config).await
}

/// GET `url`: status, the `x-upstream` that answered (empty when none did), the body.
async fn get(url: &str) -> anyhow::Result<(u16, String, reqwest::header::HeaderMap, String)> {
    let r = client()
        .get(url)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    let status = r.status().as_u16();
    let by = r
        .headers()
        .get("x-upstream")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let headers = r.headers().clone();
    Ok((status, by, headers, r.text().await?))
}

const SHOP: &str = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/api')"]
    actions:
      - type: forward-internal
        config: {url: "https://api.internal"}
  - actions:
      - type: forward-internal
        config: {url: "http://web.internal:8080"}
on_http_response:
  - actions:
      - type: add-headers
        config: {headers: {x-order: cloud}}
"#;

const API_POLICY: &str = r#"
on_http_request:
  - actions:
      - type: add-headers
        config: {headers: {x-seen-by: "${endpoint.url}"}}
on_http_response:
  - actions:
      - type: add-headers
        config: {headers: {x-order: api}}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_endpoint_routes_paths_to_two_internal_endpoints() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let events_file = dir.path().join("events.jsonl");
    let events = EventDestination::events_file(events_file.to_str().expect("utf8"));
    let edge = TestEdge::start_with(|c| {
        c.metrics_addr = Some(any_port());
        c.cloud_endpoints = vec![cloud("http://shop", SHOP, false)];
        c.event_destinations = vec![events];
    })
    .await?;
    let (api_up, web_up) = (upstream::app("api").await?, upstream::app("web").await?);
    let api = agent(&edge, TOKEN, "api.internal", &api_up, Some(API_POLICY)).await?;
    let web = agent(&edge, TOKEN, "http://web.internal:8080", &web_up, None).await?;
    assert_eq!(api.url(), "https://api.internal");
    assert_eq!(web.url(), "http://web.internal:8080");

    // Internal names are not public, on any listener or Host.
    let r = client().get(edge.url("api.internal")).send().await?;
    assert_endpoint_not_found(&r);
    let r = client().get(edge.url("web.internal")).send().await?;
    assert_endpoint_not_found(&r);

    let shop = edge.url("shop.localhost");
    let (status, by, headers, body) = get(&format!("{shop}/api/users")).await?;
    assert_eq!((status, by.as_str()), (200, "api"), "{body}");
    // The target's response phase runs first, then the caller's.
    let order: Vec<&str> = headers
        .get_all("x-order")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    assert_eq!(order, ["api", "cloud"]);
    // The upstream sees the public Host, forwarding headers, and the target policy's header.
    let seen = upstream::Seen::parse(&body)?;
    let public_host = format!("shop.localhost:{}", edge.http_addr.port());
    assert_eq!(seen.header("host"), Some(public_host));
    assert_eq!(
        seen.header("x-forwarded-host").as_deref(),
        Some("shop.localhost")
    );
    assert_eq!(
        seen.header("x-seen-by").as_deref(),
        Some("https://api.internal")
    );

    let (status, by, headers, _) = get(&format!("{shop}/index.html")).await?;
    assert_eq!((status, by.as_str()), (200, "web"));
    assert_eq!(headers.get_all("x-order").iter().count(), 1);

    // The metrics name the public endpoint's label and the target.
    let metrics = edge.handle().metrics_addr.expect("metrics");
    eventually(Duration::from_secs(10), "the forward counted", || async {
        let text = scrape(metrics).await.ok()?;
        let series =
            r#"sluice_edge_http_forwards_total{endpoint="other",target="https://api.internal"}"#;
        (sample(&text, series) == Some(1.0)).then_some(())
    })
    .await?;

    // The request's event names the cloud endpoint and the target, and the agent session.
    let event = eventually(
        Duration::from_secs(10),
        "the forwarded request's event",
        || {
            let text = std::fs::read_to_string(&events_file).unwrap_or_default();
            let found = text
                .lines()
                .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
                .find(|e| e["object"]["http"]["request"]["url"]["path"] == "/api/users");
            async move { found }
        },
    )
    .await?;
    let object = &event["object"];
    assert_eq!(
        object["endpoint"]["url"],
        format!("http://shop.localhost:{}", edge.http_addr.port())
    );
    assert_eq!(object["forwarded_to"][0]["url"], "https://api.internal");
    assert!(object["agent"]["session_id"].as_str().is_some(), "{event}");

    // Once the target's agent stops, the forward halts with its code.
    api.stop().await?;
    let (status, _, headers, _) = get(&format!("{shop}/api/users")).await?;
    assert_eq!(status, 503);
    assert_eq!(error_code(&headers).as_deref(), Some("ERR_SLUICE_3502"));
    web.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ngrok_default_cloud_endpoint_policy_forwards_or_shows_its_page() -> anyhow::Result<()> {
    let policy = std::fs::read_to_string(format!("{FIXTURES}/ngrok-default-cloud-endpoint.yml"))?;
    let edge =
        TestEdge::start_with(|c| c.cloud_endpoints = vec![cloud("http://site", &policy, false)])
            .await?;
    let site = edge.url("site.localhost");

    // Live from the edge's start, with no agent anywhere: the fallback page.
    let (status, by, headers, body) = get(&site).await?;
    assert_eq!(status, 503, "{body}");
    assert!(by.is_empty());
    assert!(
        headers["content-type"].to_str()?.starts_with("text/html"),
        "{headers:?}"
    );
    assert!(body.contains("no agent endpoint is online"), "{body}");

    // An agent on the default internal URL takes the traffic; when it stops, the page is back.
    let up = upstream::app("default").await?;
    let default = agent(&edge, TOKEN, "default.internal", &up, None).await?;
    let (status, by, _, _) = get(&site).await?;
    assert_eq!((status, by.as_str()), (200, "default"));
    default.stop().await?;
    let (status, _, _, body) = get(&site).await?;
    assert_eq!(status, 503, "{body}");
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_endpoint_forwards_into_its_own_namespace_only() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (mine_up, theirs_up) = (upstream::app("mine").await?, upstream::app("theirs").await?);
    let forward = |url: &str| {
        format!(
            "on_http_request:\n  - actions:\n      - type: forward-internal\n        config: {{url: \"{url}\"}}\n"
        )
    };
    let mine = agent(&edge, TOKEN, "svc.internal", &mine_up, None).await?;
    let theirs = agent(&edge, OTHER_TOKEN, "secret.internal", &theirs_up, None).await?;
    let plain = agent(&edge, TOKEN, "http://plain.internal", &mine_up, None).await?;

    // Another agent's public endpoint reaches its own authtoken's internal endpoint.
    let front_up = upstream::app("front").await?;
    let front = agent(
        &edge,
        TOKEN,
        "front",
        &front_up,
        Some(&forward("https://svc.internal")),
    )
    .await?;
    let (status, by, _, _) = get(front.url()).await?;
    assert_eq!((status, by.as_str()), (200, "mine"));

    // The same name in another tenant's namespace does not exist for this one.
    let snoop = agent(
        &edge,
        TOKEN,
        "snoop",
        &front_up,
        Some(&forward("https://secret.internal")),
    )
    .await?;
    let (status, by, headers, body) = get(snoop.url()).await?;
    assert_eq!(status, 503, "{body}");
    assert!(by.is_empty(), "another tenant's upstream answered");
    assert_eq!(error_code(&headers).as_deref(), Some("ERR_SLUICE_3502"));
    // ... while its own tenant reaches it.
    let owner = agent(
        &edge,
        OTHER_TOKEN,
        "owner",
        &front_up,
        Some(&forward("https://secret.internal")),
    )
    .await?;
    assert_eq!(get(owner.url()).await?.1, "theirs");

    // A name online only under the other scheme is a scheme mismatch, saying what is there.
    let mismatch = agent(
        &edge,
        TOKEN,
        "mismatch",
        &front_up,
        Some(&forward("https://plain.internal")),
    )
    .await?;
    let (status, _, headers, body) = get(mismatch.url()).await?;
    assert_eq!(status, 502, "{body}");
    assert_eq!(error_code(&headers).as_deref(), Some("ERR_SLUICE_3504"));
    assert!(
        body.contains("only http://plain.internal is online"),
        "{body}"
    );

    for a in [mine, theirs, plain, front, snoop, owner, mismatch] {
        a.stop().await?;
    }
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forwarding_loop_is_refused() -> anyhow::Result<()> {
    let to = |url: &str| {
        format!("on_http_request: [{{actions: [{{type: forward-internal, config: {{url: '{url}'}}}}]}}]")
    };
    let edge = TestEdge::start_with(|c| {
        c.cloud_endpoints = vec![cloud("http://loop", &to("https://a.internal"), false)]
    })
    .await?;
    let up = upstream::app("never").await?;
    let a = agent(
        &edge,
        TOKEN,
        "a.internal",
        &up,
        Some(&to("https://b.internal")),
    )
    .await?;
    let b = agent(
        &edge,
        TOKEN,
        "b.internal",
        &up,
        Some(&to("https://a.internal")),
    )
    .await?;
    let (status, by, headers, body) = get(&edge.url("loop.localhost")).await?;
    assert_eq!(status, 508, "{body}");
    assert!(by.is_empty());
    assert_eq!(error_code(&headers).as_deref(), Some("ERR_SLUICE_3501"));
    assert!(
        body.contains("loop.localhost:")
            && body.contains("→ https://a.internal → https://b.internal → https://a.internal"),
        "{body}"
    );
    a.stop().await?;
    b.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_endpoint_pools_with_agents_and_cannot_be_taken_over() -> anyhow::Result<()> {
    let answer = "on_http_request: [{actions: [{type: custom-response, config: {body: cloud}}]}]";
    let edge = TestEdge::start_with(|c| {
        c.cloud_endpoints = vec![
            cloud("http://pooled", answer, true),
            cloud("http://fixed", answer, false),
        ]
    })
    .await?;
    let up = upstream::app("agent").await?;
    let mut config = edge.agent_config(TOKEN, "pooled", up.addr);
    config.endpoints[0].pooling_enabled = true;
    let member = TestAgent::start(config).await?;
    let url = edge.url("pooled.localhost");
    let (mut cloud_answers, mut agent_answers) = (0, 0);
    for _ in 0..60 {
        let (status, by, _, body) = get(&url).await?;
        assert_eq!(status, 200);
        match (by.as_str(), body.as_str()) {
            ("agent", _) => agent_answers += 1,
            ("", "cloud") => cloud_answers += 1,
            other => anyhow::bail!("unexpected answer {other:?}"),
        }
    }
    assert!(
        cloud_answers >= 10 && agent_answers >= 10,
        "cloud {cloud_answers}, agent {agent_answers}"
    );
    member.stop().await?;

    // Without pooling the operator's endpoint stays its own, whatever the agent's token.
    match TestAgent::launch(edge.agent_config(TOKEN, "fixed", up.addr)).await? {
        sluice_e2e::Launch::Exited(Err(sluice_agent::AgentError::Rejected(r))) => {
            assert!(r.message.contains("cloud endpoint"), "{}", r.message)
        }
        sluice_e2e::Launch::Exited(other) => anyhow::bail!("expected a rejection: {other:?}"),
        sluice_e2e::Launch::Online(_) => anyhow::bail!("an agent took a cloud endpoint over"),
    }
    assert_eq!(get(&edge.url("fixed.localhost")).await?.3, "cloud");
    edge.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn a_cloud_endpoint_that_can_never_answer_stops_the_edge_at_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("headers.yml"),
        "# only adds a header\non_http_request:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-a: b}}\n",
    )?;
    let edge_yaml = dir.path().join("edge.yaml");
    std::fs::write(
        &edge_yaml,
        format!(
            "dev: true\nstate_dir: {}\nhttp_addr: {}\ntunnel_addr: {}\nmetrics_addr: {}\ncloud_endpoints:\n  - url: http://www.localhost\n    traffic_policy_file: headers.yml\n",
            dir.path().join("state").display(),
            any_port(),
            any_port(),
            any_port(),
        ),
    )?;
    let args = EdgeArgs {
        config: Some(edge_yaml),
        ..EdgeArgs::default()
    };
    let config = EdgeConfig::from_args(args)?;
    let err = match sluice_edge::start(config).await {
        Ok(handle) => {
            handle.shutdown().await;
            anyhow::bail!("the edge started with a cloud endpoint that cannot answer");
        }
        Err(e) => e.to_string(),
    };
    let file = dir.path().join("headers.yml");
    assert!(
        err.starts_with(&format!("{}:3:3: on_http_request: ", file.display())),
        "{err}"
    );
    assert!(
        err.contains("forward-internal, custom-response, redirect, deny or close-connection"),
        "{err}"
    );
    Ok(())
}

//! The request inspector's API through a real edge, agent and upstream: capture, ring bounds
//! by count and bytes, body cut without disturbing the stream, the Host check, and replay
//! (as is and edited) reaching the upstream.

use serde_json::{json, Value};
use sluice_agent::inspect::{InspectConfig, Inspector, Limits};
use sluice_e2e::inspector::InspectorClient;
use sluice_e2e::recording::{recording_app, Recorded};
use sluice_e2e::upstream::{self, item_body, Upstream};
use sluice_e2e::{any_port, client, eventually, TestAgent, TestEdge, TOKEN};
use std::time::Duration;

struct Setup {
    edge: TestEdge,
    agent: TestAgent,
    inspector: Inspector,
    api: InspectorClient,
    _upstream: Upstream,
}

/// Edge, inspector with `limits` on 127.0.0.1:0, and an agent for `name` forwarding to `upstream`.
async fn setup(name: &str, upstream: Upstream, limits: Limits) -> anyhow::Result<Setup> {
    let edge = TestEdge::start().await?;
    let mut config = edge.agent_config(TOKEN, name, upstream.addr);
    let inspect = InspectConfig {
        addr: any_port(),
        fallback_ports: 0,
        allow_hosts: Vec::new(),
        limits,
    };
    let inspector = Inspector::start(inspect, &mut config).await?;
    let agent = TestAgent::start(config).await?;
    let api = InspectorClient::new(inspector.addr());
    Ok(Setup {
        edge,
        agent,
        inspector,
        api,
        _upstream: upstream,
    })
}

impl Setup {
    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.agent.url())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.agent.stop().await?;
        self.edge.shutdown().await;
        Ok(())
    }
}

async fn recording(name: &str, limits: Limits) -> anyhow::Result<(Setup, Recorded)> {
    let (app, recorded) = recording_app().await?;
    Ok((setup(name, app, limits).await?, recorded))
}

#[tokio::test]
async fn captures_heads_and_pretty_bodies() -> anyhow::Result<()> {
    let s = setup("cap", upstream::app("capapp").await?, Limits::default()).await?;
    let resp = client()
        .post(s.url("/hook?x=1"))
        .header("content-type", "application/json")
        .header("x-test", "yes")
        .body(r#"{"event":"push","n":[1,2]}"#)
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let r = s.api.wait_for("/hook?x=1").await?;
    assert_eq!(r["request"]["method"], "POST");
    assert_eq!(r["request"]["headers"]["X-Test"], json!(["yes"]));
    assert!(
        r["request"]["headers"]["Host"][0]
            .as_str()
            .unwrap_or("")
            .starts_with("cap.localhost"),
        "{r}"
    );
    let body = &r["request"]["body"];
    assert_eq!(body["kind"], "json");
    assert_eq!(
        body["pretty"],
        "{\n  \"event\": \"push\",\n  \"n\": [\n    1,\n    2\n  ]\n}"
    );
    assert_eq!(body["truncated"], false);
    assert_eq!(r["response"]["status_code"], 200);
    assert_eq!(r["response"]["headers"]["X-Upstream"], json!(["capapp"]));
    assert_eq!(r["response"]["body"]["kind"], "json");
    assert!(r["response"]["body"]["pretty"]
        .as_str()
        .unwrap_or("")
        .contains("\"upstream\": \"capapp\""));
    assert!(r["duration"].as_u64().unwrap_or(0) > 0, "{r}");
    assert!(
        r["remote_addr"]
            .as_str()
            .unwrap_or("")
            .starts_with("127.0.0.1:"),
        "{r}"
    );
    // The same item by id, and ngrok's `raw` (base64 of the request as received).
    let id = r["id"].as_str().unwrap_or_default();
    let one = s.api.get(&format!("/api/requests/http/{id}")).await?;
    assert_eq!(one["request"]["uri"], "/hook?x=1");
    assert!(one["request"]["raw"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    // Tunnels, once the agent told the inspector what the edge bound.
    s.inspector.set_online(
        &[(
            sluice_proto::control::BoundEndpoint {
                id: 0,
                url: s.agent.url().to_string(),
                hostname: s.agent.hostnames[0].clone(),
            },
            "http://app".into(),
        )],
        sluice_agent::Transport::Tcp,
    );
    let tunnels = s.api.get("/api/tunnels").await?;
    assert_eq!(tunnels["tunnels"][0]["public_url"], s.agent.url());
    assert_eq!(tunnels["tunnels"][0]["transport"], "tcp");
    assert_eq!(tunnels["tunnels"][0]["name"], "cap.localhost");
    let filtered = s
        .api
        .get("/api/requests/http?tunnel_name=cap.localhost")
        .await?;
    assert_eq!(filtered["requests"].as_array().map(Vec::len), Some(1));
    let unknown = client()
        .get(format!("{}/api/requests/http/req_999999", s.api.base))
        .send()
        .await?;
    assert_eq!(unknown.status(), 404);
    s.stop().await
}

#[tokio::test]
async fn ring_is_bounded_by_count() -> anyhow::Result<()> {
    let limits = Limits {
        max_requests: 3,
        ..Limits::default()
    };
    let s = setup("count", upstream::app("count").await?, limits).await?;
    for i in 0..6 {
        let resp = client().get(s.url(&format!("/n/{i}"))).send().await?;
        assert_eq!(resp.status(), 200);
    }
    s.api.wait_for("/n/5").await?;
    let uris: Vec<Value> = s
        .api
        .requests()
        .await?
        .iter()
        .map(|r| r["request"]["uri"].clone())
        .collect();
    assert_eq!(uris, [json!("/n/5"), json!("/n/4"), json!("/n/3")]);
    s.stop().await
}

#[tokio::test]
async fn ring_is_bounded_by_bytes_and_bodies_are_cut_without_touching_the_stream(
) -> anyhow::Result<()> {
    let limits = Limits {
        max_requests: 1000,
        max_bytes: 24 * 1024,
        body_limit: 4096,
    };
    let s = setup("bytes", upstream::app("bytes").await?, limits).await?;
    for i in 0..10u64 {
        let resp = client().get(s.url(&format!("/item/{i}"))).send().await?;
        // The client still gets the whole 16 KiB body, byte for byte.
        assert_eq!(resp.bytes().await?, item_body(i), "item {i}");
    }
    let last = s.api.wait_for("/item/9").await?;
    let body = &last["response"]["body"];
    assert_eq!(body["size"], 16 * 1024);
    assert_eq!(body["captured"], 4096);
    assert_eq!(body["truncated"], true);
    assert_eq!(body["complete"], true);
    let kept = s.api.requests().await?;
    // Each exchange costs about 4 KiB of body plus its heads: 24 KiB hold fewer than 6.
    assert!(kept.len() >= 2 && kept.len() < 6, "kept {}", kept.len());
    assert_eq!(kept[0]["request"]["uri"], "/item/9", "newest kept");
    let (count, bytes) = s.inspector.store().usage();
    assert!(bytes <= 24 * 1024 && count == kept.len(), "{count} {bytes}");

    // A large upload streams through whole; only its first 4 KiB are kept.
    let len = 8 * 1024 * 1024u64;
    let resp = client()
        .post(s.url("/sha256"))
        .body(reqwest::Body::wrap_stream(sluice_e2e::data::stream(len, 3)))
        .send()
        .await?;
    assert_eq!(
        resp.text().await?,
        format!("{} {len}", sluice_e2e::data::digest_of(len, 3))
    );
    let upload = s.api.wait_for("/sha256").await?;
    let body = &upload["request"]["body"];
    assert_eq!(
        (
            body["size"].as_u64(),
            body["captured"].as_u64(),
            &body["truncated"]
        ),
        (Some(len), Some(4096), &json!(true))
    );
    s.stop().await
}

#[tokio::test]
async fn host_check_rejects_foreign_hosts_and_cross_site_posts() -> anyhow::Result<()> {
    let s = setup("guard", upstream::app("guard").await?, Limits::default()).await?;
    let base = &s.api.base;
    let send = |host: &'static str| {
        client()
            .get(format!("{base}/api/requests/http"))
            .header("host", host)
            .send()
    };
    let foreign = send("rebound.evil.example").await?;
    assert_eq!(foreign.status(), 403);
    assert!(foreign.text().await?.contains("not allowed"));
    assert_eq!(send("localhost").await?.status(), 200);
    let page = client().get(format!("{base}/")).send().await?;
    assert_eq!(page.status(), 200, "the page is served to loopback");
    // A cross-site form cannot replay or clear.
    let form = client()
        .post(format!("{base}/api/requests/http"))
        .header("content-type", "text/plain")
        .body(r#"{"id":"req_000000000000"}"#)
        .send()
        .await?;
    assert_eq!(form.status(), 415);
    let cross = client()
        .delete(format!("{base}/api/requests/http"))
        .header("origin", "https://evil.example")
        .send()
        .await?;
    assert_eq!(cross.status(), 403);
    s.stop().await
}

#[tokio::test]
async fn replay_as_is_and_edited_reaches_the_upstream() -> anyhow::Result<()> {
    let (s, recorded) = recording("replay", Limits::default()).await?;
    let resp = client()
        .post(s.url("/webhook?attempt=1"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("x-signature", "abc")
        .body("event=paid&amount=10")
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    let original = s.api.wait_for("/webhook?attempt=1").await?;
    assert_eq!(
        original["request"]["body"]["pretty"],
        "event = paid\namount = 10"
    );
    let id = original["id"].clone();

    let (status, text) = s.api.replay(&json!({ "id": id })).await?;
    assert_eq!(status, 204, "{text}");
    let all = eventually(
        Duration::from_secs(10),
        "upstream to receive the replay",
        || async {
            let all = recorded.all();
            (all.len() == 2).then_some(all)
        },
    )
    .await?;
    let (first, again) = (&all[0], &all[1]);
    assert_eq!(
        (again.method.as_str(), again.uri.as_str()),
        ("POST", "/webhook?attempt=1")
    );
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("x-signature"), Some("abc"));
    assert_eq!(again.header("host"), first.header("host"));
    // The replay is captured too, marked as one.
    let replayed = eventually(
        Duration::from_secs(10),
        "replay in the inspector",
        || async {
            s.api
                .requests()
                .await
                .ok()?
                .into_iter()
                .find(|r| r["replay_of"] == id && r["response"]["body"].is_object())
        },
    )
    .await?;
    assert_eq!(replayed["response"]["status_code"], 200);
    assert_eq!(replayed["remote_addr"], Value::Null);

    let edit = json!({
        "id": id,
        "method": "PUT",
        "uri": "/webhook?attempt=2",
        "headers": { "Content-Type": ["application/json"], "X-Edited": ["yes"] },
        "body": "{\"event\":\"refunded\"}",
    });
    let (status, text) = s.api.replay(&edit).await?;
    assert_eq!(status, 204, "{text}");
    let edited = eventually(
        Duration::from_secs(10),
        "upstream to receive the edited replay",
        || async { recorded.all().get(2).cloned() },
    )
    .await?;
    assert_eq!(
        (edited.method.as_str(), edited.uri.as_str()),
        ("PUT", "/webhook?attempt=2")
    );
    assert_eq!(edited.body, "{\"event\":\"refunded\"}");
    assert_eq!(edited.header("x-edited"), Some("yes"));
    assert_eq!(edited.header("content-length"), Some("20"));
    assert_eq!(
        edited.header("x-signature"),
        None,
        "edited headers replace the original ones"
    );

    // Refusals say why.
    let (status, text) = s.api.replay(&json!({ "id": "req_424242424242" })).await?;
    assert_eq!(status, 404, "{text}");
    let (status, text) = s
        .api
        .replay(&json!({ "id": id, "uri": "http://elsewhere/" }))
        .await?;
    assert!(status == 400 && text.contains("uri:"), "{status} {text}");
    assert_eq!(recorded.all().len(), 3, "refused replays send nothing");
    s.stop().await
}

#[tokio::test]
async fn a_cut_request_body_is_replayed_only_with_an_edited_body() -> anyhow::Result<()> {
    let limits = Limits {
        max_requests: 10,
        max_bytes: 1024 * 1024,
        body_limit: 1024,
    };
    let (s, recorded) = recording("cut", limits).await?;
    let big = "x".repeat(5000);
    client()
        .post(s.url("/big"))
        .body(big.clone())
        .send()
        .await?;
    let r = s.api.wait_for("/big").await?;
    assert_eq!(r["request"]["body"]["truncated"], true);
    let (status, text) = s.api.replay(&json!({ "id": r["id"] })).await?;
    assert!(
        status == 409 && text.contains("captured only up to 1024 bytes"),
        "{status} {text}"
    );
    let (status, text) = s
        .api
        .replay(&json!({ "id": r["id"], "body": "small" }))
        .await?;
    assert_eq!(status, 204, "{text}");
    let got = eventually(Duration::from_secs(10), "edited replay", || async {
        recorded.all().get(1).cloned()
    })
    .await?;
    assert_eq!(got.body, "small");
    assert_eq!(recorded.all()[0].body, big);
    s.stop().await
}

/// The port of a `tcp://DOMAIN:PORT` URL (the test edge listens on loopback).
fn tcp_port(url: &str) -> anyhow::Result<u16> {
    url.rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no port in {url}"))
}

#[tokio::test]
async fn tcp_connections_are_listed_with_bytes_and_counted_per_tunnel() -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    let edge = TestEdge::start_with(|c| c.tcp_ports = sluice_e2e::tcp_port_range(20).ok()).await?;
    let echo = upstream::tcp_echo().await?;
    let mut config = edge.tcp_agent_config(TOKEN, "tcp://", echo.addr);
    let inspect = InspectConfig {
        addr: any_port(),
        fallback_ports: 0,
        allow_hosts: Vec::new(),
        limits: Limits::default(),
    };
    let inspector = Inspector::start(inspect, &mut config).await?;
    let agent = TestAgent::start(config).await?;
    let api = InspectorClient::new(inspector.addr());
    let port = tcp_port(agent.url())?;

    // One connection stays open after 300 bytes each way; another moves 1000 bytes each way
    // and closes.
    let mut open = TcpStream::connect(("127.0.0.1", port)).await?;
    open.write_all(&[1u8; 300]).await?;
    open.read_exact(&mut [0u8; 300]).await?;
    let mut done = TcpStream::connect(("127.0.0.1", port)).await?;
    let done_addr = done.local_addr()?.to_string();
    done.write_all(&[7u8; 1000]).await?;
    done.shutdown().await?;
    let mut back = Vec::new();
    done.read_to_end(&mut back).await?;
    let open_addr = open.local_addr()?.to_string();
    let list = eventually(
        Duration::from_secs(10),
        "both connections listed",
        || async {
            let list = api.get("/api/connections").await.ok()?;
            let conns = list["connections"].as_array()?.clone();
            let closed = conns
                .iter()
                .any(|c| c["remote_addr"] == done_addr.as_str() && c["state"] == "closed");
            // An open connection's bytes are counted as they flow.
            let counted = conns
                .iter()
                .any(|c| c["state"] == "open" && c["bytes_in"] == 300 && c["bytes_out"] == 300);
            (conns.len() == 2 && closed && counted).then_some(conns)
        },
    )
    .await?;
    let closed = list
        .iter()
        .find(|c| c["remote_addr"] == done_addr.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(closed["kind"], "tcp", "{closed}");
    assert_eq!(
        (closed["bytes_in"].as_u64(), closed["bytes_out"].as_u64()),
        (Some(1000), Some(1000)),
        "{closed}"
    );
    assert!(
        closed["duration"].as_u64().is_some_and(|d| d > 0),
        "{closed}"
    );
    assert!(
        closed["failure"].is_null()
            && closed["connection_id"]
                .as_str()
                .is_some_and(|s| !s.is_empty())
    );
    let one = api
        .get(closed["uri"].as_str().unwrap_or("/missing"))
        .await?;
    assert_eq!(one["id"], closed["id"]);
    let still = list
        .iter()
        .find(|c| c["remote_addr"] == open_addr.as_str())
        .cloned()
        .unwrap_or_default();
    assert_eq!(still["state"], "open", "{still}");

    // ngrok's per-tunnel connection metrics, and no HTTP exchanges.
    let tunnels = api.get("/api/tunnels").await?;
    assert_eq!(
        tunnels["tunnels"][0]["metrics"]["conns"],
        json!({ "count": 2, "gauge": 1 }),
        "{tunnels}"
    );
    assert!(api.requests().await?.is_empty());
    // Deleting forgets the kept connections; the counts are since the start.
    let status = client()
        .delete(format!("http://{}/api/connections", inspector.addr()))
        .send()
        .await?
        .status();
    assert_eq!(status, 204);
    assert_eq!(api.get("/api/connections").await?["connections"], json!([]));
    drop(open);
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

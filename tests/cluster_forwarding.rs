//! Requests entering an edge of a cluster that has no link to the endpoint's agent, forwarded
//! to an edge that has one over the authenticated link between edges (docs/cluster.md): the
//! entry edge runs the endpoint's policy (its forward-internal included) and exports the
//! event, the holding edge only relays; bodies and upgrades pass whole; `tcp://` endpoints
//! answer on their port, and `tls://` ones by name, on every edge; a dead edge costs at most
//! the requests in flight on it; a link without the peer secret is refused, and a request
//! that already passed an edge is never forwarded again.

use futures_util::{SinkExt, StreamExt};
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use sluice_e2e::cluster::{cluster_process, clustered, clustered_with, PEER_SECRET};
use sluice_e2e::redis::RedisServer;
use sluice_e2e::tls::{server_config, tls_connect, tls_upstream, TestCa};
use sluice_e2e::upstream::{self, echo_round_trip, tcp_echo, Upstream};
use sluice_e2e::{any_port, client, eventually, TestAgent, TestEdge, TOKEN};
use sluice_edge::EventDestination;
use sluice_proto::codec::{read_frame, write_frame};
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::frame::{ForwardHead, Frame, RequestHead};
use sluice_proto::framed::{FrameReader, FrameWriter};
use sluice_proto::link::Link;
use sluice_proto::scheme::Scheme;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// Basic auth on the endpoint: whoever runs the policy answers 401 without credentials.
const GUARDED: &str = r#"
on_http_request:
  - actions:
      - type: basic-auth
        config: {credentials: ["user:secret-pass"]}
"#;

/// A shop that sends `/api/*` to its authtoken's internal endpoint.
const SHOP: &str = r#"
on_http_request:
  - expressions: ["req.url.path.startsWith('/api/')"]
    actions:
      - type: forward-internal
        config: {url: "https://api.internal"}
"#;

fn with_policy(
    edge: &TestEdge,
    name: &str,
    up: &Upstream,
    policy: &str,
) -> sluice_agent::AgentConfig {
    let mut config = edge.agent_config(TOKEN, name, up.addr);
    config.endpoints[0].policies = vec![PolicySource {
        origin: format!("{name} policy"),
        kind: PolicyKind::Document,
        text: policy.into(),
    }];
    config
}

/// `url`'s path and query on `edge`'s HTTP listener, with `host`'s Host header.
fn via(edge: &TestEdge, host: &str, path: &str) -> String {
    format!("{}{path}", edge.url(host))
}

/// The events `file` holds so far.
fn events(file: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_without_the_agent_runs_the_policy_and_forwards_to_the_edge_that_has_it(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let dir = tempfile::tempdir()?;
    let events_file = dir.path().join("one.jsonl");
    let events_dest = EventDestination::events_file(events_file.to_str().expect("utf8"));
    let one = clustered_with(&redis, "one", |c| c.event_destinations = vec![events_dest]).await?;
    let two = clustered(&redis, "two").await?;
    let (up, api_up) = (upstream::app("guarded").await?, upstream::app("api").await?);
    let guarded = TestAgent::start(with_policy(&two, "guarded", &up, GUARDED)).await?;
    let shop = TestAgent::start(with_policy(&two, "shop", &up, SHOP)).await?;
    let api = TestAgent::start(two.agent_config(TOKEN, "api.internal", api_up.addr)).await?;
    let host = "guarded.localhost";

    // As soon as edge one knows the endpoint, a request with credentials is forwarded (the
    // first one waits for the link to edge two), relayed and answered by the agent's app,
    // which sees the client's forwarding headers as edge one wrote them.
    let authorized = || {
        client()
            .get(via(&one, host, "/hello"))
            .basic_auth("user", Some("secret-pass"))
    };
    let r = eventually(
        Duration::from_secs(5),
        "edge one to know the endpoint",
        || async {
            let r = authorized().send().await.ok()?;
            (r.status() != 404).then_some(r)
        },
    )
    .await?;
    assert_eq!(r.status(), 200);
    let seen = upstream::Seen::parse(&r.text().await?)?;
    assert_eq!(seen.header("x-forwarded-host").as_deref(), Some(host));
    assert!(
        seen.header("authorization").is_some(),
        "the credentials reach the app"
    );
    assert_eq!(two.metric("sluice_edge_relayed_requests_total", ""), 1.0);

    // The entry edge runs the policy: without credentials nothing reaches the other edge.
    let refused = client().get(via(&one, host, "/")).send().await?;
    assert_eq!(refused.status(), 401, "{:?}", refused.headers());
    assert_eq!(two.metric("sluice_edge_relayed_requests_total", ""), 1.0);

    // A 3 MiB upload arrives whole, and the same stream carries the next requests.
    let body: Vec<u8> = (0..3 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let expected = format!("{:x} {}", Sha256::digest(&body), body.len());
    for _ in 0..3 {
        let r = client()
            .post(via(&one, host, "/sha256"))
            .basic_auth("user", Some("secret-pass"))
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(r.status(), 200);
        assert_eq!(r.text().await?, expected);
    }

    // forward-internal runs on the entry edge too; the internal endpoint it picks is held by
    // the other edge, and the request reaches it there.
    let r = client()
        .get(via(&one, "shop.localhost", "/api/items"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-upstream"], "api");

    // The entry edge's event says where the request went.
    let event = eventually(
        Duration::from_secs(10),
        "the forwarded request's event",
        || {
            let found = events(&events_file)
                .into_iter()
                .find(|e| e["object"]["http"]["request"]["url"]["path"] == "/hello");
            async move { found }
        },
    )
    .await?;
    assert_eq!(event["object"]["forwarded_to_edge"], "two", "{event}");
    assert_eq!(event["object"]["http"]["response"]["status_code"], 200);
    assert_eq!(
        event["object"]["basic_auth"]["decision"], "allow",
        "{event}"
    );

    api.stop().await?;
    shop.stop().await?;
    guarded.stop().await?;
    // Once the agent left, edge one no longer knows the name.
    eventually(
        Duration::from_secs(5),
        "the endpoint gone on edge one",
        || async {
            let r = client().get(via(&one, host, "/")).send().await.ok()?;
            (r.status() == 404).then_some(())
        },
    )
    .await?;
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_through_an_edge_without_the_agent_echoes() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let two = clustered(&redis, "two").await?;
    let up = upstream::websocket_echo().await?;
    let agent = TestAgent::start(two.agent_config(TOKEN, "ws", up.addr)).await?;
    let url = format!("ws://ws.localhost:{}/socket", one.http_addr.port());
    let (mut ws, _) = eventually(
        Duration::from_secs(5),
        "the upgrade through edge one",
        || {
            let request = url.clone();
            async move {
                let tcp = tokio::net::TcpStream::connect(one.http_addr).await.ok()?;
                tokio_tungstenite::client_async(request, tcp).await.ok()
            }
        },
    )
    .await?;
    for i in 0..20u32 {
        let text = format!("message {i}");
        ws.send(Message::text(text.clone())).await?;
        let back = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?;
        assert_eq!(back.transpose()?, Some(Message::text(text)));
    }
    let big = vec![7u8; 512 * 1024];
    ws.send(Message::binary(big.clone())).await?;
    let back = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?;
    assert_eq!(back.transpose()?, Some(Message::binary(big)));
    ws.close(None).await?;
    // The close handshake passes both edges, and the connection ends after it.
    let closed = tokio::time::timeout(Duration::from_secs(5), ws.next()).await?;
    assert!(matches!(closed, Some(Ok(Message::Close(_)))), "{closed:?}");
    let end = tokio::time::timeout(Duration::from_secs(2), ws.next()).await?;
    assert!(end.is_none(), "after the close handshake: {end:?}");
    drop(ws);
    agent.stop().await?;
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

/// An edge of the cluster over `redis` with `ports` for `tcp://` endpoints, its listeners on
/// loopback address `ip` (edges sharing a port range need addresses of their own here, as
/// they have machines of their own in production).
async fn tcp_edge(
    redis: &RedisServer,
    id: &str,
    ip: [u8; 4],
    ports: sluice_edge::PortRange,
    events: &std::path::Path,
) -> anyhow::Result<TestEdge> {
    let events = EventDestination::events_file(events.to_str().unwrap_or_default());
    clustered_with(redis, id, |c| {
        c.http_addr = SocketAddr::from((ip, 0));
        c.tcp_ports = Some(ports);
        c.event_destinations = vec![events];
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_endpoint_answers_on_its_port_of_every_edge() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let ports = sluice_e2e::tcp_port_range(20)?;
    let dir = tempfile::tempdir()?;
    let events_file = dir.path().join("one.jsonl");
    let one = tcp_edge(&redis, "one", [127, 0, 0, 2], ports, &events_file).await?;
    let two = tcp_edge(
        &redis,
        "two",
        [127, 0, 0, 3],
        ports,
        &dir.path().join("two"),
    )
    .await?;
    let echo = tcp_echo().await?;
    let agent = TestAgent::start(two.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    let port = sluice_e2e::tcp_address(agent.url())?.port();
    let (via_one, via_two) = (
        SocketAddr::from(([127, 0, 0, 2], port)),
        SocketAddr::from(([127, 0, 0, 3], port)),
    );
    // Edge one opens the port when it mirrors the endpoint.
    eventually(Duration::from_secs(5), "edge one to listen", || async {
        tokio::net::TcpStream::connect(via_one).await.ok()
    })
    .await?;
    const LEN: u64 = 3 * 1024 * 1024;
    for addr in [via_one, via_two] {
        let echoed = echo_round_trip(addr, LEN, 11, Duration::from_secs(30)).await?;
        assert_eq!(
            (echoed.received_len, &echoed.received),
            (LEN, &echoed.sent),
            "through {addr}"
        );
    }
    assert!(one.metric("sluice_edge_relayed_requests_total", "") == 0.0);
    assert!(two.metric("sluice_edge_relayed_requests_total", "") >= 1.0);
    // Edge one's event of the echo's connection names the edge that relayed it.
    let closed = eventually(
        Duration::from_secs(5),
        "edge one's connection event",
        || {
            let file = events_file.clone();
            async move {
                events(&file).into_iter().find(|e| {
                    e["event_type"] == "tcp_connection_closed.v0"
                        && e["object"]["conn"]["bytes_in"] == LEN
                })
            }
        },
    )
    .await?;
    assert_eq!(closed["object"]["forwarded_to_edge"], "two", "{closed}");
    assert_eq!(closed["object"]["conn"]["bytes_out"], LEN, "{closed}");
    // When the endpoint leaves, so does edge one's listener.
    agent.stop().await?;
    eventually(
        Duration::from_secs(5),
        "edge one to close the port",
        || async {
            tokio::net::TcpStream::connect(via_one)
                .await
                .is_err()
                .then_some(())
        },
    )
    .await?;
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_endpoint_answers_by_its_name_on_every_edges_https_port() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let dir = tempfile::tempdir()?;
    let edge_ca = TestCa::new("edge CA")?;
    let (wildcard, _) = edge_ca.issue(dir.path(), "wildcard", &["*.tunnel.test"])?;
    let mut edges = Vec::new();
    for id in ["one", "two"] {
        let cert = wildcard.clone();
        edges.push(
            clustered_with(&redis, id, |c| {
                c.domain = sluice_edge::Hostname::parse("tunnel.test").expect("domain");
                let mut https = sluice_edge::HttpsConfig::new(any_port());
                https.default_cert = Some(cert);
                c.https = Some(https);
            })
            .await?,
        );
    }
    let (one, two) = (&edges[0], &edges[1]);
    // The app's own certificate, from a CA no edge knows: only the app can end this TLS.
    let app_ca = TestCa::new("app CA")?;
    let (app_files, _) = app_ca.issue(dir.path(), "app", &["db.tunnel.test"])?;
    let app = tls_upstream(server_config(&app_files, rustls::DEFAULT_VERSIONS)?).await?;
    let agent = TestAgent::start(two.tcp_agent_config(TOKEN, "tls://db.tunnel.test", app)).await?;

    let https_one = one.https()?;
    let mut tls = eventually(
        Duration::from_secs(5),
        "the app's TLS through edge one",
        || {
            let config = app_ca.client_config(&[]);
            async move {
                tls_connect(config.ok()?, https_one, "db.tunnel.test")
                    .await
                    .ok()
            }
        },
    )
    .await?;
    tls.write_all(b"hello through one").await?;
    let mut reply = vec![0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(5), tls.read(&mut reply)).await??;
    assert_eq!(&reply[..n], b"upstream: hello through one");
    assert!(two.metric("sluice_edge_relayed_requests_total", "") >= 1.0);
    // The edge's own names on the same port still get the edge's certificate.
    let own = tls_connect(edge_ca.client_config(&[])?, https_one, "www.tunnel.test").await;
    assert!(own.is_ok(), "{:?}", own.err());
    drop(tls);
    agent.stop().await?;
    for edge in edges {
        edge.shutdown().await;
    }
    Ok(())
}

/// Requests each closed-loop worker sends at most (the loops are bounded by time as well).
const MAX_PER_WORKER: u32 = 100_000;

/// A closed loop of `workers` sending GETs to `url` for `run`: (ok, failed).
async fn closed_loop(url: String, workers: usize, run: Duration) -> (u64, u64) {
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let deadline = Instant::now() + run;
    let mut tasks = Vec::new();
    for _ in 0..workers {
        let (url, ok, failed) = (url.clone(), ok.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let client = client();
            // Bounded by time and by count.
            for _ in 0..MAX_PER_WORKER {
                if Instant::now() >= deadline {
                    break;
                }
                let sent = client
                    .get(&url)
                    .timeout(Duration::from_secs(10))
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status() == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    (ok.load(Ordering::Relaxed), failed.load(Ordering::Relaxed))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_edge_costs_at_most_the_requests_in_flight_on_it() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let three = clustered(&redis, "three").await?;
    // Edge two is a process, so it can die without a word.
    let dir = tempfile::tempdir()?;
    let two = cluster_process(&redis, "two", dir.path(), any_port(), any_port()).await?;
    let up = upstream::one_kib().await?;
    // The same authtoken holds the name on edges two and three.
    let on_two = TestAgent::start(sluice_e2e::agent_config(
        two.tunnel_addr,
        &two.cert,
        TOKEN,
        "steady",
        up.addr,
    ))
    .await?;
    let on_three = TestAgent::start(three.agent_config(TOKEN, "steady", up.addr)).await?;
    let through_one = via(&one, "steady.localhost", "/");
    eventually(Duration::from_secs(5), "edge one to reach both", || async {
        let r = client().get(&through_one).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await?;

    let workers = 4;
    let load_one = tokio::spawn(closed_loop(
        through_one.clone(),
        workers,
        Duration::from_secs(6),
    ));
    let load_three = tokio::spawn(closed_loop(
        via(&three, "steady.localhost", "/"),
        workers,
        Duration::from_secs(6),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    two.kill().await?;
    let (ok_one, failed_one) = load_one.await?;
    let (ok_three, failed_three) = load_three.await?;
    println!(
        "edge two killed: through edge one {ok_one} ok, {failed_one} failed; through edge three {ok_three} ok, {failed_three} failed"
    );
    assert_eq!(
        failed_three, 0,
        "the edge holding its own link loses nothing"
    );
    assert!(
        failed_one <= workers as u64,
        "at most the requests in flight on the dead edge fail: {failed_one}"
    );
    assert!(ok_one > 100 && ok_three > 100, "{ok_one} / {ok_three}");
    // Afterwards every request through edge one goes to edge three.
    for _ in 0..20 {
        let r = client().get(&through_one).send().await?;
        assert_eq!(r.status(), 200);
    }
    drop(on_two);
    on_three.stop().await?;
    one.shutdown().await;
    three.shutdown().await;
    Ok(())
}

type HmacSha256 = Hmac<Sha256>;

/// Dials `addr` as another edge would, proving `secret`; the link, and the listener's answer
/// (its proof) when it gave one.
async fn dial_peer(
    addr: SocketAddr,
    secret: &str,
) -> anyhow::Result<(quinn::Connection, Option<serde_json::Value>)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(sluice_proto::key_proof::AnyServerCertificate(
        sluice_proto::key_proof::KeyProof::new(&provider),
    ));
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"sluice-peer/1".to_vec()];
    let config = quinn::ClientConfig::new(Arc::new(
        quinn::crypto::rustls::QuicClientConfig::try_from(tls)?,
    ));
    let mut endpoint = quinn::Endpoint::client(any_port())?;
    endpoint.set_default_client_config(config);
    let conn = endpoint.connect(addr, "peer")?.await?;
    let mut export = [0u8; 32];
    conn.export_keying_material(&mut export, b"EXPORTER-sluice-peer-proof", b"")
        .map_err(|_| anyhow::anyhow!("no keying material"))?;
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes())?;
    mac.update(b"dialler:");
    mac.update(&export);
    let proof = serde_json::json!({
        "edge_id": "visitor",
        "mac": mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>(),
    });
    let link = Link::Quic(conn.clone());
    let (mut send, mut recv) = link.open_bi().await?;
    write_frame(&mut send, &proof).await?;
    let answer = tokio::time::timeout(Duration::from_secs(5), read_frame(&mut recv))
        .await?
        .ok();
    Ok((conn, answer))
}

/// Sends one forwarded request for `endpoint` with `hops` on `conn`; the first frame back.
async fn forward(conn: &quinn::Connection, endpoint: &str, hops: u8) -> anyhow::Result<Frame> {
    let link = Link::Quic(conn.clone());
    let (send, recv) = link.open_bi().await?;
    let (mut writer, mut reader) = (FrameWriter::new(send), FrameReader::new(recv));
    let forward = ForwardHead {
        endpoint: endpoint.into(),
        policy_id: [0; 32],
        hops,
    };
    writer.send(&Frame::Forward(Box::new(forward))).await?;
    let mut headers = http::HeaderMap::new();
    headers.insert("host", "steady.localhost".parse()?);
    let head = RequestHead {
        endpoint_id: 0,
        request_id: "req_visitor".into(),
        client_addr: "127.0.0.1:1".parse()?,
        scheme: Scheme::Http,
        method: http::Method::GET,
        uri: "/".parse()?,
        version: http::Version::HTTP_11,
        headers,
        end_stream: true,
    };
    writer.send(&Frame::RequestHead(Box::new(head))).await?;
    let answer = tokio::time::timeout(Duration::from_secs(5), reader.next()).await??;
    answer.ok_or_else(|| anyhow::anyhow!("the stream ended without an answer"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_without_the_peer_secret_is_refused_and_requests_never_pass_two_edges(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let two = clustered(&redis, "two").await?;
    let up = upstream::app("steady").await?;
    let agent = TestAgent::start(two.agent_config(TOKEN, "steady", up.addr)).await?;
    let peer_addr = two
        .handle()
        .peer_addr
        .ok_or_else(|| anyhow::anyhow!("edge two takes no links"))?;

    // Another secret: no proof back, the link is closed, and nothing was relayed.
    let (conn, answer) = dial_peer(peer_addr, "not-the-cluster-secret").await?;
    assert!(answer.is_none(), "a wrong proof got an answer: {answer:?}");
    let closed = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await?;
    assert!(
        closed.to_string().contains("peer proof refused"),
        "{closed}"
    );
    assert_eq!(two.metric("sluice_edge_relayed_requests_total", ""), 0.0);

    // The secret: the listener proves it too, and relays a request that came from the edge
    // the client reached (one hop)...
    let (conn, answer) = dial_peer(peer_addr, PEER_SECRET).await?;
    let answer = answer.ok_or_else(|| anyhow::anyhow!("no proof back"))?;
    assert_eq!(answer["edge_id"], "two");
    // ...with the policy digest of a member there: a request whose entry edge ran another
    // policy finds no member to take it.
    let offline = forward(&conn, "http://steady.localhost", 1).await?;
    let Frame::Error(failure) = offline else {
        anyhow::bail!("expected a failure, got {offline:?}");
    };
    assert_eq!(
        failure.code.to_string(),
        "ERR_SLUICE_3210",
        "{}",
        failure.message
    );
    // One that already passed another edge is refused, so requests cannot loop.
    let looped = forward(&conn, "http://steady.localhost", 2).await?;
    let Frame::Error(failure) = looped else {
        anyhow::bail!("expected a refusal, got {looped:?}");
    };
    assert!(
        failure.message.contains("more than one edge"),
        "{}",
        failure.message
    );
    assert_eq!(two.metric("sluice_edge_relayed_requests_total", ""), 0.0);
    agent.stop().await?;
    two.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_traffic_never_stops_while_the_store_dies_and_comes_back_empty(
) -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let one = clustered(&redis, "one").await?;
    let two = clustered(&redis, "two").await?;
    let up = upstream::one_kib().await?;
    let agent = TestAgent::start(two.agent_config(TOKEN, "steady", up.addr)).await?;
    let through_one = via(&one, "steady.localhost", "/");
    eventually(Duration::from_secs(5), "edge one to forward", || async {
        let r = client().get(&through_one).send().await.ok()?;
        (r.status() == 200).then_some(())
    })
    .await?;

    let load = tokio::spawn(closed_loop(through_one.clone(), 2, Duration::from_secs(16)));
    tokio::time::sleep(Duration::from_secs(1)).await;
    redis.kill().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Back without its data: the holders write their claims again, the mirrors keep what
    // they had meanwhile.
    redis.restart().await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // Data lost while running, again and again: edge one's periodic reads (every 3 s) fall
    // into some of the windows before edge two writes its claim back (within 1 s).
    for _ in 0..12 {
        redis.flush_all().await?;
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (ok, failed) = load.await?;
    println!("store killed, restarted empty, flushed 12 times: {ok} forwarded requests ok, {failed} failed");
    assert_eq!(failed, 0, "forwarded traffic stopped");
    assert!(ok > 100, "{ok}");

    // The mirror follows the store again: an endpoint that comes online now is forwarded.
    let late_up = upstream::app("late").await?;
    let late = TestAgent::start(two.agent_config(TOKEN, "late", late_up.addr)).await?;
    eventually(
        Duration::from_secs(5),
        "edge one to forward the new endpoint",
        || async {
            let r = client()
                .get(via(&one, "late.localhost", "/"))
                .send()
                .await
                .ok()?;
            (r.status() == 200).then_some(())
        },
    )
    .await?;
    late.stop().await?;
    agent.stop().await?;
    one.shutdown().await;
    two.shutdown().await;
    Ok(())
}

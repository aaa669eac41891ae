//! HTTPS at the edge: TLS with certificate verification on, HTTP/2 by ALPN, per-SNI
//! certificates, https:// endpoints by default, redirects, websockets over TLS, TLS facts in
//! policies, and certificate files rotated under a running edge.

use futures_util::{SinkExt, StreamExt};
use sluice_agent::AgentConfig;
use sluice_e2e::tls::{presented_leaf, tls_connect, TestCa};
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{any_port, client, eventually, within, TestAgent, TestEdge, TOKEN};
use sluice_edge::EdgeConfig;
use sluice_edge::EventDestination;
use sluice_edge::Hostname;
use sluice_edge::HttpsConfig;
use sluice_proto::control::{PolicyKind, PolicySource};
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

const DOMAIN: &str = "tunnel.test";

/// An edge for `*.tunnel.test` with HTTPS on: the CA's wildcard as `--tls-cert` and a named
/// certificate for `api.tunnel.test` from the `tls_certificates` list, checked every 100 ms.
async fn https_edge(ca: &TestCa, dir: &Path, redirect_http: bool) -> anyhow::Result<TestEdge> {
    https_edge_with(ca, dir, redirect_http, |_| {}).await
}

/// [`https_edge`] with one more change to the edge's configuration.
async fn https_edge_with(
    ca: &TestCa,
    dir: &Path,
    redirect_http: bool,
    tweak: impl FnOnce(&mut EdgeConfig),
) -> anyhow::Result<TestEdge> {
    let (wildcard, _) = ca.issue(dir, "wildcard", &["*.tunnel.test"])?;
    let (named, _) = ca.issue(dir, "api", &["api.tunnel.test"])?;
    TestEdge::start_with(|c| {
        tweak(c);
        c.domain = Hostname::parse(DOMAIN).unwrap_or_else(|e| panic!("{e}"));
        let mut https = HttpsConfig::new(any_port());
        https.default_cert = Some(wildcard);
        https.certificates = vec![named];
        https.redirect_http = redirect_http;
        https.reload_interval = Duration::from_millis(100);
        c.https = Some(https);
    })
    .await
}

fn https_port(edge: &TestEdge) -> u16 {
    edge.https_addr.map_or(0, |a| a.port())
}

fn with_policy(mut config: AgentConfig, yaml: &str) -> AgentConfig {
    config.endpoints[0].policies.push(PolicySource {
        origin: "test".into(),
        kind: PolicyKind::Document,
        text: yaml.into(),
    });
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_request_verified_over_http2() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = https_edge(&ca, dir.path(), false).await?;
    let up = upstream::app("secure").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "app", up.addr)).await?;
    assert_eq!(
        agent.url(),
        format!("https://app.tunnel.test:{}", https_port(&edge))
    );

    let resp = ca
        .https_client()?
        .get(format!("{}/hello", agent.url()))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.version(), http::Version::HTTP_2, "ALPN must pick h2");
    let seen = Seen::parse(&resp.text().await?)?;
    assert_eq!(seen.uri, "/hello");
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));

    // A client that does not trust the CA is refused: verification really happens.
    let untrusting = sluice_e2e::client::client_builder()
        .tls_built_in_root_certs(false)
        .build()?;
    assert!(untrusting.get(agent.url()).send().await.is_err());
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_schemes_and_http_redirect() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = https_edge(&ca, dir.path(), false).await?;
    let up = upstream::app("plain").await?;
    let secure = TestAgent::start(edge.agent_config(TOKEN, "secure", up.addr)).await?;
    let plain = TestAgent::start(edge.agent_config(TOKEN, "http://plain", up.addr)).await?;
    assert_eq!(
        plain.url(),
        format!("http://plain.tunnel.test:{}", edge.http_addr.port())
    );
    let https = ca.https_client()?;

    // An https endpoint does not exist on plain HTTP, and an http one not on HTTPS.
    let r = client().get(edge.url("secure.tunnel.test")).send().await?;
    sluice_e2e::assert_endpoint_not_found(&r);
    let r = https
        .get(format!("https://plain.tunnel.test:{}/", https_port(&edge)))
        .send()
        .await?;
    sluice_e2e::assert_endpoint_not_found(&r);
    let r = client().get(format!("{}/x", plain.url())).send().await?;
    assert_eq!(r.status(), 200);
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("http"));
    secure.stop().await?;
    plain.stop().await?;
    edge.shutdown().await;

    // With redirects on, plain HTTP for an https endpoint gets a 308 to the https URL.
    let edge = https_edge(&ca, dir.path(), true).await?;
    let secure = TestAgent::start(edge.agent_config(TOKEN, "secure", up.addr)).await?;
    let no_follow = sluice_e2e::client::client_builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let r = no_follow
        .get(format!("{}/a/b?c=d", edge.url("secure.tunnel.test")))
        .send()
        .await?;
    assert_eq!(r.status(), 308);
    assert_eq!(
        r.headers()["location"],
        format!("https://secure.tunnel.test:{}/a/b?c=d", https_port(&edge)).as_str()
    );
    secure.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_url_needs_an_https_listener() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("x").await?;
    let launched =
        TestAgent::launch(edge.agent_config(TOKEN, "https://x.localhost", up.addr)).await?;
    match launched {
        sluice_e2e::Launch::Exited(Err(e)) => {
            assert!(e.to_string().contains("no HTTPS listener"), "{e}")
        }
        _ => anyhow::bail!("an https:// endpoint came online on an edge without HTTPS"),
    }
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_the_certificate() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = https_edge(&ca, dir.path(), false).await?;
    let addr = https_addr(&edge)?;
    let wildcard = leaf_der(dir.path(), "wildcard")?;
    let named = leaf_der(dir.path(), "api")?;
    for (sni, want) in [
        ("api.tunnel.test", &named),
        ("web.tunnel.test", &wildcard),
        ("API.tunnel.test", &named),
    ] {
        assert_eq!(
            &served_leaf(&ca, addr, sni).await?,
            want,
            "certificate for {sni}"
        );
    }
    edge.shutdown().await;
    Ok(())
}

fn https_addr(edge: &TestEdge) -> anyhow::Result<SocketAddr> {
    edge.https_addr
        .ok_or_else(|| anyhow::anyhow!("edge has no HTTPS listener"))
}

/// The leaf certificate in `DIR/NAME.crt`, DER.
fn leaf_der(dir: &Path, name: &str) -> anyhow::Result<Vec<u8>> {
    let pem = std::fs::read(dir.join(format!("{name}.crt")))?;
    let first = rustls_pemfile::certs(&mut &pem[..])
        .next()
        .ok_or_else(|| anyhow::anyhow!("no certificate in {name}.crt"))??;
    Ok(first.to_vec())
}

/// The leaf the edge presents for `sni` in a fresh handshake.
async fn served_leaf(ca: &TestCa, addr: SocketAddr, sni: &str) -> anyhow::Result<Vec<u8>> {
    let tls = tls_connect(ca.client_config(&[b"http/1.1"])?, addr, sni).await?;
    let leaf = presented_leaf(&tls).ok_or_else(|| anyhow::anyhow!("no certificate"))?;
    Ok(leaf.to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_https() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = https_edge(&ca, dir.path(), false).await?;
    let up = upstream::websocket_echo().await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "ws", up.addr)).await?;
    // Websockets use HTTP/1.1's Upgrade, so this client offers only http/1.1.
    let tls = tls_connect(
        ca.client_config(&[b"http/1.1"])?,
        https_addr(&edge)?,
        "ws.tunnel.test",
    )
    .await?;
    let url = format!("wss://ws.tunnel.test:{}/socket", https_port(&edge));
    let (mut ws, resp) = within(
        Duration::from_secs(10),
        "websocket handshake over TLS",
        tokio_tungstenite::client_async(url, tls),
    )
    .await??;
    assert_eq!(resp.status(), 101);
    within(Duration::from_secs(20), "echoes", async {
        for i in 0..20 {
            ws.send(Message::text(format!("secure {i}"))).await?;
            let echo = ws
                .next()
                .await
                .ok_or_else(|| anyhow::anyhow!("closed before echo {i}"))??;
            assert_eq!(echo, Message::text(format!("secure {i}")));
        }
        anyhow::Ok(())
    })
    .await??;
    ws.close(None).await?;
    drop(ws);
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_see_the_real_scheme_and_tls_version() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let events = dir.path().join("events.jsonl");
    let dest = EventDestination::events_file(events.to_str().expect("utf8"));
    let edge = https_edge_with(&ca, dir.path(), false, |c| {
        c.event_destinations = vec![dest]
    })
    .await?;
    let up = upstream::app("facts").await?;
    let policy = r#"
on_http_request:
  - actions:
      - type: add-headers
        config:
          headers:
            x-tls: "${conn.tls.version}"
            x-scheme: "${req.url.scheme}"
            x-port: "${conn.server_port}"
"#;
    let agent = TestAgent::start(with_policy(
        edge.agent_config(TOKEN, "facts", up.addr),
        policy,
    ))
    .await?;
    for (max, want) in [
        (reqwest::tls::Version::TLS_1_2, "1.2"),
        (reqwest::tls::Version::TLS_1_3, "1.3"),
    ] {
        let c = sluice_e2e::client::client_builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_der(&ca.der())?)
            .max_tls_version(max)
            .build()?;
        let r = c.get(agent.url()).send().await?;
        assert_eq!(r.status(), 200);
        let seen = Seen::parse(&r.text().await?)?;
        assert_eq!(seen.header("x-tls").as_deref(), Some(want));
        assert_eq!(seen.header("x-scheme").as_deref(), Some("https"));
        assert_eq!(seen.header("x-port"), Some(https_port(&edge).to_string()));
    }
    agent.stop().await?;
    edge.shutdown().await;

    // The exported events carry the same facts (shutdown flushed them).
    let lines = std::fs::read_to_string(&events)?;
    let versions: Vec<String> = lines
        .lines()
        .map(serde_json::from_str::<serde_json::Value>)
        .collect::<Result<Vec<_>, _>>()?
        .iter()
        .map(|e| {
            let o = &e["object"];
            assert_eq!(o["http"]["request"]["url"]["scheme"], "https", "{o}");
            o["tls"]["version"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(versions, ["1.2", "1.3"], "{lines}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_certificate_is_served_without_restart() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = https_edge(&ca, dir.path(), false).await?;
    let addr = https_addr(&edge)?;
    let up = upstream::app("rot").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "api", up.addr)).await?;
    let old = leaf_der(dir.path(), "api")?;
    assert_eq!(served_leaf(&ca, addr, "api.tunnel.test").await?, old);

    // A keep-alive HTTP/1.1 connection opened before the rotation.
    let tls = tls_connect(ca.client_config(&[b"http/1.1"])?, addr, "api.tunnel.test").await?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls)).await?;
    tokio::spawn(conn);
    let get = || {
        http::Request::builder()
            .uri("/before")
            .header("host", "api.tunnel.test")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
    };
    assert_eq!(send.send_request(get()?).await?.status(), 200);

    // Renewal as an outside ACME client does it: new key, new certificate, same file names.
    ca.issue(dir.path(), "api", &["api.tunnel.test"])?;
    let new = leaf_der(dir.path(), "api")?;
    assert_ne!(new, old);
    eventually(
        Duration::from_secs(20),
        "the rotated certificate",
        || async {
            let got = served_leaf(&ca, addr, "api.tunnel.test").await.ok()?;
            (got == new).then_some(())
        },
    )
    .await?;
    // The connection from before the rotation still works, and so do new requests.
    assert_eq!(send.send_request(get()?).await?.status(), 200);
    let r = ca.https_client()?.get(agent.url()).send().await?;
    assert_eq!(r.status(), 200);

    // A broken file does not replace the working certificate.
    std::fs::write(dir.path().join("api.crt"), "not a certificate")?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(served_leaf(&ca, addr, "api.tunnel.test").await?, new);
    let metrics = edge.handle().metrics().gather();
    let failures = metrics
        .iter()
        .find(|m| m.name() == "sluice_edge_tls_cert_reload_failures_total")
        .map(|m| m.get_metric()[0].get_counter().value())
        .unwrap_or(0.0);
    assert!(failures >= 1.0, "reload failure not counted");
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// Debian's `h2load` (nghttp2-client) as a second, independent HTTP/2 client
/// (`scripts/setup.d/50-nghttp2` installs it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_negotiates_http2() -> anyhow::Result<()> {
    if !sluice_e2e::tools::installed(&["h2load"], "scripts/setup.d/50-nghttp2")? {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let edge = https_edge(&ca, dir.path(), false).await?;
    let up = upstream::app("h2").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "h2", up.addr)).await?;
    let out = within(
        Duration::from_secs(60),
        "h2load",
        tokio::process::Command::new("h2load")
            .args(["-n", "40", "-c", "2", "-m", "4"])
            .arg(format!("--connect-to=127.0.0.1:{}", https_port(&edge)))
            .arg(format!("{}/x", agent.url()))
            .kill_on_drop(true)
            .output(),
    )
    .await??;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Application protocol: h2"), "{text}");
    assert!(text.contains("40 succeeded"), "{text}");
    assert!(text.contains("status codes: 40 2xx"), "{text}");
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

//! The HTTPS listener's own TLS (edge/src/tls/front.rs): routing by SNI before any TLS is done.
//! A name registered for passthrough reaches a TLS server of its own with the client's bytes
//! untouched (its certificate, its handshake) while other names on the same port keep the
//! edge's certificate; a name given its own rustls configuration gets it; a name no
//! certificate covers, and bytes that are not TLS, are refused at once, not left hanging.

use futures_util::future::BoxFuture;
use sluice_e2e::tls::{presented_leaf, server_config, tls_connect, tls_upstream, TestCa};
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{any_port, client, within, TestAgent, TestEdge, TOKEN};
use sluice_edge::{
    CertFiles, H1Server, Hostname, HttpsConfig, PassthroughTarget, RawTlsConn, SniDecision,
    SniTable,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

const DOMAIN: &str = "tunnel.test";

/// An edge for `*.tunnel.test` whose HTTPS listener has `files` (the first as the default
/// certificate when `default` is set).
async fn edge(files: Vec<CertFiles>, default: bool) -> anyhow::Result<TestEdge> {
    TestEdge::start_with(|c| {
        c.domain = Hostname::parse(DOMAIN).unwrap_or_else(|e| panic!("{e}"));
        let mut https = HttpsConfig::new(any_port());
        let mut files = files.into_iter();
        if default {
            https.default_cert = files.next();
        }
        https.certificates = files.collect();
        c.https = Some(https);
    })
    .await
}

fn sni_routes(edge: &TestEdge) -> anyhow::Result<Arc<SniTable>> {
    edge.handle()
        .sni_routes
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no HTTPS listener"))
}

/// A passthrough target splicing each connection to `upstream` (what the agent's stream will
/// do) and reporting the SNI and client address it was given.
struct Splice {
    upstream: SocketAddr,
    seen: mpsc::UnboundedSender<(String, Option<SocketAddr>)>,
}

impl PassthroughTarget for Splice {
    fn serve(&self, mut conn: RawTlsConn) -> BoxFuture<'static, ()> {
        let _ = self.seen.send((conn.sni.clone(), conn.client));
        let upstream = self.upstream;
        Box::pin(async move {
            if let Ok(mut up) = TcpStream::connect(upstream).await {
                let _ = tokio::io::copy_bidirectional(&mut conn.stream, &mut up).await;
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passthrough_by_sni_reaches_the_upstreams_own_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let edge_ca = TestCa::new("edge CA")?;
    let (wildcard, edge_leaf) = edge_ca.issue(dir.path(), "wildcard", &["*.tunnel.test"])?;
    let edge = edge(vec![wildcard], true).await?;
    let addr = edge.https()?;

    // The app's certificate comes from a CA the edge has never seen.
    let app_ca = TestCa::new("app CA")?;
    let (app_files, app_leaf) = app_ca.issue(dir.path(), "app", &["db.tunnel.test"])?;
    let upstream = tls_upstream(server_config(&app_files, rustls::DEFAULT_VERSIONS)?).await?;
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let target = Arc::new(Splice {
        upstream,
        seen: seen_tx,
    });
    sni_routes(&edge)?.insert("DB.tunnel.test", SniDecision::Passthrough(target));

    // The client trusts only the app's CA: the handshake completes only if the ClientHello
    // reached the app whole (it is in the transcript both sides sign).
    let mut tls = within(
        Duration::from_secs(5),
        "a handshake with the app",
        tls_connect(app_ca.client_config(&[b"h2"])?, addr, "db.tunnel.test"),
    )
    .await??;
    assert_eq!(presented_leaf(&tls), Some(app_leaf));
    assert_eq!(
        tls.get_ref().1.alpn_protocol(),
        None,
        "the app, not the edge, answered ALPN"
    );
    tls.write_all(b"hello").await?;
    let mut reply = [0u8; 15];
    within(
        Duration::from_secs(5),
        "the upstream's reply",
        tls.read_exact(&mut reply),
    )
    .await??;
    assert_eq!(&reply, b"upstream: hello");
    let (sni, client) = seen
        .recv()
        .await
        .ok_or_else(|| anyhow::anyhow!("no call"))?;
    assert_eq!(sni, "db.tunnel.test");
    assert_eq!(client, Some(tls.get_ref().0.local_addr()?));

    // Another name on the same port still gets the edge's certificate (and its HTTP/2).
    let web = tls_connect(edge_ca.client_config(&[b"h2"])?, addr, "web.tunnel.test").await?;
    assert_eq!(presented_leaf(&web), Some(edge_leaf));
    assert_eq!(web.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));

    // Removed: the name is the edge's again (the app's CA no longer verifies it).
    sni_routes(&edge)?.remove("db.tunnel.test");
    let again = tls_connect(edge_ca.client_config(&[])?, addr, "db.tunnel.test").await?;
    assert_eq!(presented_leaf(&again), presented_leaf(&web));
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_with_its_own_configuration_gets_it() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("edge CA")?;
    let (wildcard, _) = ca.issue(dir.path(), "wildcard", &["*.tunnel.test"])?;
    let (own, own_leaf) = ca.issue(dir.path(), "own", &["strict.tunnel.test"])?;
    let edge = edge(vec![wildcard], true).await?;
    let addr = edge.https()?;
    let config = server_config(&own, &[&rustls::version::TLS13])?;
    sni_routes(&edge)?.insert(
        "strict.tunnel.test",
        SniDecision::Terminate(Some(Arc::new(config))),
    );

    let tls = tls_connect(ca.client_config(&[])?, addr, "strict.tunnel.test").await?;
    assert_eq!(presented_leaf(&tls), Some(own_leaf));
    // This configuration allows TLS 1.3 only; the shared one takes 1.2 for other names.
    let tls12 = tls12_client(&ca)?;
    let refused = within(
        Duration::from_secs(5),
        "a TLS 1.2 handshake",
        tls_connect(tls12.clone(), addr, "strict.tunnel.test"),
    )
    .await?;
    assert!(refused.is_err(), "TLS 1.2 accepted by a TLS 1.3-only name");
    tls_connect(tls12, addr, "web.tunnel.test").await?;
    edge.shutdown().await;
    Ok(())
}

fn tls12_client(ca: &TestCa) -> anyhow::Result<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca.der())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_without_a_certificate_and_plain_http_are_refused_at_once() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("edge CA")?;
    // Only a named certificate: no default to fall back on.
    let (named, _) = ca.issue(dir.path(), "api", &["api.tunnel.test"])?;
    let edge = edge(vec![named], false).await?;
    let addr = edge.https()?;
    tls_connect(ca.client_config(&[])?, addr, "api.tunnel.test").await?;

    let unknown = within(
        Duration::from_secs(5),
        "a handshake for an unknown name",
        tls_connect(ca.client_config(&[])?, addr, "nobody.tunnel.test"),
    )
    .await?;
    let err = unknown
        .err()
        .ok_or_else(|| anyhow::anyhow!("handshake passed"))?;
    assert!(
        format!("{err:#}").contains("received fatal alert"),
        "no alert: {err:#}"
    );

    // Plain HTTP on the HTTPS port: an alert and a close, not a wait.
    let mut tcp = TcpStream::connect(addr).await?;
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: api.tunnel.test\r\n\r\n")
        .await?;
    let mut answer = Vec::new();
    within(
        Duration::from_secs(5),
        "the answer to plain HTTP",
        tcp.read_to_end(&mut answer),
    )
    .await??;
    assert_eq!(
        answer.first(),
        Some(&0x15),
        "a TLS alert record: {answer:?}"
    );
    edge.shutdown().await;
    Ok(())
}

/// The hello bytes a client sends arrive at a passthrough target first and unchanged: the
/// target reads them itself (no TLS server behind it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_target_reads_the_client_hello_first() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("edge CA")?;
    let (wildcard, _) = ca.issue(dir.path(), "wildcard", &["*.tunnel.test"])?;
    let edge = edge(vec![wildcard], true).await?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    sni_routes(&edge)?.insert(
        "raw.tunnel.test",
        SniDecision::Passthrough(Arc::new(Record(tx))),
    );
    let hello = client_hello("raw.tunnel.test")?;
    let mut tcp = TcpStream::connect(edge.https()?).await?;
    // In two writes, the first shorter than a record header.
    tcp.write_all(&hello[..3]).await?;
    tokio::time::sleep(Duration::from_millis(50)).await;
    tcp.write_all(&hello[3..]).await?;
    tcp.write_all(b"after").await?;
    let got = within(Duration::from_secs(5), "the target's bytes", rx.recv())
        .await?
        .ok_or_else(|| anyhow::anyhow!("nothing"))?;
    assert_eq!(got, [&hello[..], b"after"].concat());
    edge.shutdown().await;
    Ok(())
}

/// Reads what a connection brings, until `after`, and reports it.
struct Record(mpsc::UnboundedSender<Vec<u8>>);

impl PassthroughTarget for Record {
    fn serve(&self, mut conn: RawTlsConn) -> BoxFuture<'static, ()> {
        let tx = self.0.clone();
        Box::pin(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            while !got.ends_with(b"after") {
                match conn.stream.read(&mut buf).await {
                    Ok(n @ 1..) => got.extend_from_slice(&buf[..n]),
                    _ => break,
                }
            }
            let _ = tx.send(got);
        })
    }
}

/// The first flight of a rustls client for `sni`.
fn client_hello(sni: &str) -> anyhow::Result<Vec<u8>> {
    let config = TestCa::new("unused")?.client_config(&[b"h2"])?;
    let name = rustls::pki_types::ServerName::try_from(sni.to_string())?;
    let mut conn = rustls::ClientConnection::new(Arc::new(config), name)?;
    let mut out = Vec::new();
    conn.write_tls(&mut out)?;
    Ok(out)
}

/// With pingora's own HTTP/1 server (`--h1-server pingora`), HTTPS still serves both HTTP
/// versions: the edge's TLS hands http/1.1 to pingora's server, h2 to its HTTP/2 server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pingoras_http1_server_behind_the_edges_tls() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("edge CA")?;
    let (wildcard, _) = ca.issue(dir.path(), "wildcard", &["*.tunnel.test"])?;
    let edge = TestEdge::start_with(|c| {
        c.domain = Hostname::parse(DOMAIN).unwrap_or_else(|e| panic!("{e}"));
        c.h1_server = H1Server::Pingora;
        let mut https = HttpsConfig::new(any_port());
        https.default_cert = Some(wildcard);
        c.https = Some(https);
    })
    .await?;
    let up = upstream::app("behind").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "app", up.addr)).await?;
    let root = ca.pem();
    for (h2, version) in [
        (false, http::Version::HTTP_11),
        (true, http::Version::HTTP_2),
    ] {
        let builder = client::client_builder()
            .tls_built_in_root_certs(false)
            .add_root_certificate(reqwest::Certificate::from_pem(root.as_bytes())?);
        let builder = if h2 { builder } else { builder.http1_only() };
        // Two requests on one connection: pingora's keep-alive loop runs on the TLS stream.
        let client = builder.build()?;
        for _ in 0..2 {
            let resp = client.get(format!("{}/x", agent.url())).send().await?;
            assert_eq!(resp.status(), 200);
            assert_eq!(resp.version(), version);
            let seen = Seen::parse(&resp.text().await?)?;
            assert_eq!(seen.header("x-forwarded-proto").as_deref(), Some("https"));
        }
    }
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

//! The built-in ACME client end to end against pebble on loopback: failures while the CA is
//! down are retried and counted, the certificate is obtained through HTTP-01 served by the edge
//! itself, served with verification against pebble's root, kept across a restart, renewed
//! before expiry, and issued on demand only for allowed names within the hourly budget.

use sluice_e2e::pebble::{self, PebblePlan};
use sluice_e2e::process::EdgeProcess;
use sluice_e2e::scrape::{sample, scrape};
use sluice_e2e::tls::{client_config_trusting, https_client_trusting, presented_leaf, tls_connect};
use sluice_e2e::upstream;
use sluice_e2e::{eventually, free_tcp_port, free_udp_port, TestAgent, TestEdge, TOKEN};
use sluice_edge::Hostname;
use sluice_edge::HttpsConfig;
use sluice_edge::{AcmeConfig, OnDemandConfig};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

const DOMAIN: &str = "acme.test";
const APP: &str = "app.acme.test";

fn host(s: &str) -> Hostname {
    Hostname::parse(s).unwrap_or_else(|e| panic!("{e}"))
}

/// An edge for `acme.test` whose only certificates come from the ACME CA at `directory`.
async fn acme_edge(
    (directory, ca_root): (String, PathBuf),
    state_dir: &Path,
    http_addr: SocketAddr,
    https_addr: SocketAddr,
) -> anyhow::Result<TestEdge> {
    let mut acme = AcmeConfig::new(directory);
    acme.ca_root = Some(ca_root);
    acme.names = vec![host(APP)];
    acme.on_demand = Some(OnDemandConfig {
        allow: vec![host("*.od.acme.test")],
        max_per_hour: 1,
    });
    acme.check_interval = Duration::from_secs(1);
    acme.retry_min = Duration::from_millis(200);
    acme.retry_max = Duration::from_secs(2);
    let state_dir = state_dir.to_path_buf();
    TestEdge::start_with(move |c| {
        c.domain = host(DOMAIN);
        c.http_addr = http_addr;
        c.metrics_addr = None;
        c.state_dir = state_dir;
        let mut https = HttpsConfig::new(https_addr);
        https.acme = Some(acme);
        c.https = Some(https);
    })
    .await
}

/// The leaf served for `sni`, verified against `root` (an error while none verifies).
async fn verified_leaf(root: &[u8], addr: SocketAddr, sni: &str) -> anyhow::Result<Vec<u8>> {
    let tls = tls_connect(client_config_trusting(root, &[b"http/1.1"])?, addr, sni).await?;
    Ok(presented_leaf(&tls)
        .ok_or_else(|| anyhow::anyhow!("no certificate"))?
        .to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_obtains_serves_persists_and_renews() -> anyhow::Result<()> {
    if !pebble::available()? {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let state = dir.path().join("state");
    let plan = PebblePlan::new(dir.path())?;
    let (http_addr, https_addr) = (free_tcp_port()?, free_tcp_port()?);
    let ca = (plan.directory(), plan.listener_ca.clone());
    let edge = acme_edge(ca.clone(), &state, http_addr, https_addr).await?;

    // The CA is not up yet: the first orders fail, are counted, and retried with backoff.
    eventually(
        Duration::from_secs(30),
        "a counted ACME failure",
        || async {
            (edge.metric("sluice_edge_acme_failures_total", "initial") >= 1.0).then_some(())
        },
    )
    .await?;

    let pebble = plan
        .start(http_addr.port(), Duration::from_secs(30))
        .await?;
    let root = pebble.issuing_root().await?;
    let first = eventually(
        Duration::from_secs(60),
        "a certificate from pebble",
        || async { verified_leaf(&root, https_addr, APP).await.ok() },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\npebble log:\n{}", pebble.log()))?;
    assert!(edge.metric("sluice_edge_acme_certificates_issued_total", "initial") >= 1.0);
    assert!(state.join("acme/certs/app.acme.test.crt").exists());
    // pebble really fetched the HTTP-01 token from the edge's plain-HTTP port.
    let log = pebble.log();
    let fetched = format!(
        "validate w/ HTTP: http://{APP}:{}/.well-known/acme-challenge/",
        http_addr.port()
    );
    assert!(
        log.contains(&fetched) && log.contains("set VALID by completed challenge"),
        "{log}"
    );

    // Through edge and agent with verification on, over HTTP/2.
    let up = upstream::app("acme").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "app", up.addr)).await?;
    let client = https_client_trusting(&root)?;
    let r = client.get(format!("{}/x", agent.url())).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.version(), http::Version::HTTP_2);
    agent.stop().await?;

    // A restarted edge serves the stored certificate straight away.
    edge.shutdown().await;
    // The old edge's listening sockets can outlive `shutdown()` by a moment (pingora closes
    // them on its own threads); the restart waits for the ports rather than failing.
    let edge = eventually(Duration::from_secs(10), "the restarted edge", || {
        let (ca, state) = (ca.clone(), state.clone());
        async move { acme_edge(ca, &state, http_addr, https_addr).await.ok() }
    })
    .await?;
    let after_restart = verified_leaf(&root, https_addr, APP).await?;
    if edge.metric("sluice_edge_acme_certificates_issued_total", "renewal") == 0.0 {
        assert_eq!(
            after_restart, first,
            "the stored certificate is served after a restart"
        );
    }

    // 30-second certificates renew at two thirds of their life, before they expire.
    eventually(Duration::from_secs(90), "a renewed certificate", || async {
        let now = verified_leaf(&root, https_addr, APP).await.ok()?;
        (now != first
            && edge.metric("sluice_edge_acme_certificates_issued_total", "renewal") >= 1.0)
            .then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\npebble log:\n{}", pebble.log()))?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_only_for_allowed_names_within_the_budget() -> anyhow::Result<()> {
    if !pebble::available()? {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let plan = PebblePlan::new(dir.path())?;
    let ca = (plan.directory(), plan.listener_ca.clone());
    let (http_addr, https_addr) = (free_tcp_port()?, free_tcp_port()?);
    let pebble = plan
        .start(http_addr.port(), Duration::from_secs(3600))
        .await?;
    let root = pebble.issuing_root().await?;
    let edge = acme_edge(ca, &dir.path().join("state"), http_addr, https_addr).await?;

    // An allowed name nobody configured: the first handshake has no certificate to offer and
    // fails; it starts an order, and a later handshake gets a verified certificate.
    assert!(verified_leaf(&root, https_addr, "one.od.acme.test")
        .await
        .is_err());
    eventually(
        Duration::from_secs(60),
        "an on-demand certificate",
        || async {
            verified_leaf(&root, https_addr, "one.od.acme.test")
                .await
                .ok()
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\npebble log:\n{}", pebble.log()))?;
    assert!(edge.metric("sluice_edge_acme_certificates_issued_total", "on_demand") >= 1.0);

    // The hourly budget (1) is spent: another allowed name is refused, and so is a name
    // outside the allow list; neither ever gets a certificate.
    for name in ["two.od.acme.test", "evil.example.org", "app2.acme.test"] {
        assert!(verified_leaf(&root, https_addr, name).await.is_err());
    }
    assert!(edge.metric("sluice_edge_acme_on_demand_refused_total", "rate_limited") >= 1.0);
    assert_eq!(
        edge.metric("sluice_edge_acme_on_demand_refused_total", "not_allowed"),
        2.0
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(verified_leaf(&root, https_addr, "two.od.acme.test")
        .await
        .is_err());
    assert!(!dir
        .path()
        .join("state/acme/certs/two.od.acme.test.crt")
        .exists());
    edge.shutdown().await;
    Ok(())
}

/// The real binary configured from `edge.yaml`: while the CA cannot be reached, every attempt
/// is logged with the reason and counted on `/metrics`, and retried with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_are_logged_and_counted_on_metrics() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // Nothing listens there: every order fails before reaching a CA.
    let dead_ca = free_tcp_port()?;
    let yaml = format!(
        "domain: {DOMAIN}\n\
         https_addr: 127.0.0.1:0\n\
         acme:\n  \
           directory: https://{dead_ca}/dir\n  \
           names: [{APP}]\n  \
           retry_min: 200ms\n  \
           retry_max: 1s\n"
    );
    let config = dir.path().join("edge.yaml");
    std::fs::write(&config, yaml)?;
    let edge = EdgeProcess::spawn_with_args(
        dir.path(),
        free_tcp_port()?,
        free_udp_port()?,
        TOKEN,
        &["--config", config.to_str().expect("utf8")],
    )
    .await?;
    let metrics: SocketAddr = edge
        .output()
        .lines()
        .find_map(|l| l.trim().strip_prefix("Metrics:"))
        .and_then(|m| {
            m.trim()
                .strip_prefix("http://")?
                .strip_suffix("/metrics")?
                .parse()
                .ok()
        })
        .ok_or_else(|| anyhow::anyhow!("no Metrics line:\n{}", edge.output()))?;
    let series = r#"sluice_edge_acme_failures_total{reason="initial"}"#;
    eventually(
        Duration::from_secs(60),
        "3 counted ACME failures",
        || async {
            let text = scrape(metrics).await.ok()?;
            (sample(&text, series)? >= 3.0).then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", edge.output()))?;
    let log = edge.output();
    assert!(
        log.contains("ACME order failed") && log.contains(APP),
        "failures are logged with the name:\n{log}"
    );
    edge.kill().await?;
    Ok(())
}

//! `/metrics` through a real edge and agents: exact request counts by endpoint label and
//! status class, the duration histogram, error codes, policy outcomes, sessions and per-agent
//! QUIC statistics, failing policy expressions; and `promtool check metrics` finds nothing to
//! complain about.

use sluice_agent::policy_input;
use sluice_e2e::scrape::{lines_of, sample, scrape};
use sluice_e2e::{any_port, client, eventually, upstream, TestAgent, TestEdge, TOKEN};
use sluice_edge::Hostname;
use sluice_edge::OperatorPolicy;
use sluice_policy::Shorthand;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

/// Statuses the named endpoint answers, in order; the anonymous one gets the same.
const STATUSES: [u16; 7] = [200, 200, 201, 302, 404, 404, 503];

async fn get(url: &str) -> anyhow::Result<u16> {
    let r = client().get(url).send().await?;
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok(status)
}

#[tokio::test]
async fn metrics_count_every_request_with_bounded_labels() -> anyhow::Result<()> {
    // `named.localhost` is an operator-named endpoint (no policy): it gets its own label value;
    // the agent's other, unnamed hostname is counted under `other`.
    let named = OperatorPolicy {
        pattern: Hostname::parse("named.localhost")?,
        source: None,
    };
    let edge = TestEdge::start_with(|c| {
        c.metrics_addr = Some(any_port());
        c.operator_policies = vec![named];
    })
    .await?;
    let metrics_addr = edge.handle().metrics_addr.expect("metrics enabled");
    let app = upstream::app("m").await?;
    let named_agent = TestAgent::start(edge.agent_config(TOKEN, "named", app.addr)).await?;
    let mut config = edge.agent_config(TOKEN, "anon-7f3a", app.addr);
    let shorthand = Shorthand {
        basic_auth: vec!["user:password1".into()],
        ..Default::default()
    };
    config.endpoints[0].policies = policy_input::layers(&shorthand, None)?;
    let anon_agent = TestAgent::start(config).await?;

    for code in STATUSES {
        let url = format!("{}/status/{code}", named_agent.url());
        assert_eq!(get(&url).await?, code);
    }
    // Without credentials basic-auth challenges: 401, recorded as a policy outcome.
    assert_eq!(get(&format!("{}/", anon_agent.url())).await?, 401);
    // No agent holds this host: 404 with ERR_SLUICE_3200.
    assert_eq!(get(&edge.url("nobody.localhost")).await?, 404);

    let total = STATUSES.len() as f64 + 2.0;
    let text = eventually(Duration::from_secs(10), "every request counted", || async {
        let text = scrape(metrics_addr).await.ok()?;
        let counted: f64 = lines_of(&text, "sluice_edge_http_requests_total{")
            .iter()
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        (counted == total).then_some(text)
    })
    .await?;

    let named_series = |class: &str| {
        sample(
            &text,
            &format!(
                "sluice_edge_http_requests_total{{endpoint=\"named.localhost\",status_class=\"{class}\"}}"
            ),
        )
    };
    let all = lines_of(&text, "sluice_edge_http");
    assert_eq!(named_series("2xx"), Some(3.0), "{all:#?}");
    assert_eq!(named_series("3xx"), Some(1.0), "{all:#?}");
    assert_eq!(named_series("4xx"), Some(2.0), "{all:#?}");
    assert_eq!(named_series("5xx"), Some(1.0), "{all:#?}");
    assert_eq!(
        sample(
            &text,
            "sluice_edge_http_requests_total{endpoint=\"other\",status_class=\"4xx\"}"
        ),
        Some(2.0),
        "{all:#?}"
    );
    // No series names the random-looking hostname.
    assert!(!text.contains("anon-7f3a"), "{all:#?}");
    assert_eq!(
        sample(
            &text,
            "sluice_edge_http_request_duration_seconds_count{endpoint=\"named.localhost\"}"
        ),
        Some(STATUSES.len() as f64)
    );
    assert_eq!(
        sample(
            &text,
            "sluice_edge_http_request_duration_seconds_bucket{endpoint=\"named.localhost\",le=\"+Inf\"}"
        ),
        Some(STATUSES.len() as f64)
    );
    assert!(
        sample(
            &text,
            "sluice_edge_http_response_body_bytes_total{endpoint=\"named.localhost\"}"
        )
        .is_some_and(|b| b > 0.0),
        "{all:#?}"
    );
    assert_eq!(
        sample(
            &text,
            "sluice_edge_http_error_responses_total{error_code=\"ERR_SLUICE_3200\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "sluice_edge_policy_action_outcomes_total{action=\"basic-auth\",decision=\"challenged\"}"
        ),
        Some(1.0),
        "{:#?}",
        lines_of(&text, "sluice_edge_policy")
    );
    assert_eq!(sample(&text, "sluice_edge_agent_sessions"), Some(2.0));
    let transport = sluice_e2e::expected_transport();
    let tcp = transport == "tcp";
    assert_eq!(
        sample(
            &text,
            &format!("sluice_edge_agent_transport_sessions{{transport=\"{transport}\"}}")
        ),
        Some(2.0)
    );
    assert_eq!(
        lines_of(&text, "sluice_edge_agent_quic_rtt_seconds{").len(),
        2,
        "one RTT series per agent"
    );
    // TCP hides its retransmissions: lost packets are QUIC's only.
    assert_eq!(
        lines_of(&text, "sluice_edge_agent_quic_lost_packets_total{").len(),
        if tcp { 0 } else { 2 }
    );
    assert!(sample(&text, "process_resident_memory_bytes").is_some_and(|v| v > 0.0));
    assert!(sample(&text, "process_open_fds").is_some_and(|v| v > 0.0));
    assert_eq!(
        sample(&text, "sluice_edge_http_requests_in_flight"),
        Some(0.0)
    );

    promtool_finds_nothing(&text)?;
    every_metric_is_documented(&text)?;
    named_agent.stop().await?;
    anon_agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// A deny rule whose expression cannot be evaluated (the header it indexes is missing) does
/// not match, as documented, so the request passes; the edge must make that visible.
#[tokio::test]
async fn failing_policy_expressions_are_counted() -> anyhow::Result<()> {
    let edge = TestEdge::start_with(|c| c.metrics_addr = Some(any_port())).await?;
    let metrics_addr = edge.handle().metrics_addr.expect("metrics enabled");
    let app = upstream::app("m").await?;
    let mut config = edge.agent_config(TOKEN, "fragile", app.addr);
    let policy = r#"
on_http_request:
  - name: token required
    expressions: ["req.headers['x-token'][0] != 'letmein'"]
    actions: [{type: deny}]
"#;
    config.endpoints[0].policies = vec![policy_input::inline(policy.into(), "test")?];
    let agent = TestAgent::start(config).await?;
    let url = format!("{}/", agent.url());
    // The header is there and wrong: the rule matches and denies.
    let denied = client().get(&url).header("x-token", "nope").send().await?;
    assert_eq!(denied.status(), 403);
    // No header: the expression fails, the rule does not match, the request passes.
    assert_eq!(get(&url).await?, 200);
    assert_eq!(get(&url).await?, 200);
    let series = "sluice_edge_policy_errors_total{endpoint=\"other\"}";
    eventually(
        Duration::from_secs(10),
        "two policy errors counted",
        || async {
            let text = scrape(metrics_addr).await.ok()?;
            (sample(&text, series) == Some(2.0)).then_some(())
        },
    )
    .await?;
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// Runs `promtool check metrics` (Debian's `prometheus` package, installed by
/// scripts/setup.d/40-promtool) on a scrape: it must exit 0 and print nothing.
fn promtool_finds_nothing(text: &str) -> anyhow::Result<()> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            anyhow::anyhow!("promtool: {e} (install it with scripts/setup.d/40-promtool)")
        })?;
    child
        .stdin
        .take()
        .ok_or_else(|| anyhow::anyhow!("promtool stdin"))?
        .write_all(text.as_bytes())?;
    let out = child.wait_with_output()?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool check metrics: {}\n{said}",
        out.status
    );
    Ok(())
}

/// Metric names in `text` (from the `# TYPE` lines) and in the Grafana dashboard all appear in
/// docs/metrics.md, so the doc and the dashboard cannot drift from the code.
fn every_metric_is_documented(text: &str) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/metrics.md"))?;
    let dashboard = std::fs::read_to_string(root.join("examples/grafana/sluice-edge.json"))?;
    let scraped = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next());
    let charted = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|w| w.starts_with("sluice_edge_"))
        .map(|w| w.trim_end_matches("_bucket"));
    for name in scraped.chain(charted) {
        let documented = doc.contains(&format!("`{name}`"))
            || (name.starts_with("process_") && doc.contains("`process_*`"));
        assert!(documented, "{name} is not in docs/metrics.md");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_probes_answer_and_readiness_ends_when_the_edge_drains() -> anyhow::Result<()> {
    let edge = TestEdge::start_with(|c| {
        c.metrics_addr = Some(any_port());
        c.grace_period = Duration::from_secs(5);
    })
    .await?;
    let probes = edge.handle().metrics_addr.expect("metrics enabled");
    let probe = |path: &str| format!("http://{probes}{path}");
    assert_eq!(get(&probe("/healthz")).await?, 200);
    assert_eq!(get(&probe("/readyz")).await?, 200);
    assert_eq!(get(&probe("/nothing")).await?, 404);

    // A response held open keeps the edge draining for its grace period.
    let up = upstream::stall_mid_body(1024, Duration::from_secs(4)).await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "held.localhost", up.addr)).await?;
    let held = client().get(format!("{}/", agent.url())).send().await?;
    let stopping = tokio::spawn(edge.shutdown());
    let not_ready = eventually(Duration::from_secs(2), "/readyz says 503", || async {
        let status = client().get(probe("/readyz")).send().await.ok()?.status();
        (status == 503).then_some(())
    })
    .await;
    drop(held);
    stopping.await?;
    not_ready
}

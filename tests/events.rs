//! Log export through a real edge and agent: one `http_request_complete.v0` line per request
//! in the events file with the right fields (basic-auth decisions and the `log` action's
//! metadata included), filters and field selections, an HTTP collector that receives every
//! event exactly once in batches even after being down, and a full queue that drops and counts
//! while requests keep flowing.

use serde_json::Value;
use sluice_agent::policy_input;
use sluice_e2e::scrape::{sample, scrape};
use sluice_e2e::upstream::{self, full};
use sluice_e2e::{any_port, client, closed_port, eventually, TestAgent, TestEdge, TOKEN};
use sluice_edge::HttpSink;
use sluice_edge::{EventDestination, Sink};
use sluice_policy::Shorthand;
use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

async fn get(url: &str, auth: Option<(&str, &str)>) -> anyhow::Result<u16> {
    let mut req = client().get(url);
    if let Some((user, pass)) = auth {
        req = req.basic_auth(user, Some(pass));
    }
    let r = req.send().await?;
    let status = r.status().as_u16();
    r.bytes().await?;
    Ok(status)
}

fn events_in(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The event whose request path is `path`.
fn by_path<'e>(events: &'e [Value], path: &str) -> &'e Value {
    events
        .iter()
        .find(|e| e["object"]["http"]["request"]["url"]["path"] == path)
        .unwrap_or_else(|| panic!("no event for {path} in {events:#?}"))
}

fn http_destination(name: &str, addr: SocketAddr, queue_size: usize) -> EventDestination {
    EventDestination {
        name: name.to_string(),
        sink: Sink::Http(HttpSink {
            url: format!("http://{addr}/ingest"),
            batch_size: 50,
            batch_interval: Duration::from_millis(100),
            max_backoff: Duration::from_millis(200),
            timeout: Duration::from_secs(5),
        }),
        queue_size,
        filter: None,
        fields: Vec::new(),
    }
}

#[tokio::test]
async fn events_file_has_one_line_per_request_with_ngrok_fields() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let all = dir.path().join("events.jsonl");
    let errors = dir.path().join("errors.jsonl");
    let mut only_errors = EventDestination::events_file(errors.to_str().expect("utf8"));
    only_errors.name = "errors".into();
    only_errors.filter = Some("ev.http.response.status_code >= 500".into());
    only_errors.fields = vec!["http.response.status_code".into(), "conn.client_ip".into()];
    let all_dest = EventDestination::events_file(all.to_str().expect("utf8"));
    let edge = TestEdge::start_with(|c| c.event_destinations = vec![all_dest, only_errors]).await?;
    let app = upstream::app("ev").await?;

    let policy = dir.path().join("log.yml");
    std::fs::write(
        &policy,
        "on_http_request:\n  - actions:\n      - type: log\n        config:\n          metadata: {audit: 'seen-${req.url.path}'}\n",
    )?;
    let mut plain = edge.agent_config(TOKEN, "ev", app.addr);
    plain.endpoints[0].policies = policy_input::layers(&Shorthand::default(), Some(&policy))?;
    let plain = TestAgent::start(plain).await?;
    let mut guarded = edge.agent_config(TOKEN, "guarded", app.addr);
    let shorthand = Shorthand {
        basic_auth: vec!["alice:password1".into()],
        ..Default::default()
    };
    guarded.endpoints[0].policies = policy_input::layers(&shorthand, None)?;
    let guarded = TestAgent::start(guarded).await?;

    let statuses = [200u16, 201, 404, 500, 503, 200];
    for code in statuses {
        assert_eq!(
            get(&format!("{}/status/{code}", plain.url()), None).await?,
            code
        );
    }
    assert_eq!(get(&format!("{}/denied", guarded.url()), None).await?, 401);
    let ok = get(
        &format!("{}/allowed", guarded.url()),
        Some(("alice", "password1")),
    )
    .await?;
    assert_eq!(ok, 200);
    let total = statuses.len() + 2;

    let events = eventually(LONG, "one event per request", || async {
        let events = events_in(&all);
        (events.len() == total).then_some(events)
    })
    .await?;
    for e in &events {
        assert_eq!(e["event_type"], "http_request_complete.v0");
        assert!(
            e["event_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("ev_")),
            "{e}"
        );
        assert!(
            e["event_timestamp"]
                .as_str()
                .is_some_and(|t| t.ends_with('Z')),
            "{e}"
        );
        let o = &e["object"];
        assert_eq!(o["conn"]["client_ip"], "127.0.0.1", "{o}");
        assert_eq!(o["conn"]["server_port"], edge.http_addr.port(), "{o}");
        assert_eq!(o["http"]["request"]["method"], "get", "{o}");
        assert!(
            o["agent"]["session_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("ses_")),
            "{o}"
        );
        assert_eq!(
            o["agent"]["transport"],
            sluice_e2e::expected_transport(),
            "{o}"
        );
        assert!(
            o["request_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("req_")),
            "{o}"
        );
        assert!(o["duration_ms"].as_f64().is_some_and(|d| d > 0.0), "{o}");
    }
    let ids: HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), total, "event ids are unique");
    for code in [201u16, 404, 503] {
        let e = by_path(&events, &format!("/status/{code}"));
        assert_eq!(e["object"]["http"]["response"]["status_code"], code);
        assert_eq!(e["object"]["conn"]["server_name"], "ev.localhost");
        assert_eq!(e["object"]["endpoint"]["url"], plain.url());
        assert_eq!(
            e["object"]["http"]["request"]["url"]["host"],
            "ev.localhost"
        );
    }
    // The log action's interpolated metadata.
    let e = by_path(&events, "/status/201");
    assert_eq!(
        e["object"]["traffic_policy"]["logs"],
        serde_json::json!([{"audit": "seen-/status/201"}])
    );
    assert!(e["object"]["http"]["response"]["body_length"]
        .as_u64()
        .is_some_and(|n| n > 0));
    // Basic-auth denial and success; the credentials themselves are never exported.
    let denied = &by_path(&events, "/denied")["object"];
    assert_eq!(denied["http"]["response"]["status_code"], 401);
    assert_eq!(denied["basic_auth"]["decision"], "block", "{denied}");
    let allowed = &by_path(&events, "/allowed")["object"];
    assert_eq!(allowed["basic_auth"]["decision"], "allow", "{allowed}");
    assert_eq!(allowed["basic_auth"]["username"], "alice", "{allowed}");
    let raw = std::fs::read_to_string(&all)?;
    assert!(
        !raw.contains("password1") && !raw.contains("YWxpY2U6cGFzc3dvcmQx"),
        "credentials leaked"
    );

    // The filtered destination: only the two 5xx, only the selected fields.
    let picked = eventually(LONG, "the two 5xx events", || async {
        let e = events_in(&errors);
        (e.len() == 2).then_some(e)
    })
    .await?;
    for e in &picked {
        let o = e["object"].as_object().expect("object");
        assert_eq!(o.len(), 2, "only conn and http: {e}");
        assert!(e["object"]["http"]["response"]["status_code"]
            .as_u64()
            .is_some_and(|s| s >= 500));
        assert_eq!(
            e["object"]["http"]["response"].as_object().map(|m| m.len()),
            Some(1)
        );
        assert_eq!(e["object"]["conn"]["client_ip"], "127.0.0.1");
    }
    plain.stop().await?;
    guarded.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// A local HTTP collector on `addr` that records each POSTed batch.
async fn collector(
    addr: SocketAddr,
    batches: Arc<Mutex<Vec<Vec<Value>>>>,
) -> anyhow::Result<upstream::Upstream> {
    upstream::serve_on(addr, move |req| {
        let batches = batches.clone();
        async move {
            use http_body_util::BodyExt;
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            match serde_json::from_slice::<Vec<Value>>(&body) {
                Ok(batch) => {
                    batches
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(batch);
                    hyper::Response::new(full("ok"))
                }
                Err(_) => {
                    let mut r = hyper::Response::new(full("not a JSON array"));
                    *r.status_mut() = http::StatusCode::BAD_REQUEST;
                    r
                }
            }
        }
    })
    .await
}

fn received(batches: &Arc<Mutex<Vec<Vec<Value>>>>) -> Vec<Vec<Value>> {
    batches.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

#[tokio::test]
async fn http_collector_gets_every_event_once_in_batches_even_after_being_down(
) -> anyhow::Result<()> {
    let collector_addr = closed_port()?;
    let edge = TestEdge::start_with(|c| {
        c.metrics_addr = Some(any_port());
        c.event_destinations = vec![http_destination("collector", collector_addr, 1000)];
    })
    .await?;
    let metrics = edge.handle().metrics_addr.expect("metrics");
    let app = upstream::app("batch").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "batch", app.addr)).await?;
    let url = |i: usize| format!("{}/item-{i}", agent.url());

    // The collector is down: requests still succeed, events wait and are retried.
    for i in 0..20 {
        assert_eq!(get(&url(i), None).await?, 200);
    }
    eventually(LONG, "failed delivery attempts", || async {
        let text = scrape(metrics).await.ok()?;
        sample(
            &text,
            "sluice_edge_events_export_errors_total{destination=\"collector\"}",
        )
        .filter(|n| *n >= 2.0)
    })
    .await?;
    let batches = Arc::new(Mutex::new(Vec::new()));
    let _collector = collector(collector_addr, batches.clone()).await?;
    for i in 20..40 {
        assert_eq!(get(&url(i), None).await?, 200);
    }
    let got = eventually(LONG, "all 40 events at the collector", || async {
        let got = received(&batches);
        (got.iter().map(Vec::len).sum::<usize>() >= 40).then_some(got)
    })
    .await?;
    // Settle: nothing more arrives (no duplicates from retries).
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_after = received(&batches);
    assert_eq!(got_after.len(), got.len(), "no late duplicates");
    let events: Vec<&Value> = got.iter().flatten().collect();
    assert_eq!(events.len(), 40, "every event exactly once");
    let ids: HashSet<&str> = events
        .iter()
        .filter_map(|e| e["event_id"].as_str())
        .collect();
    assert_eq!(ids.len(), 40, "no event twice");
    let paths: HashSet<String> = events
        .iter()
        .filter_map(|e| e["object"]["http"]["request"]["url"]["path"].as_str())
        .map(str::to_string)
        .collect();
    assert_eq!(
        paths,
        (0..40)
            .map(|i| format!("/item-{i}"))
            .collect::<HashSet<_>>()
    );
    assert!(got.len() < 40, "batched: {} POSTs for 40 events", got.len());
    let text = scrape(metrics).await?;
    assert_eq!(
        sample(
            &text,
            "sluice_edge_events_exported_total{destination=\"collector\"}"
        ),
        Some(40.0)
    );
    assert_eq!(
        sample(
            &text,
            "sluice_edge_events_dropped_total{destination=\"collector\"}"
        ),
        Some(0.0)
    );
    assert_eq!(
        sample(
            &text,
            "sluice_edge_events_queue_depth{destination=\"collector\"}"
        ),
        Some(0.0)
    );
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn shutdown_flushes_a_partial_batch() -> anyhow::Result<()> {
    let batches = Arc::new(Mutex::new(Vec::new()));
    let collector_addr = closed_port()?;
    let _collector = collector(collector_addr, batches.clone()).await?;
    let mut dest = http_destination("slow-batches", collector_addr, 100);
    if let Sink::Http(h) = &mut dest.sink {
        // Far longer than the test: only shutdown can send this batch.
        h.batch_interval = Duration::from_secs(600);
    }
    let edge = TestEdge::start_with(|c| c.event_destinations = vec![dest]).await?;
    let app = upstream::app("flush").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "flush", app.addr)).await?;
    for i in 0..3 {
        assert_eq!(get(&format!("{}/f{i}", agent.url()), None).await?, 200);
    }
    agent.stop().await?;
    assert!(received(&batches).is_empty(), "the batch is still open");
    edge.shutdown().await;
    let got = received(&batches);
    assert_eq!(got.iter().map(Vec::len).sum::<usize>(), 3, "{got:#?}");
    Ok(())
}

#[tokio::test]
async fn full_queue_drops_and_counts_while_requests_flow() -> anyhow::Result<()> {
    let dead = closed_port()?;
    let edge = TestEdge::start_with(|c| {
        c.metrics_addr = Some(any_port());
        let mut dest = http_destination("dead", dead, 2);
        if let Sink::Http(h) = &mut dest.sink {
            // One event at a time in the sink, so the arithmetic below is exact.
            h.batch_size = 1;
        }
        c.event_destinations = vec![dest];
    })
    .await?;
    let metrics = edge.handle().metrics_addr.expect("metrics");
    let app = upstream::app("full").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "full", app.addr)).await?;
    for i in 0..30 {
        assert_eq!(get(&format!("{}/r{i}", agent.url()), None).await?, 200);
    }
    // One event in the sink's (failing) delivery, two queued; the other 27 dropped and counted.
    let text = eventually(LONG, "drops counted", || async {
        let text = scrape(metrics).await.ok()?;
        let dropped = sample(
            &text,
            "sluice_edge_events_dropped_total{destination=\"dead\"}",
        )?;
        (dropped >= 27.0).then_some(text)
    })
    .await?;
    let dropped = sample(
        &text,
        "sluice_edge_events_dropped_total{destination=\"dead\"}",
    );
    let queued = sample(
        &text,
        "sluice_edge_events_queue_depth{destination=\"dead\"}",
    );
    assert_eq!(dropped, Some(27.0));
    assert_eq!(queued, Some(2.0));
    assert_eq!(
        sample(
            &text,
            "sluice_edge_http_requests_total{endpoint=\"other\",status_class=\"2xx\"}"
        ),
        Some(30.0)
    );
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

//! The admin API's rows shared through a real `redis-server` (docs/cluster.md, "Admin-API
//! rows"): a credential made on one edge lets agents in on another and its deletion on a
//! third closes their sessions everywhere; a reservation holds on every edge, and two edges
//! reserving one name at once get one 201 and one 409; a cloud endpoint made on one edge
//! answers on all and goes from all; a store that lost its data is seeded again from an
//! edge's copy, and a credential deleted while an edge was down stays deleted.

use anyhow::Context;
use reqwest::StatusCode;
use serde_json::{json, Value};
use sluice_agent::AgentError;
use sluice_e2e::admin::ADMIN_TOKEN;
use sluice_e2e::cluster::{clustered_with, provide_keys, SESSION_KEYS};
use sluice_e2e::redis::RedisServer;
use sluice_e2e::{any_port, closed_port, eventually, Launch, TestAgent, TestEdge};
use sluice_proto::error_code::ErrorCode;
use std::path::PathBuf;
use std::time::Duration;

/// A clustered edge `id` serving the admin API (state in `state_dir` when given).
async fn edge(
    redis: &RedisServer,
    id: &str,
    state_dir: Option<PathBuf>,
) -> anyhow::Result<TestEdge> {
    clustered_with(redis, id, |c| {
        c.admin_addr = Some(any_port());
        c.admin_tokens = vec![ADMIN_TOKEN.to_string()];
        if let Some(dir) = state_dir {
            provide_keys(&dir, SESSION_KEYS);
            c.state_dir = dir;
        }
    })
    .await
}

/// `method /path` on `edge`'s admin API: the status and the JSON body (null when empty).
async fn admin(
    edge: &TestEdge,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> anyhow::Result<(StatusCode, Value)> {
    let addr = edge.handle().admin_addr.context("no admin listener")?;
    let mut req = reqwest::Client::new()
        .request(method, format!("http://{addr}{path}"))
        .bearer_auth(ADMIN_TOKEN)
        .timeout(Duration::from_secs(10));
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await?;
    let status = resp.status();
    let text = resp.text().await?;
    let body = match text.is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&text).with_context(|| format!("not JSON: {text}"))?,
    };
    Ok((status, body))
}

/// A new credential through `edge`'s admin API: its id and token.
async fn credential(edge: &TestEdge) -> anyhow::Result<(String, String)> {
    let (status, body) =
        admin(edge, reqwest::Method::POST, "/credentials", Some(json!({}))).await?;
    anyhow::ensure!(status == StatusCode::CREATED, "{status}: {body}");
    let id = body["id"].as_str().context("no id")?.to_string();
    let token = body["token"].as_str().context("no token")?.to_string();
    Ok((id, token))
}

/// The agent's refusal code, when it was refused.
fn refused_with(launch: Launch) -> Option<ErrorCode> {
    match launch {
        Launch::Exited(Err(AgentError::Rejected(r))) => Some(r.code),
        _ => None,
    }
}

/// Waits until an agent with `token` comes online on `edge` as `name` (the credential may
/// still be on its way from another edge).
async fn online(edge: &TestEdge, token: &str, name: &str) -> anyhow::Result<TestAgent> {
    let upstream = closed_port()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        match TestAgent::launch(edge.agent_config(token, name, upstream)).await? {
            Launch::Online(agent) => return Ok(agent),
            refused if tokio::time::Instant::now() >= deadline => {
                anyhow::bail!("the agent did not come online: {:?}", refused_with(refused))
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until an agent with `token` is refused `name` on `edge` with `code` (the change may
/// still be on its way from another edge).
async fn refused(edge: &TestEdge, token: &str, name: &str, code: ErrorCode) -> anyhow::Result<()> {
    let upstream = closed_port()?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    loop {
        let launch = TestAgent::launch(edge.agent_config(token, name, upstream)).await?;
        let got = match launch {
            Launch::Online(agent) => {
                agent.stop().await?;
                None
            }
            other => refused_with(other),
        };
        if got == Some(code) {
            return Ok(());
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "{name} on the edge: {got:?}, not {code:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credential_made_on_one_edge_works_on_another_and_its_deletion_closes_it_everywhere(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = edge(&redis, "one", None).await?;
    let two = edge(&redis, "two", None).await?;
    let three = edge(&redis, "three", None).await?;
    let (id, token) = credential(&one).await?;
    let agent = online(&two, &token, "shared-cred").await?;
    // Every edge lists it.
    for e in [&two, &three] {
        let (status, body) =
            admin(e, reqwest::Method::GET, &format!("/credentials/{id}"), None).await?;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    let (status, body) = admin(
        &three,
        reqwest::Method::DELETE,
        &format!("/credentials/{id}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // The agent on edge two is closed with the credential-deleted close code, whose reason the
    // agent reports.
    let ended = agent.join(Duration::from_secs(3)).await?;
    assert!(
        matches!(&ended, Err(AgentError::Stopped(why)) if why.contains("deleted this authtoken")),
        "{ended:?}"
    );
    for e in [&one, &two, &three] {
        refused(e, &token, "shared-cred", ErrorCode::AuthtokenInvalid).await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_holds_on_every_edge_and_one_name_is_reserved_once() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = edge(&redis, "one", None).await?;
    let two = edge(&redis, "two", None).await?;
    let (a, a_token) = credential(&one).await?;
    let (b, b_token) = credential(&one).await?;
    let (status, body) = admin(
        &one,
        reqwest::Method::POST,
        "/reserved_domains",
        Some(json!({"domain": "kept", "credential_id": a})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    // B's token works on edge two, but not for A's name: the error a single edge gives.
    let _b = online(&two, &b_token, "free-for-b").await?;
    refused(&two, &b_token, "kept", ErrorCode::NameReserved).await?;
    let _a = online(&two, &a_token, "kept").await?;

    // Both edges reserve one new name at the same moment: one wins.
    let reserve = |e, owner: String| async move {
        let body = json!({"domain": "contested", "credential_id": owner});
        admin(e, reqwest::Method::POST, "/reserved_domains", Some(body)).await
    };
    let (first, second) = tokio::join!(reserve(&one, a.clone()), reserve(&two, b.clone()));
    let mut statuses = [first?.0.as_u16(), second?.0.as_u16()];
    statuses.sort_unstable();
    assert_eq!(statuses, [201, 409]);
    let (_, listed) = admin(&two, reqwest::Method::GET, "/reserved_domains", None).await?;
    let contested = listed["reserved_domains"]
        .as_array()
        .context("no list")?
        .iter()
        .filter(|r| {
            r["domain"]
                .as_str()
                .is_some_and(|d| d.starts_with("contested"))
        })
        .count();
    assert_eq!(contested, 1, "{listed}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cloud_endpoint_made_on_one_edge_answers_on_all_and_goes_from_all() -> anyhow::Result<()>
{
    let redis = RedisServer::start().await?;
    let edges = [
        edge(&redis, "one", None).await?,
        edge(&redis, "two", None).await?,
        edge(&redis, "three", None).await?,
    ];
    let (owner, _) = credential(&edges[0]).await?;
    let policy = "on_http_request:\n  - actions:\n      - type: custom-response\n        config: {status_code: 200, content: cloud says hi}\n";
    let (status, body) = admin(
        &edges[0],
        reqwest::Method::POST,
        "/endpoints",
        Some(json!({"url": "http://hello.localhost", "traffic_policy": policy, "credential_id": owner})),
    )
    .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let id = body["id"].as_str().context("no id")?.to_string();
    let http = sluice_e2e::client();
    let status_on = |e: &TestEdge| {
        let req = http
            .get(e.url("hello.localhost"))
            .timeout(Duration::from_secs(5));
        async move { req.send().await.ok().map(|r| r.status()) }
    };
    for e in &edges {
        eventually(
            Duration::from_secs(2),
            "the cloud endpoint on every edge",
            || async { (status_on(e).await == Some(StatusCode::OK)).then_some(()) },
        )
        .await?;
    }
    let body = http
        .get(edges[2].url("hello.localhost"))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "cloud says hi");

    let (status, body) = admin(
        &edges[1],
        reqwest::Method::DELETE,
        &format!("/endpoints/{id}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    for e in &edges {
        eventually(
            Duration::from_secs(2),
            "the cloud endpoint gone from every edge",
            || async { (status_on(e).await == Some(StatusCode::NOT_FOUND)).then_some(()) },
        )
        .await?;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flushed_store_is_seeded_again_and_a_deletion_survives_a_stopped_edge(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let one = edge(&redis, "one", None).await?;
    let two = edge(&redis, "two", None).await?;
    let three_dir = tempfile::tempdir()?;
    let three = edge(&redis, "three", Some(three_dir.path().to_path_buf())).await?;
    let (_, kept_token) = credential(&one).await?;
    let (doomed, doomed_token) = credential(&one).await?;
    let _wait = online(&three, &doomed_token, "doomed-check").await?;
    drop(_wait);

    // The store loses everything: the rows come back from an edge's copy within seconds.
    redis.flush_all().await?;
    eventually(
        Duration::from_secs(8),
        "the admin rows back in the store",
        || async {
            let lines =
                sluice_e2e::redis::store_command(redis.addr, &["HLEN", "sluice:admin:credentials"])
                    .await
                    .ok()?;
            (lines.first().map(String::as_str) == Some(":2")).then_some(())
        },
    )
    .await?;
    let _kept = online(&two, &kept_token, "kept-after-flush").await?;

    // Edge three stops; the credential is deleted meanwhile; edge three starts again on the
    // same state dir, and the deletion holds there (its copy does not bring it back).
    three.shutdown().await;
    let (status, body) = admin(
        &two,
        reqwest::Method::DELETE,
        &format!("/credentials/{doomed}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let three = edge(&redis, "three", Some(three_dir.path().to_path_buf())).await?;
    // Refused at once: the edge synced its copy before it served.
    let launch =
        TestAgent::launch(three.agent_config(&doomed_token, "doomed", closed_port()?)).await?;
    assert_eq!(refused_with(launch), Some(ErrorCode::AuthtokenInvalid));
    let (status, _) = admin(
        &three,
        reqwest::Method::GET,
        &format!("/credentials/{doomed}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Not pushed back into the store either, now or at the next resyncs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, _) = admin(
        &one,
        reqwest::Method::GET,
        &format!("/credentials/{doomed}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let _still = online(&three, &kept_token, "kept-on-three").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edge_that_ran_alone_brings_its_rows_unless_a_reservation_clashes() -> anyhow::Result<()>
{
    sluice_e2e::tools::require(&["sqlite3"], "scripts/setup.d/78-sqlite3")?;
    let redis = RedisServer::start().await?;
    let one = edge(&redis, "one", None).await?;
    let (owner, _) = credential(&one).await?;
    let body = json!({"domain": "clash", "credential_id": owner});
    let (status, body) =
        admin(&one, reqwest::Method::POST, "/reserved_domains", Some(body)).await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // An edge on its own makes a credential and reserves the same name for it.
    let solo_dir = tempfile::tempdir()?;
    let dir = solo_dir.path().to_path_buf();
    let solo = TestEdge::start_with(move |c| c.state_dir = dir).await?;
    let (solo_token, solo_reservation) = {
        let plane = solo.handle().admin();
        let actor = sluice_edge::admin::api::Actor {
            token_id: "adm_test".into(),
            remote: [127, 0, 0, 1].into(),
        };
        let created = plane.create_credential(&actor, Default::default()).await?;
        let new = sluice_edge::admin::model::ReservedDomainCreate {
            domain: "clash".into(),
            credential_id: created.id.clone(),
            ..Default::default()
        };
        let reserved = plane.create_reserved_domain(&actor, new).await?;
        (created.token.context("no token")?, reserved.id)
    };
    solo.shutdown().await;

    // Joining, it is refused, told which row and what to do; nothing of it is imported.
    let refused = edge(&redis, "solo", Some(solo_dir.path().to_path_buf())).await;
    let said = format!("{:#}", refused.err().context("the clashing edge started")?);
    assert!(
        said.contains(&solo_reservation)
            && said.contains("domain:clash")
            && said.contains("sqlite3"),
        "{said}"
    );
    let (_, listed) = admin(&one, reqwest::Method::GET, "/credentials", None).await?;
    assert_eq!(
        listed["credentials"].as_array().map(Vec::len),
        Some(3),
        "{listed}"
    );

    // The operator deletes its row as told: it joins, and its credential works on every edge.
    let db = solo_dir.path().join("sluice.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg(format!(
            "DELETE FROM reserved_domains WHERE id = '{solo_reservation}'"
        ))
        .output()?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let _solo = edge(&redis, "solo", Some(solo_dir.path().to_path_buf())).await?;
    let _agent = online(&one, &solo_token, "from-solo").await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_store_changes_fail_and_reads_serve_the_copy() -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let one = edge(&redis, "one", None).await?;
    let (id, _) = credential(&one).await?;
    redis.kill().await?;
    let (status, body) =
        admin(&one, reqwest::Method::POST, "/credentials", Some(json!({}))).await?;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error_code"], "ERR_SLUICE_7503", "{body}");
    let (status, body) = admin(
        &one,
        reqwest::Method::GET,
        &format!("/credentials/{id}"),
        None,
    )
    .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(one.metric("sluice_edge_store_errors_total", "admin") >= 1.0);
    Ok(())
}

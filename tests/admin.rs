//! The admin API's HTTP side on real loopback sockets: bearer auth (never from the query
//! string), the failure limit per address, calls answered with the model's JSON and the
//! error codes of docs/errors.md, the served OpenAPI document, the edge's `--admin-addr`
//! wiring, and `edge admin`'s tables, JSON and errors.
//!
//! Most tests serve the listener in this process over the kit's in-memory control plane
//! (`sluice_e2e::admin`); the wiring tests run the real `edge` binary.

use anyhow::Context;
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use sluice_e2e::admin::{AdminServer, ADMIN_TOKEN};
use sluice_e2e::process::base_command;
use sluice_e2e::{within, EdgeProcess, TOKEN};
use sluice_edge::MAX_AUTH_FAILURES;
use std::net::{IpAddr, Ipv4Addr};
use std::process::Stdio;
use std::time::Duration;

/// An answer: status, headers, body.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> anyhow::Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("not JSON: {}", self.body))
    }

    /// The `error_code` of an error body, checked to repeat the status.
    fn code(&self) -> anyhow::Result<String> {
        let body = self.json()?;
        anyhow::ensure!(
            body["status_code"] == self.status.as_u16(),
            "status_code {} under HTTP {}",
            body["status_code"],
            self.status
        );
        Ok(body["error_code"].as_str().unwrap_or_default().to_string())
    }
}

/// A client whose connections leave from `from` (127.0.0.1 unless a test needs a second
/// address: the whole 127.0.0.0/8 is loopback).
fn client(from: Ipv4Addr) -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .local_address(IpAddr::V4(from))
        .timeout(Duration::from_secs(10))
        .build()?)
}

const HOME: Ipv4Addr = Ipv4Addr::LOCALHOST;

/// `method base+path` with an optional bearer token and JSON body.
async fn call(
    http: &reqwest::Client,
    base: &str,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> anyhow::Result<Answer> {
    let mut req = http.request(method, format!("{base}{path}"));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    if let Some(body) = body {
        req = req
            .header("content-type", "application/json")
            .body(body.to_string());
    }
    let resp = req.send().await.context("calling the admin API")?;
    Ok(Answer {
        status: resp.status(),
        headers: resp.headers().clone(),
        body: resp.text().await?,
    })
}

#[tokio::test]
async fn no_bearer_is_refused_and_a_token_in_the_query_is_ignored() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let (http, base) = (client(HOME)?, server.url());
    let bare = call(&http, &base, Method::GET, "/credentials", None, None).await?;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED, "{}", bare.body);
    assert_eq!(bare.code()?, "ERR_SLUICE_7101");
    let challenge = bare
        .headers
        .get("www-authenticate")
        .context("no challenge")?;
    assert!(challenge.to_str()?.starts_with("Bearer "), "{challenge:?}");
    for query in ["token", "access_token", "authorization", "admin_token"] {
        let path = format!("/credentials?{query}={ADMIN_TOKEN}");
        let answer = call(&http, &base, Method::GET, &path, None, None).await?;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "?{query}=");
    }
    let basic = http
        .get(format!("{base}/credentials"))
        .basic_auth("admin", Some(ADMIN_TOKEN))
        .send()
        .await?;
    assert_eq!(
        basic.status(),
        StatusCode::UNAUTHORIZED,
        "Basic is not Bearer"
    );
    // Unknown paths need the token too: no probing the API without one.
    let probe = call(&http, &base, Method::GET, "/nothing", None, None).await?;
    assert_eq!(probe.status, StatusCode::UNAUTHORIZED);
    let right = call(
        &http,
        &base,
        Method::GET,
        "/credentials",
        Some(ADMIN_TOKEN),
        None,
    )
    .await?;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    assert!(server.audit()?.is_empty(), "a read is not a change");
    Ok(())
}

#[tokio::test]
async fn wrong_tokens_lock_an_address_out_until_the_window_ends() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let (guesser, base) = (client(HOME)?, server.url());
    for i in 0..MAX_AUTH_FAILURES {
        let wrong = format!("adm_wrong_{i}");
        let answer = call(
            &guesser,
            &base,
            Method::GET,
            "/credentials",
            Some(&wrong),
            None,
        )
        .await?;
        assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "guess {i}");
        let challenge = answer
            .headers
            .get("www-authenticate")
            .context("challenge")?;
        assert!(
            challenge.to_str()?.contains("invalid_token"),
            "{challenge:?}"
        );
    }
    // Locked out: even the right token is refused, so guessing gains nothing in the window.
    let right = Some(ADMIN_TOKEN);
    let locked = call(&guesser, &base, Method::GET, "/credentials", right, None).await?;
    assert_eq!(
        locked.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{}",
        locked.body
    );
    assert_eq!(locked.code()?, "ERR_SLUICE_7129");
    let retry: u64 = locked
        .headers
        .get("retry-after")
        .context("no Retry-After")?
        .to_str()?
        .parse()?;
    assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    let mutate = call(
        &guesser,
        &base,
        Method::POST,
        "/credentials",
        right,
        Some(json!({})),
    )
    .await?;
    assert_eq!(mutate.status, StatusCode::TOO_MANY_REQUESTS);
    // The document stays public; other addresses keep their access.
    let doc = call(&guesser, &base, Method::GET, "/openapi.json", None, None).await?;
    assert_eq!(doc.status, StatusCode::OK);
    let neighbour = client(Ipv4Addr::new(127, 0, 0, 2))?;
    let other = call(&neighbour, &base, Method::GET, "/credentials", right, None).await?;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    Ok(())
}

#[tokio::test]
async fn the_openapi_document_is_served_as_committed() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let answer = call(
        &client(HOME)?,
        &server.url(),
        Method::GET,
        "/openapi.json",
        None,
        None,
    )
    .await?;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    let committed = include_str!("../docs/admin-api.openapi.json");
    assert!(
        answer.body == committed,
        "the served document differs from docs/admin-api.openapi.json"
    );
    assert_eq!(answer.json()?["openapi"], "3.1.0");
    Ok(())
}

#[tokio::test]
async fn calls_answer_with_the_models_json_and_name_who_changed_what() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let (http, base, token) = (client(HOME)?, server.url(), Some(ADMIN_TOKEN));
    let new = json!({"description": "ci", "acl": ["bind:ci-*.localhost"], "max_sessions": 2});
    let created = call(&http, &base, Method::POST, "/credentials", token, Some(new)).await?;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let credential = created.json()?;
    let id = credential["id"].as_str().context("id")?.to_string();
    let secret = credential["token"].as_str().context("token")?.to_string();
    assert!(!secret.is_empty());
    assert_eq!(credential["uri"], format!("/credentials/{id}"));

    let list = call(&http, &base, Method::GET, "/credentials", token, None)
        .await?
        .json()?;
    assert_eq!(list["uri"], "/credentials");
    assert_eq!(list["next_page_uri"], Value::Null);
    let ids: Vec<&str> = list["credentials"]
        .as_array()
        .context("credentials")?
        .iter()
        .filter_map(|c| c["id"].as_str())
        .collect();
    let mut expected: Vec<&str> = server
        .config_credentials
        .iter()
        .map(String::as_str)
        .collect();
    expected.push(&id);
    assert_eq!(ids, expected);
    assert!(
        !list.to_string().contains("\"token\""),
        "the token is shown once"
    );

    let path = format!("/credentials/{id}");
    let change = json!({"max_sessions": null, "metadata": "m"});
    let patched = call(&http, &base, Method::PATCH, &path, token, Some(change)).await?;
    assert_eq!(patched.status, StatusCode::OK, "{}", patched.body);
    let patched = patched.json()?;
    assert_eq!(patched["max_sessions"], Value::Null);
    assert_eq!(patched["metadata"], "m");
    assert_eq!(patched["description"], "ci", "absent fields stay");

    let stop = format!("/tunnel_sessions/{}/stop", server.session);
    let stopped = call(&http, &base, Method::POST, &stop, token, None).await?;
    assert_eq!(stopped.status, StatusCode::NO_CONTENT);
    assert!(stopped.body.is_empty());
    let deleted = call(&http, &base, Method::DELETE, &path, token, None).await?;
    assert_eq!(deleted.status, StatusCode::NO_CONTENT);
    let gone = call(&http, &base, Method::GET, &path, token, None).await?;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(gone.code()?, "ERR_SLUICE_7104");

    // Each change is an audit event naming the admin token by its short id, and the caller.
    let audit = sluice_e2e::eventually(Duration::from_secs(5), "four audit events", || async {
        server.audit().ok().filter(|a| a.len() == 4)
    })
    .await?;
    let kinds: Vec<&str> = audit
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        kinds,
        [
            "credential_created.v0",
            "credential_updated.v0",
            "tunnel_session_stopped.v0",
            "credential_deleted.v0"
        ]
    );
    for event in &audit {
        let actor = event["principal"]["id"].as_str().context("principal")?;
        assert!(actor.starts_with("adm_"), "{event}");
        assert!(!ADMIN_TOKEN.contains(&actor[4..]), "{event}");
        assert_eq!(event["principal"]["ip"], HOME.to_string());
        assert!(
            !event.to_string().contains(&secret),
            "the credential's token in {event}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn bad_requests_get_the_listeners_codes() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let (http, base, token) = (client(HOME)?, server.url(), Some(ADMIN_TOKEN));
    let answer = |m: Method, p: &'static str, b: Option<Value>| call(&http, &base, m, p, token, b);

    let no_path = answer(Method::GET, "/credential", None).await?;
    assert_eq!(
        (no_path.status, no_path.code()?),
        (StatusCode::NOT_FOUND, "ERR_SLUICE_7103".into())
    );
    let no_method = answer(Method::PUT, "/credentials/cr_1", Some(json!({}))).await?;
    assert_eq!(no_method.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(no_method.code()?, "ERR_SLUICE_7105");
    assert_eq!(no_method.headers["allow"], "GET, PATCH, DELETE");

    let unknown = answer(
        Method::POST,
        "/credentials",
        Some(json!({"descripton": "x"})),
    )
    .await?;
    assert_eq!(
        (unknown.status, unknown.code()?),
        (StatusCode::BAD_REQUEST, "ERR_SLUICE_7102".into())
    );
    let msg = unknown.json()?["msg"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        msg.contains("descripton") && msg.contains("column"),
        "{msg}"
    );
    let wrong_type = answer(
        Method::POST,
        "/credentials",
        Some(json!({"max_sessions": -1})),
    )
    .await?;
    assert_eq!(wrong_type.status, StatusCode::BAD_REQUEST);
    // serde would read the struct from an array; the API takes objects only (schemathesis
    // found this).
    let array = answer(Method::POST, "/credentials", Some(json!([null, null]))).await?;
    assert_eq!(
        (array.status, array.code()?),
        (StatusCode::BAD_REQUEST, "ERR_SLUICE_7102".into())
    );

    let malformed = http
        .post(format!("{base}/credentials"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "application/json")
        .body("{\"description\": ")
        .send()
        .await?;
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
    let text = http
        .post(format!("{base}/credentials"))
        .bearer_auth(ADMIN_TOKEN)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await?;
    assert_eq!(text.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let huge = json!({"description": "x".repeat(sluice_edge::admin::listener::MAX_BODY)});
    let too_large = answer(Method::POST, "/credentials", Some(huge)).await?;
    assert_eq!(
        (too_large.status, too_large.code()?),
        (StatusCode::PAYLOAD_TOO_LARGE, "ERR_SLUICE_7113".into())
    );

    // The control plane's own errors keep their codes.
    let config = format!("/credentials/{}", server.config_credentials[0]);
    let read_only = call(&http, &base, Method::DELETE, &config, token, None).await?;
    assert_eq!(
        (read_only.status, read_only.code()?),
        (StatusCode::CONFLICT, "ERR_SLUICE_7110".into())
    );
    let bad_acl = answer(Method::POST, "/credentials", Some(json!({"acl": ["ci.*"]}))).await?;
    assert_eq!(
        (bad_acl.status, bad_acl.code()?),
        (StatusCode::BAD_REQUEST, "ERR_SLUICE_7100".into())
    );
    Ok(())
}

#[tokio::test]
async fn the_edge_serves_the_admin_api_on_admin_addr() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let any = sluice_e2e::any_port();
    let flags = ["--admin-addr", "127.0.0.1:0", "--admin-token", ADMIN_TOKEN];
    let edge = EdgeProcess::spawn_with_args(dir.path(), any, any, TOKEN, &flags).await?;
    let log = edge.log.clone();
    let addr = edge.admin_addr.context("the edge printed no Admin: line")?;
    assert!(addr.ip().is_loopback() && addr.port() != 0, "{addr}");
    let (http, base) = (client(HOME)?, format!("http://{addr}"));
    let doc = call(&http, &base, Method::GET, "/openapi.json", None, None).await?;
    assert_eq!(doc.status, StatusCode::OK);
    let bare = call(&http, &base, Method::GET, "/tunnel_sessions", None, None).await?;
    assert_eq!(bare.status, StatusCode::UNAUTHORIZED);
    let query = format!("/tunnel_sessions?token={ADMIN_TOKEN}");
    let in_query = call(&http, &base, Method::GET, &query, None, None).await?;
    assert_eq!(in_query.status, StatusCode::UNAUTHORIZED);
    let right = call(
        &http,
        &base,
        Method::GET,
        "/tunnel_sessions",
        Some(ADMIN_TOKEN),
        None,
    )
    .await?;
    assert_eq!(right.status, StatusCode::OK, "{}", right.body);
    // A credential's token is in the create call's answer and nowhere else: not in the edge's
    // log, not in later answers.
    let new = json!({"description": "logged?"});
    let created = call(
        &http,
        &base,
        Method::POST,
        "/credentials",
        Some(ADMIN_TOKEN),
        Some(new),
    )
    .await?;
    let secret = created.json()?["token"]
        .as_str()
        .context("token")?
        .to_string();
    let listed = call(
        &http,
        &base,
        Method::GET,
        "/credentials",
        Some(ADMIN_TOKEN),
        None,
    )
    .await?;
    assert!(listed.body.contains("logged?") && !listed.body.contains(&secret));
    edge.terminate(Duration::from_secs(10)).await?;
    let logs = std::fs::read_to_string(&log)?;
    assert!(
        logs.contains("admin change"),
        "no audit line in the log:\n{logs}"
    );
    for token in [ADMIN_TOKEN, secret.as_str()] {
        assert!(!logs.contains(token), "a token reached the log:\n{logs}");
    }
    Ok(())
}

/// Runs `edge ARGS` to its exit (at most 20 s): status, stdout, stderr.
async fn edge_command(args: &[&str]) -> anyhow::Result<(std::process::ExitStatus, String, String)> {
    let mut cmd = base_command("edge")?;
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = within(Duration::from_secs(20), "edge to exit", cmd.output()).await??;
    Ok((
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[tokio::test]
async fn an_admin_addr_without_a_token_stops_the_start() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let state = dir.path().to_str().context("utf-8")?;
    let flags = ["--dev", "--state-dir", state, "--admin-addr", "127.0.0.1:0"];
    let (status, stdout, stderr) = edge_command(&flags).await?;
    assert!(!status.success(), "started anyway: {stdout}");
    assert!(stderr.contains("no admin token"), "{stderr}");
    assert!(!stdout.contains("Sluice edge"), "{stdout}");
    Ok(())
}

/// `edge admin --url URL --token TOKEN ARGS`.
async fn admin(server: &AdminServer, args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let url = server.url();
    let mut all = vec!["admin", "--url", &url, "--token", ADMIN_TOKEN];
    all.extend_from_slice(args);
    let (status, out, err) = edge_command(&all).await?;
    Ok((status.success(), out, err))
}

#[tokio::test]
async fn edge_admin_prints_tables_and_the_apis_json() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let (ok, out, err) = admin(
        &server,
        &[
            "--json",
            "credentials",
            "create",
            "--description",
            "ci",
            "--acl",
            "bind:ci-*.localhost",
        ],
    )
    .await?;
    assert!(ok, "{err}");
    let created: Value = serde_json::from_str(&out).context(out.clone())?;
    let id = created["id"].as_str().context("id")?.to_string();
    let token = created["token"].as_str().context("token")?.to_string();
    assert_eq!(created["acl"], json!(["bind:ci-*.localhost"]));

    let (ok, table, err) =
        admin(&server, &["credentials", "create", "--max-sessions", "3"]).await?;
    assert!(ok, "{err}");
    assert!(table.starts_with("ID "), "{table}");
    let shown = table
        .lines()
        .find_map(|l| l.strip_prefix("Token (shown only now; store it): "))
        .context(table.clone())?;
    assert!(shown.starts_with("sluice_"), "{table}");

    let (ok, list, err) = admin(&server, &["credentials", "list"]).await?;
    assert!(ok, "{err}");
    let lines: Vec<&str> = list.lines().collect();
    assert_eq!(
        lines.len(),
        1 + server.config_credentials.len() + 2,
        "a header, edge.yaml's credentials and the two created:\n{list}"
    );
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("MAX SESSIONS"),
        "{list}"
    );
    let row = lines
        .iter()
        .find(|l| l.starts_with(&id))
        .context(list.clone())?;
    assert!(row.contains("ci") && row.contains("bind:ci-*.localhost") && row.contains("api"));
    assert!(!list.contains(&token), "a listed credential shows no token");

    let (ok, json_list, _) = admin(&server, &["--json", "credentials", "list"]).await?;
    assert!(ok);
    let page: Value = serde_json::from_str(&json_list)?;
    assert_eq!(
        page["credentials"].as_array().map(Vec::len),
        Some(server.config_credentials.len() + 2)
    );

    let (ok, updated, err) = admin(
        &server,
        &[
            "--json",
            "credentials",
            "update",
            &id,
            "--max-sessions",
            "none",
            "--max-endpoints",
            "4",
        ],
    )
    .await?;
    assert!(ok, "{err}");
    let updated: Value = serde_json::from_str(&updated)?;
    assert_eq!(
        (
            updated["max_sessions"].clone(),
            updated["max_endpoints"].clone()
        ),
        (Value::Null, json!(4))
    );
    assert_eq!(updated["description"], "ci", "fields not given stay");

    let (ok, domain, err) = admin(
        &server,
        &["reserved-domains", "create", "app", "--credential", &id],
    )
    .await?;
    assert!(ok, "{err}");
    assert!(
        domain.contains("app.localhost") && domain.contains(&id),
        "{domain}"
    );
    let (ok, sessions, _) = admin(&server, &["sessions", "list"]).await?;
    let session = &server.session;
    assert!(ok && sessions.contains(session.as_str()), "{sessions}");
    let (ok, stopped, _) = admin(&server, &["sessions", "stop", session]).await?;
    assert!(ok, "{stopped}");
    assert_eq!(stopped.trim(), format!("Stopped session {session}"));
    let (ok, deleted, _) = admin(&server, &["credentials", "delete", &id]).await?;
    assert!(ok && deleted.contains(&id), "{deleted}");
    Ok(())
}

#[tokio::test]
async fn edge_admin_errors_show_the_apis_message_and_code() -> anyhow::Result<()> {
    let server = AdminServer::start().await?;
    let (ok, out, err) = admin(&server, &["credentials", "delete", "cr_missing"]).await?;
    assert!(!ok, "{out}");
    assert!(
        err.contains("credential 'cr_missing' not found") && err.contains("ERR_SLUICE_7104"),
        "{err}"
    );
    let url = server.url();
    let wrong = [
        "admin",
        "--url",
        &url,
        "--token",
        "adm_wrong_token_12345",
        "sessions",
        "list",
    ];
    let (status, _, err) = edge_command(&wrong).await?;
    assert!(!status.success());
    assert!(err.contains("ERR_SLUICE_7101"), "{err}");
    let (status, _, err) = edge_command(&["admin", "--url", &url, "sessions", "list"]).await?;
    assert!(
        !status.success() && err.contains("SLUICE_ADMIN_TOKEN"),
        "{err}"
    );
    Ok(())
}

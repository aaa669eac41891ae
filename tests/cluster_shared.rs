//! What several edges share through a real `redis-server` beyond endpoint claims
//! (docs/cluster.md): a rate limit holds across every edge and outlives an agent's reconnect,
//! and falls back as configured when the store is gone; a sign-in made on one edge is
//! accepted on another, a logout on a third ends it everywhere within a second (even one
//! published while an edge was not listening, or made while the store was down), and an auth
//! host's one-time code issued on one edge is swapped once, on another.
//!
//! The same endpoint is online on every edge (one agent per edge, same authtoken), so each
//! request is served by the edge it reaches, as behind a DNS or L4 balancer.

use sluice_e2e::browser::Browser;
use sluice_e2e::cluster::{clustered_with as clustered, SESSION_KEYS};
use sluice_e2e::oidc::{app_saw, log_in, login_policy, OidcClient, OidcProvider, CALLBACK_PATH};
use sluice_e2e::redis::{store_command, store_pid, wait_for_window, RedisServer};
use sluice_e2e::upstream::{self, Seen, Upstream};
use sluice_e2e::{client, client_builder, error_code, eventually, TestAgent, TestEdge, TOKEN};
use sluice_edge::{Hostname, RateLimitFallback, SessionKeys};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::time::{Duration, Instant};

/// The rate limit's window.
const WINDOW: Duration = Duration::from_secs(60);

/// 10 requests per minute per client address.
fn rate_limit_policy() -> PolicySource {
    PolicySource {
        origin: "rate-limit.yml".into(),
        kind: PolicyKind::Document,
        text: r#"
on_http_request:
  - actions:
      - type: rate-limit
        config:
          name: per-client
          capacity: 10
          rate: 60s
          bucket_key: ["conn.client_ip"]
"#
        .into(),
    }
}

/// An agent bringing `limited` online on `edge` with the rate limit: one of a pool (an
/// agent per edge).
async fn limited_agent(edge: &TestEdge, up: &Upstream) -> anyhow::Result<TestAgent> {
    let mut config = edge.agent_config(TOKEN, "limited", up.addr);
    config.endpoints[0].policies = vec![rate_limit_policy()];
    // Several runs of one authtoken share a name only as a pool; unpooled, each new one
    // replaces the others on every edge (tests/cluster_sessions.rs).
    config.endpoints[0].pooling_enabled = true;
    TestAgent::start(config).await
}

/// `GET /` on `limited` through `edge`: the status and, for a 429, its `retry-after` and code.
async fn hit(edge: &TestEdge) -> anyhow::Result<(u16, Option<(u64, String)>)> {
    let resp = client()
        .get(edge.url("limited.localhost"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let status = resp.status().as_u16();
    let refused = (status == 429).then(|| {
        let retry = resp.headers()["retry-after"]
            .to_str()
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        (retry, error_code(resp.headers()).unwrap_or_default())
    });
    Ok((status, refused))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limit_holds_across_three_edges_and_outlives_a_reconnect() -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let mut edges = Vec::new();
    for id in ["one", "two", "three"] {
        edges.push(clustered(&redis, id, |_| {}).await?);
    }
    let up = upstream::app("limited").await?;
    let mut agents = Vec::new();
    for edge in &edges {
        agents.push(limited_agent(edge, &up).await?);
    }
    // All 15 requests in one window of the store's clock (the sliding window weighs the
    // previous one), whatever the reconnect takes.
    wait_for_window(&redis, WINDOW, Duration::from_secs(20)).await?;
    let mut statuses = Vec::new();
    for i in 0..15 {
        if i == 9 || i == 12 {
            // Edge one's agent reconnects: a new session with a newly compiled policy. Its
            // next request (this one, round robin) must find the bucket as it was.
            let old = agents.remove(0);
            old.stop().await?;
            agents.insert(0, limited_agent(&edges[0], &up).await?);
        }
        let (status, refused) = hit(&edges[i % 3]).await?;
        if let Some((retry, code)) = refused {
            assert_eq!(code, "ERR_SLUICE_3222");
            assert!((1..=60).contains(&retry), "retry-after {retry}");
        }
        statuses.push(status);
    }
    let mut wanted = vec![200; 10];
    wanted.extend([429; 5]);
    assert_eq!(statuses, wanted, "round robin over three edges");
    for edge in &edges {
        assert_eq!(
            edge.metric("sluice_edge_store_errors_total", "rate_limit"),
            0.0
        );
    }
    for agent in agents {
        agent.stop().await?;
    }
    for edge in edges {
        edge.shutdown().await;
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_store_gone_rate_limits_count_locally_or_deny_as_configured() -> anyhow::Result<()>
{
    let mut redis = RedisServer::start().await?;
    let local = clustered(&redis, "local", |_| {}).await?;
    let deny = clustered(&redis, "deny", |c| {
        if let Some(cluster) = c.cluster.as_mut() {
            cluster.rate_limit_fallback = RateLimitFallback::Deny;
        }
    })
    .await?;
    let up = upstream::app("limited").await?;
    let agents = [
        limited_agent(&local, &up).await?,
        limited_agent(&deny, &up).await?,
    ];
    wait_for_window(&redis, WINDOW, Duration::from_secs(20)).await?;
    // Counted in the store: 4 of the 10.
    for edge in [&local, &deny, &local, &deny] {
        assert_eq!(hit(edge).await?.0, 200);
    }

    redis.kill().await?;
    // `local`: this edge counts on its own, from zero: 10 more, then 429.
    let started = Instant::now();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        statuses.push(hit(&local).await?.0);
    }
    let took = started.elapsed();
    let mut wanted = vec![200; 10];
    wanted.extend([429; 2]);
    assert_eq!(statuses, wanted, "counted locally");
    println!("12 decisions on the local fallback took {took:.2?}");
    assert!(
        took < Duration::from_secs(3),
        "requests wait for a dead store: {took:.2?}"
    );
    // `deny`: refused, to try again in a second.
    let (status, refused) = hit(&deny).await?;
    assert_eq!(status, 429);
    assert_eq!(refused, Some((1, "ERR_SLUICE_3222".to_string())));
    for edge in [&local, &deny] {
        let errors = edge.metric("sluice_edge_store_errors_total", "rate_limit");
        assert!(errors >= 1.0, "store errors counted: {errors}");
    }

    // The store comes back (empty): decisions are its own again, within a few seconds.
    redis.restart().await?;
    eventually(
        Duration::from_secs(10),
        "the deny edge to count again",
        || async { (hit(&deny).await.ok()?.0 == 200).then_some(()) },
    )
    .await?;
    for agent in agents {
        agent.stop().await?;
    }
    local.shutdown().await;
    deny.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_that_hangs_costs_one_request_half_a_second_per_second() -> anyhow::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let redis = RedisServer::start().await?;
    let edge = clustered(&redis, "one", |_| {}).await?;
    let up = upstream::app("limited").await?;
    let agent = limited_agent(&edge, &up).await?;
    let pid = Pid::from_raw(store_pid(&redis).await?);
    // Stopped, not gone: connections stay open and calls go unanswered.
    kill(pid, Signal::SIGSTOP)?;
    let started = Instant::now();
    let mut statuses = Vec::new();
    let mut slowest = Duration::ZERO;
    for _ in 0..12 {
        let one = Instant::now();
        statuses.push(hit(&edge).await?.0);
        slowest = slowest.max(one.elapsed());
    }
    let took = started.elapsed();
    kill(pid, Signal::SIGCONT)?;
    println!("12 decisions with a hung store took {took:.2?}, the slowest {slowest:.2?}");
    let mut wanted = vec![200; 10];
    wanted.extend([429; 2]);
    assert_eq!(statuses, wanted, "counted locally (the default fallback)");
    assert!(
        slowest >= Duration::from_millis(400),
        "the first waited for the store"
    );
    assert!(
        slowest < Duration::from_millis(1000),
        "a decision waits at most 0.5 s: {slowest:.2?}"
    );
    assert!(
        took < Duration::from_millis(2500),
        "only about one decision a second asks the hung store: {took:.2?}"
    );
    assert!(edge.metric("sluice_edge_store_errors_total", "rate_limit") >= 1.0);
    agent.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// Three clustered edges serving `app.localhost` behind the openid-connect action (signing in
/// on their auth host, when given), and the provider whose client knows each edge's callback.
struct SignIn {
    edges: Vec<TestEdge>,
    _agents: Vec<TestAgent>,
    _app: Upstream,
    _idp: OidcProvider,
}

async fn sign_in_cluster(
    redis: &RedisServer,
    auth_host: Option<Hostname>,
) -> anyhow::Result<SignIn> {
    let mut edges = Vec::new();
    for id in ["one", "two", "three"] {
        let auth = auth_host.clone();
        edges.push(clustered(redis, id, move |c| c.auth_host = auth).await?);
    }
    // The provider sends sign-ins back to the auth host when there is one, else to the app.
    let callback_host = auth_host.as_ref().map_or("app.localhost", |h| h.as_str());
    let client = OidcClient {
        id: "web-app".into(),
        secret: "web-app-secret".into(),
        redirect_uris: edges
            .iter()
            .map(|e| format!("{}{CALLBACK_PATH}", e.url(callback_host)))
            .collect(),
    };
    let idp = OidcProvider::start(&[client]).await?;
    let app = upstream::app("oidc").await?;
    let mut agents = Vec::new();
    for edge in &edges {
        let mut config = edge.agent_config(TOKEN, "app", app.addr);
        config.endpoints[0].policies = vec![login_policy(&idp.issuer, "", "")];
        agents.push(TestAgent::start(config).await?);
    }
    Ok(SignIn {
        edges,
        _agents: agents,
        _app: app,
        _idp: idp,
    })
}

impl SignIn {
    /// Signs alice in through edge `i` and returns her session cookie's value.
    async fn session(&self, i: usize) -> anyhow::Result<String> {
        let base = self.edges[i].url("app.localhost");
        let mut browser = Browser::new();
        let page = browser.get(&format!("{base}/private")).await?;
        let landed = log_in(&mut browser, page, "alice").await?;
        assert_eq!(app_saw(&landed)?.user()[0], "alice");
        browser
            .cookie(&base, "sluice_session")
            .ok_or_else(|| anyhow::anyhow!("no session cookie on {base}"))
    }

    /// `GET path` on edge `i` with the session cookie, not following redirects.
    async fn get(&self, i: usize, path: &str, cookie: &str) -> anyhow::Result<reqwest::Response> {
        let http = client_builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(http
            .get(format!("{}{path}", self.edges[i].url("app.localhost")))
            .header("cookie", format!("sluice_session={cookie}"))
            .send()
            .await?)
    }

    /// Whether edge `i` lets the session cookie through (else it sends the browser to sign in).
    async fn accepts(&self, i: usize, cookie: &str) -> anyhow::Result<bool> {
        let resp = self.get(i, "/private", cookie).await?;
        match resp.status().as_u16() {
            200 => {
                let seen = Seen::parse(&resp.text().await?)?;
                assert_eq!(seen.user()[0], "alice");
                Ok(true)
            }
            302 => Ok(false),
            other => anyhow::bail!("edge {i} answered {other}"),
        }
    }

    /// Logs the session out on edge `i`.
    async fn log_out(&self, i: usize, cookie: &str) -> anyhow::Result<()> {
        let resp = self.get(i, "/_sluice/oauth/logout", cookie).await?;
        assert_eq!(resp.status(), 200);
        assert!(resp.text().await?.contains("signed out"));
        Ok(())
    }

    /// How long after now edge `i` starts refusing the cookie (at most `limit`).
    async fn refused_after(
        &self,
        i: usize,
        cookie: &str,
        limit: Duration,
    ) -> anyhow::Result<Duration> {
        let since = Instant::now();
        eventually(limit, "the logout to reach the edge", || async {
            (!self.accepts(i, cookie).await.ok()?).then_some(())
        })
        .await?;
        Ok(since.elapsed())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_from_one_edge_works_on_another_and_a_logout_on_a_third_ends_it_within_a_second(
) -> anyhow::Result<()> {
    let redis = RedisServer::start().await?;
    let s = sign_in_cluster(&redis, None).await?;
    let cookie = s.session(0).await?;
    assert!(
        s.accepts(1, &cookie).await?,
        "edge two opens edge one's cookie"
    );
    assert!(s.accepts(2, &cookie).await?);

    s.log_out(2, &cookie).await?;
    assert!(
        !s.accepts(2, &cookie).await?,
        "refused at once where it logged out"
    );
    let after = s.refused_after(0, &cookie, Duration::from_secs(5)).await?;
    println!("edge one refused the session {after:.2?} after the logout on edge three");
    assert!(
        after < Duration::from_secs(1),
        "refused only after {after:.2?}"
    );
    assert!(!s.accepts(1, &cookie).await?);
    for edge in &s.edges {
        assert_eq!(edge.metric("sluice_edge_store_errors_total", "revoke"), 0.0);
    }
    Ok(())
}

/// The session id inside a session cookie (sealed with the cluster's keys).
fn session_id(cookie: &str) -> anyhow::Result<String> {
    let dir = tempfile::tempdir()?;
    std::fs::write(dir.path().join("session-keys"), SESSION_KEYS)?;
    let keys = SessionKeys::load_or_create(dir.path())?;
    let session: serde_json::Value = keys
        .open("sluice_session", cookie)
        .ok_or_else(|| anyhow::anyhow!("the cookie does not open"))?;
    Ok(session["sid"].as_str().unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logouts_missed_while_an_edge_was_not_listening_or_made_without_the_store_still_arrive(
) -> anyhow::Result<()> {
    let mut redis = RedisServer::start().await?;
    let s = sign_in_cluster(&redis, None).await?;

    // A logout in the store that no edge heard published: edges read the store again when
    // they subscribe again (here after the store dropped every subscription).
    let cookie = s.session(0).await?;
    let sid = session_id(&cookie)?;
    let until = (std::time::SystemTime::now() + Duration::from_secs(3600))
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    let key = format!("sluice:revoked:{sid}");
    store_command(redis.addr, &["SET", &key, &until, "EXAT", &until]).await?;
    assert!(s.accepts(0, &cookie).await?, "nobody told edge one yet");
    store_command(redis.addr, &["CLIENT", "KILL", "TYPE", "pubsub"]).await?;
    let after = s.refused_after(0, &cookie, Duration::from_secs(5)).await?;
    println!("after its subscription was dropped, edge one read the missed logout in {after:.2?}");
    assert!(s.refused_after(1, &cookie, Duration::from_secs(5)).await? < Duration::from_secs(5));

    // A logout while the store is gone ends the session where it was made at once, and on
    // the others once the store is back (even empty: the edge writes it back).
    let cookie = s.session(0).await?;
    redis.kill().await?;
    s.log_out(2, &cookie).await?;
    assert!(!s.accepts(2, &cookie).await?);
    assert!(
        s.accepts(0, &cookie).await?,
        "the other edges cannot know yet"
    );
    let errors = s.edges[2].metric("sluice_edge_store_errors_total", "revoke");
    assert!(errors >= 1.0, "the failed write counted: {errors}");
    redis.restart().await?;
    let after = s.refused_after(0, &cookie, Duration::from_secs(10)).await?;
    println!("after the store came back empty, edge one refused the session in {after:.2?}");
    assert!(!s.accepts(1, &cookie).await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auth_host_code_issued_on_one_edge_is_swapped_once_on_another() -> anyhow::Result<()> {
    const SESSION_PATH: &str = "/_sluice/oauth/session";
    let redis = RedisServer::start().await?;
    let s = sign_in_cluster(&redis, Some(Hostname::parse("auth.localhost")?)).await?;
    let edges = &s.edges;
    let on = |i: usize| edges[i].url("app.localhost");

    // Signed in through edge one's auth host, stopped before its code is swapped.
    let mut browser = Browser::new();
    browser.stop_before(SESSION_PATH);
    let page = browser.get(&format!("{}/private", on(0))).await?;
    let held = log_in(&mut browser, page, "alice").await?;
    assert_eq!(held.status, 302);
    assert!(held.url.as_str().starts_with(&on(0)), "{}", held.url);
    let handoff = browser
        .cookie(&on(0), "sluice_handoff")
        .ok_or_else(|| anyhow::anyhow!("no handoff cookie"))?;
    // The same browser (its cookies are the host's, whichever edge answers) presents the
    // code on edge two, then on edges three and one.
    let mut at = Vec::new();
    for i in [1, 2, 0] {
        browser.set_cookie(&on(i), "sluice_handoff", &handoff)?;
        let mut url = held.url.clone();
        url.set_port(Some(edges[i].http_addr.port()))
            .map_err(|()| anyhow::anyhow!("no port in {url}"))?;
        at.push(url);
    }
    let [on_two, on_three, on_one] =
        <[reqwest::Url; 3]>::try_from(at).map_err(|_| anyhow::anyhow!("three URLs"))?;
    let page = browser.get(on_two.as_str()).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url.path(), "/private");
    assert_eq!(app_saw(&page)?.user()[0], "alice");
    for again in [on_three, on_one] {
        let page = browser.get(again.as_str()).await?;
        assert_eq!(page.status, 400, "{}: {}", page.url, page.body);
        assert_eq!(
            error_code(&page.headers).as_deref(),
            Some("ERR_SLUICE_3248"),
            "{}",
            page.body
        );
    }
    Ok(())
}

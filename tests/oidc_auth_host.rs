//! The edge-wide auth host (`auth_host: auth.localhost`) against a real OpenID provider (node
//! `oidc-provider`) whose client knows ONE redirect URI, the auth host's: two endpoints on two
//! agents both sign in through it and their upstreams see the identity; one-time codes work
//! once, on their own host, in the browser that started; start requests that are changed or
//! name a host the edge does not serve are refused with error pages, never redirects.

use serde_json::json;
use sluice_agent::AgentError;
use sluice_e2e::browser::{Browser, Page};
use sluice_e2e::oidc::{
    app_saw as seen, log_in, login_policy, OidcClient, OidcProvider, CALLBACK_PATH,
};
use sluice_e2e::upstream;
use sluice_e2e::{error_code, Launch, TestAgent, TestEdge, DOMAIN, TOKEN};
use sluice_edge::Hostname;
use sluice_edge::SessionKeys;
use sluice_proto::error_code::ErrorCode;
use std::time::{SystemTime, UNIX_EPOCH};

const START_PATH: &str = "/_sluice/oauth/start";
const SESSION_PATH: &str = "/_sluice/oauth/session";

struct Setup {
    edge: TestEdge,
    _agents: Vec<TestAgent>,
    _app: upstream::Upstream,
    idp: OidcProvider,
    /// `http://auth.localhost:PORT`, `http://one.localhost:PORT`, `http://two.localhost:PORT`.
    auth: String,
    one: String,
    two: String,
    state_dir: tempfile::TempDir,
}

async fn setup() -> anyhow::Result<Setup> {
    let state_dir = tempfile::tempdir()?;
    let dir = state_dir.path().to_path_buf();
    let auth_host = Hostname::parse(&format!("auth.{DOMAIN}"))?;
    let edge = TestEdge::start_with(|c| {
        c.auth_host = Some(auth_host);
        c.state_dir = dir;
    })
    .await?;
    let auth = edge.url(&format!("auth.{DOMAIN}"));
    let client = OidcClient {
        id: "web-app".into(),
        secret: "web-app-secret".into(),
        redirect_uris: vec![format!("{auth}{CALLBACK_PATH}")],
    };
    let idp = OidcProvider::start(&[client]).await?;
    let app = upstream::app("oidc").await?;
    let mut agents = Vec::new();
    for name in ["one", "two"] {
        let mut config = edge.agent_config(TOKEN, name, app.addr);
        config.endpoints[0].policies = vec![login_policy(&idp.issuer, "", "")];
        agents.push(TestAgent::start(config).await?);
    }
    Ok(Setup {
        one: edge.url(&format!("one.{DOMAIN}")),
        two: edge.url(&format!("two.{DOMAIN}")),
        auth,
        edge,
        _agents: agents,
        _app: app,
        idp,
        state_dir,
    })
}

/// An error page: the status, the code, HTML, and no redirect on the way.
fn assert_error_page(page: &Page, status: u16, code: &str) {
    assert_eq!(page.status, status, "{}: {}", page.url, page.body);
    assert_eq!(
        error_code(&page.headers).as_deref(),
        Some(code),
        "{}",
        page.body
    );
    assert_eq!(page.hops.len(), 1, "an error page, not a redirect");
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap_or_default()
        .starts_with("text/html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_endpoints_sign_in_through_the_one_registered_redirect_uri() -> anyhow::Result<()> {
    let s = setup().await?;
    for (base, user, who) in [
        (
            &s.one,
            "alice",
            ["alice", "alice@example.com", "Alice Example"],
        ),
        (&s.two, "bob", ["bob", "bob@example.org", "Bob Other"]),
    ] {
        let mut browser = Browser::new();
        let page = browser.get(&format!("{base}/private/page?x=1")).await?;
        // Endpoint → auth host → provider, with the auth host's callback as redirect URI.
        assert!(
            page.hops[1]
                .as_str()
                .starts_with(&format!("{}{START_PATH}?r=", s.auth)),
            "{:?}",
            page.hops
        );
        let authorize = page
            .hops
            .iter()
            .find(|u| u.as_str().starts_with(&s.idp.issuer))
            .expect("a hop to the provider");
        let redirect_uri = authorize
            .query_pairs()
            .find(|(k, _)| k == "redirect_uri")
            .map(|(_, v)| v.into_owned());
        assert_eq!(redirect_uri, Some(format!("{}{CALLBACK_PATH}", s.auth)));

        // Provider → auth host callback → endpoint's code path → the original page, signed in.
        let landed = log_in(&mut browser, page, user).await?;
        assert_eq!(landed.url.as_str(), format!("{base}/private/page?x=1"));
        assert_eq!(seen(&landed)?.user(), who);
        let code_hop = landed
            .hops
            .iter()
            .find(|u| u.path() == SESSION_PATH)
            .expect("a hop through the endpoint's code path")
            .clone();
        assert!(code_hop.as_str().starts_with(base.as_str()), "{code_hop}");
        assert!(browser.cookie(base, "sluice_session").is_some());
        assert!(browser.cookie(&s.auth, "sluice_session").is_none());

        // The session rides on the endpoint's host without the auth host.
        let again = browser.get(&format!("{base}/other")).await?;
        assert_eq!(again.hops.len(), 1, "{:?}", again.hops);
        assert_eq!(seen(&again)?.user(), who);

        // The code was used: the same browser presenting it again is refused.
        let reused = browser.get(code_hop.as_str()).await?;
        assert_error_page(&reused, 400, "ERR_SLUICE_3248");
        assert!(reused.body.contains("already used"), "{}", reused.body);
    }
    // One endpoint's session is not the other's (host-only cookies): the second endpoint
    // goes through the auth host and the provider again, which, still knowing the user, sends
    // the browser straight back (single sign-on across endpoints).
    let mut browser = Browser::new();
    let page = browser.get(&format!("{}/", s.one)).await?;
    log_in(&mut browser, page, "alice").await?;
    let other = browser.get(&format!("{}/x", s.two)).await?;
    let paths: Vec<&str> = other.hops.iter().map(|u| u.path()).collect();
    assert!(paths.contains(&START_PATH), "{paths:?}");
    assert!(paths.contains(&SESSION_PATH), "{paths:?}");
    assert!(other
        .hops
        .iter()
        .any(|u| u.as_str().starts_with(&s.idp.issuer)));
    assert_eq!(other.url.as_str(), format!("{}/x", s.two));
    assert_eq!(seen(&other)?.user()[0], "alice");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_works_once_on_its_own_host_in_the_browser_that_started() -> anyhow::Result<()> {
    let s = setup().await?;

    // Presented on another endpoint's host: refused, and spent.
    let mut browser = Browser::new();
    let code_url = held(&mut browser, &s.one).await?;
    let mut elsewhere = code_url.clone();
    elsewhere.set_host(Some(&format!("two.{DOMAIN}")))?;
    let page = browser.get(elsewhere.as_str()).await?;
    assert_error_page(&page, 400, "ERR_SLUICE_3249");
    assert!(page.body.contains("another site"), "{}", page.body);
    assert!(browser.cookie(&s.two, "sluice_session").is_none());
    let page = browser.get(code_url.as_str()).await?;
    assert_error_page(&page, 400, "ERR_SLUICE_3248");
    assert!(browser.cookie(&s.one, "sluice_session").is_none());

    // Presented by another browser (a link sent to a victim): refused.
    let mut browser = Browser::new();
    let code_url = held(&mut browser, &s.one).await?;
    let mut victim = Browser::new();
    let page = victim.get(code_url.as_str()).await?;
    assert_error_page(&page, 400, "ERR_SLUICE_3241");
    assert!(victim.cookie(&s.one, "sluice_session").is_none());

    // A code with a changed secret: unknown.
    let mut browser = Browser::new();
    let code_url = held(&mut browser, &s.one).await?;
    let code = code_url
        .query_pairs()
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .expect("a code");
    let mut forged = code_url.clone();
    forged.set_query(Some(&format!("code={code}x")));
    let page = browser.get(forged.as_str()).await?;
    assert_error_page(&page, 400, "ERR_SLUICE_3248");
    // The honest code still works afterwards, once.
    let page = browser.get(code_url.as_str()).await?;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(page.url.path(), "/private");
    assert_eq!(seen(&page)?.user()[0], "alice");
    Ok(())
}

/// Signs in as alice at `one` but stops before the endpoint's code path: the code URL.
async fn held(browser: &mut Browser, one: &str) -> anyhow::Result<reqwest::Url> {
    browser.stop_before(SESSION_PATH);
    let page = browser.get(&format!("{one}/private")).await?;
    let held = log_in(browser, page, "alice").await?;
    assert_eq!(held.status, 302);
    assert_eq!(held.url.path(), SESSION_PATH);
    Ok(held.url)
}

/// A start request sealed with the edge's own key (read from its state dir), as only the edge
/// could make it, returning to `host`.
fn sealed_start(s: &Setup, host: &str) -> anyhow::Result<String> {
    let keys = SessionKeys::load_or_create(s.state_dir.path())?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let start = json!({
        "host": host,
        "scheme": "http",
        "back": "/",
        "bind": "b".repeat(24),
        "config": {
            "provider": {"Oidc": {"issuer_url": s.idp.issuer}},
            "client_id": "web-app",
            "client_secret": "web-app-secret",
            "scopes": ["openid"],
            "authz_url_params": [],
            "max_session_duration": {"secs": 3600, "nanos": 0},
            "idle_session_timeout": {"secs": 3600, "nanos": 0},
            "userinfo_refresh_interval": null,
            "auth_cookie_domain": null,
        },
        "created": now,
    });
    keys.seal("sluice_start", &start)
        .ok_or_else(|| anyhow::anyhow!("sealing failed"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changed_or_foreign_start_requests_are_refused() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut browser = Browser::new();
    let page = browser.get(&format!("{}/", s.one)).await?;
    let start = page
        .hops
        .iter()
        .find(|u| u.path() == START_PATH)
        .expect("a hop through the auth host")
        .clone();

    // One character of the sealed request changed.
    let sealed = start
        .query_pairs()
        .find(|(k, _)| k == "r")
        .map(|(_, v)| v.into_owned())
        .expect("a sealed request");
    let mid = sealed.len() / 2;
    let flipped = if &sealed[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &sealed[..mid], &sealed[mid + 1..]);
    let page = Browser::new()
        .get(&format!("{}{START_PATH}?r={tampered}", s.auth))
        .await?;
    assert_error_page(&page, 400, "ERR_SLUICE_3246");
    assert!(page.body.contains("not made by this edge"), "{}", page.body);
    let page = Browser::new()
        .get(&format!("{}{START_PATH}", s.auth))
        .await?;
    assert_error_page(&page, 400, "ERR_SLUICE_3246");

    // Authentic requests (sealed with the edge's key) for hosts the edge does not serve: a
    // foreign site, a name under the domain no agent holds, the auth host itself, and a Host
    // with userinfo smuggled in. Refused, never redirected.
    let port = s.edge.http_addr.port();
    for host in [
        format!("evil.example.com:{port}"),
        format!("three.{DOMAIN}:{port}"),
        format!("auth.{DOMAIN}:{port}"),
        format!("one.{DOMAIN}:{port}@evil.example.com"),
    ] {
        let r = sealed_start(&s, &host)?;
        let page = Browser::new()
            .get(&format!("{}{START_PATH}?r={r}", s.auth))
            .await?;
        assert_error_page(&page, 400, "ERR_SLUICE_3247");
        assert!(
            page.body.contains("does not serve"),
            "{host}: {}",
            page.body
        );
    }
    // The same construction for a served endpoint goes on to the provider: the refusals above
    // are about the host, not the construction.
    let r = sealed_start(&s, &format!("one.{DOMAIN}:{port}"))?;
    let page = Browser::new()
        .get(&format!("{}{START_PATH}?r={r}", s.auth))
        .await?;
    assert!(page.url.as_str().starts_with(&s.idp.issuer), "{}", page.url);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_agent_may_claim_the_auth_host() -> anyhow::Result<()> {
    let s = setup().await?;
    let launch = TestAgent::launch(s.edge.agent_config(TOKEN, "auth", s._app.addr)).await?;
    match launch {
        Launch::Exited(Err(AgentError::Rejected(r))) => {
            assert_eq!(r.code, ErrorCode::UrlNotAllowed);
            assert!(r.message.contains("sign-in host"), "{}", r.message);
        }
        _ => panic!("an agent claimed the auth host"),
    }
    // Other paths on the auth host are not answered by anyone.
    let page = Browser::new().get(&format!("{}/", s.auth)).await?;
    assert_eq!(page.status, 404);
    assert_eq!(
        error_code(&page.headers).as_deref(),
        Some("ERR_SLUICE_3200")
    );
    Ok(())
}

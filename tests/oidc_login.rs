//! openid-connect through a real edge and agent against a real OpenID provider (node
//! `oidc-provider`): the whole browser flow with a cookie-keeping client that fills in the
//! provider's own login and consent forms, the session cookie, identity headers the client
//! cannot forge, logout, the error pages for a tampered state or a denied consent, and
//! `userinfo_refresh_interval` following the provider's directory (changed email, deleted user).

use serde_json::json;
use sluice_e2e::browser::Browser;
use sluice_e2e::oidc::{
    app_saw as seen, log_in, login_policy, OidcClient, OidcProvider, CALLBACK_PATH,
};
use sluice_e2e::upstream;
use sluice_e2e::{error_code, TestAgent, TestEdge, DOMAIN, TOKEN};
use std::time::{Duration, Instant};

const LOGOUT: &str = "/_sluice/oauth/logout";

/// Later rule: the sign-in policy refuses example.org users by name.
const DENY_EXAMPLE_ORG: &str = r#"  - expressions: ["actions.ngrok.oidc.identity.email.endsWith('@example.org')"]
    actions:
      - type: custom-response
        config: {status_code: 403, body: "not for ${actions.ngrok.oidc.identity.name}"}
"#;

struct Setup {
    _edge: TestEdge,
    _agent: TestAgent,
    _app: upstream::Upstream,
    idp: OidcProvider,
    base: String,
}

async fn setup() -> anyhow::Result<Setup> {
    setup_with("").await
}

async fn setup_with(extra: &str) -> anyhow::Result<Setup> {
    let edge = TestEdge::start().await?;
    let base = edge.url(&format!("login.{DOMAIN}"));
    let idp = OidcProvider::start(&[OidcClient::for_endpoint("web-app", "web-app-secret", &base)])
        .await?;
    let app = upstream::app("oidc").await?;
    let agent = login_agent(&edge, &idp, &app, extra).await?;
    Ok(Setup {
        _edge: edge,
        _agent: agent,
        _app: app,
        idp,
        base,
    })
}

/// The agent for `login.DOMAIN` with the sign-in policy (`extra`: more action config).
async fn login_agent(
    edge: &TestEdge,
    idp: &OidcProvider,
    app: &upstream::Upstream,
    extra: &str,
) -> anyhow::Result<TestAgent> {
    let mut config = edge.agent_config(TOKEN, "login", app.addr);
    config.endpoints[0].policies = vec![login_policy(&idp.issuer, extra, DENY_EXAMPLE_ORG)];
    TestAgent::start(config).await
}

#[tokio::test]
async fn browser_signs_in_rides_the_session_and_logs_out() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut browser = Browser::new();

    // Unauthenticated: sent to the provider, PKCE and nonce in the authorization request.
    let page = browser.get(&format!("{}/private/page?x=1", s.base)).await?;
    let authorize = page
        .hops
        .iter()
        .find(|u| u.as_str().starts_with(&s.idp.issuer))
        .expect("a hop to the provider");
    let q: Vec<(String, String)> = authorize.query_pairs().into_owned().collect();
    let has = |k: &str| q.iter().any(|(n, _)| n == k);
    assert!(
        has("code_challenge") && has("state") && has("nonce"),
        "{authorize}"
    );
    assert!(q.contains(&("code_challenge_method".into(), "S256".into())));

    // Log in through the provider's forms: back on the original path with a session, and the
    // upstream sees who it is.
    let landed = log_in(&mut browser, page, "alice").await?;
    assert_eq!(landed.url.path(), "/private/page");
    assert_eq!(landed.url.query(), Some("x=1"));
    assert_eq!(
        seen(&landed)?.user(),
        ["alice", "alice@example.com", "Alice Example"]
    );
    assert!(browser.cookie(&s.base, "sluice_session").is_some());

    // A second request rides the session cookie: no hop to the provider. Forged identity
    // headers from the client are replaced by the edge's.
    let again = browser
        .get_with(
            &format!("{}/other", s.base),
            &[
                ("sluice-auth-user-email", "admin@example.com"),
                ("sluice-auth-user-role", "admin"),
            ],
        )
        .await?;
    assert_eq!(again.hops.len(), 1, "{:?}", again.hops);
    let app_saw = seen(&again)?;
    assert_eq!(
        app_saw.header("sluice-auth-user-email").as_deref(),
        Some("alice@example.com")
    );
    assert_eq!(app_saw.header("sluice-auth-user-role"), None);

    // Another browser with alice's cookie value changed by one character: not a session.
    let sealed = browser
        .cookie(&s.base, "sluice_session")
        .unwrap_or_default();
    let mut forged = Browser::new();
    let mid = sealed.len() / 2;
    let flipped = if &sealed[mid..=mid] == "A" { "B" } else { "A" };
    let tampered = format!("{}{flipped}{}", &sealed[..mid], &sealed[mid + 1..]);
    forged.set_cookie(&s.base, "sluice_session", &tampered)?;
    let page = forged.get(&format!("{}/other", s.base)).await?;
    assert!(page.url.as_str().starts_with(&s.idp.issuer), "{}", page.url);

    // Logout ends the session, server-side too: the old cookie value no longer works.
    let out = browser.get(&format!("{}{LOGOUT}", s.base)).await?;
    assert_eq!(out.status, 200);
    assert!(out.body.contains("signed out"), "{}", out.body);
    assert!(browser.cookie(&s.base, "sluice_session").is_none());
    let mut replay = Browser::new();
    replay.set_cookie(&s.base, "sluice_session", &sealed)?;
    let page = replay.get(&format!("{}/other", s.base)).await?;
    assert!(page.url.as_str().starts_with(&s.idp.issuer), "{}", page.url);
    Ok(())
}

#[tokio::test]
async fn later_rules_see_the_identity() -> anyhow::Result<()> {
    let s = setup().await?;
    let mut browser = Browser::new();
    let page = browser.get(&format!("{}/", s.base)).await?;
    let landed = log_in(&mut browser, page, "bob").await?;
    assert_eq!(landed.status, 403);
    assert_eq!(landed.body, "not for Bob Other");
    Ok(())
}

#[tokio::test]
async fn tampered_state_and_denied_consent_give_error_pages() -> anyhow::Result<()> {
    let s = setup().await?;

    // The callback with another state than the one this browser started with.
    let mut browser = Browser::new();
    let page = browser.get(&format!("{}/", s.base)).await?;
    let consent = browser
        .submit(&page, &[("login", "alice"), ("password", "any")])
        .await?;
    let back = browser.submit(&consent, &[]).await?;
    assert_eq!(back.status, 200, "the honest flow works: {}", back.body);
    let callback = back
        .hops
        .iter()
        .find(|u| u.path() == CALLBACK_PATH)
        .expect("a hop through the callback")
        .clone();
    let mut fresh = Browser::new();
    let start = fresh.get(&format!("{}/", s.base)).await?;
    assert!(start.url.as_str().starts_with(&s.idp.issuer));
    let mut forged = callback.clone();
    let pairs: Vec<(String, String)> = callback
        .query_pairs()
        .map(|(k, v)| {
            let v = if k == "state" {
                "forged".into()
            } else {
                v.into_owned()
            };
            (k.into_owned(), v)
        })
        .collect();
    forged.query_pairs_mut().clear().extend_pairs(&pairs);
    let page = fresh.get(forged.as_str()).await?;
    assert_eq!(page.status, 400);
    assert_eq!(page.hops.len(), 1, "an error page, not a redirect");
    assert_eq!(
        error_code(&page.headers).as_deref(),
        Some("ERR_SLUICE_3242")
    );
    assert!(page.headers["content-type"]
        .to_str()?
        .starts_with("text/html"));
    assert!(page.body.contains("state does not match"), "{}", page.body);

    // A callback without a sign-in started in this browser.
    let page = Browser::new().get(callback.as_str()).await?;
    assert_eq!(page.status, 400);
    assert_eq!(
        error_code(&page.headers).as_deref(),
        Some("ERR_SLUICE_3241")
    );

    // The user refuses consent at the provider: its error comes back as a page, not a loop.
    let mut browser = Browser::new();
    let page = browser.get(&format!("{}/", s.base)).await?;
    let consent = browser
        .submit(&page, &[("login", "alice"), ("password", "any")])
        .await?;
    let abort = consent
        .body
        .split("href=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .find(|h| h.contains("/abort"))
        .map(str::to_string)
        .expect("an abort link on the consent page");
    let refused = browser.get(consent.url.join(&abort)?.as_str()).await?;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(
        error_code(&refused.headers).as_deref(),
        Some("ERR_SLUICE_3243")
    );
    assert!(refused.body.contains("access_denied"), "{}", refused.body);
    Ok(())
}

/// Signs in as alice at `url` on a fresh browser and returns it with where it landed.
async fn signed_in_alice(url: &str) -> anyhow::Result<Browser> {
    let mut browser = Browser::new();
    let page = browser.get(url).await?;
    let landed = log_in(&mut browser, page, "alice").await?;
    assert_eq!(
        seen(&landed)?.header("sluice-auth-user-email").as_deref(),
        Some("alice@example.com")
    );
    Ok(browser)
}

#[tokio::test]
async fn userinfo_refresh_follows_the_provider_and_ends_sessions_it_refuses() -> anyhow::Result<()>
{
    let s = setup_with("userinfo_refresh_interval: 2s").await?;
    let url = format!("{}/refresh", s.base);
    let mut browser = signed_in_alice(&url).await?;
    let sealed = browser
        .cookie(&s.base, "sluice_session")
        .unwrap_or_default();

    // The directory changes alice's email and name: once the interval has passed, the
    // session's next request reads them again and the upstream sees the new ones, without
    // another sign-in.
    s.idp
        .set_account(
            "alice",
            &json!({"email": "alice@new.example", "email_verified": true, "name": "Alice Renamed"}),
        )
        .await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = browser.get(&url).await?;
        assert_eq!(page.hops.len(), 1, "rides the session: {:?}", page.hops);
        let user = seen(&page)?.user();
        if user[1] == "alice@new.example" {
            assert_eq!(user, ["alice", "alice@new.example", "Alice Renamed"]);
            break;
        }
        assert!(Instant::now() < deadline, "the new email never arrived");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The user leaves the directory: the provider refuses the session's token, so the next
    // refresh ends the session and the browser is sent to sign in again.
    s.idp.remove_account("alice").await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = browser.get(&url).await?;
        if page.url.as_str().starts_with(&s.idp.issuer) {
            break;
        }
        assert_eq!(page.status, 200, "{}", page.body);
        assert!(Instant::now() < deadline, "the session never ended");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // A copy of the cookie from before does not work either.
    let mut copy = Browser::new();
    copy.set_cookie(&s.base, "sluice_session", &sealed)?;
    let page = copy.get(&url).await?;
    assert!(page.url.as_str().starts_with(&s.idp.issuer), "{}", page.url);
    Ok(())
}

#[tokio::test]
async fn userinfo_refresh_fails_closed_when_the_provider_is_gone() -> anyhow::Result<()> {
    let s = setup_with("userinfo_refresh_interval: 1s").await?;
    let url = format!("{}/refresh", s.base);
    let mut browser = signed_in_alice(&url).await?;
    // The provider goes away (its discovery document stays cached at the edge): once the
    // interval has passed, the session cannot be checked, and the request does not pass.
    drop(s.idp);
    let deadline = Instant::now() + Duration::from_secs(30);
    let page = loop {
        let page = browser.get(&url).await?;
        if page.status != 200 {
            break page;
        }
        assert!(Instant::now() < deadline, "the session was never checked");
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(page.status, 502, "{}", page.body);
    assert_eq!(page.hops.len(), 1, "an error page, not a redirect");
    assert_eq!(
        error_code(&page.headers).as_deref(),
        Some("ERR_SLUICE_3240")
    );
    assert!(page.body.contains("user info"), "{}", page.body);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logged_out_session_stays_refused_after_an_edge_restart() -> anyhow::Result<()> {
    let state = tempfile::tempdir()?;
    let dir = state.path().to_path_buf();
    let edge = TestEdge::start_with(|c| c.state_dir = dir.clone()).await?;
    let base = edge.url(&format!("login.{DOMAIN}"));
    let idp = OidcProvider::start(&[OidcClient::for_endpoint("web-app", "web-app-secret", &base)])
        .await?;
    let app = upstream::app("oidc").await?;
    let agent = login_agent(&edge, &idp, &app, "").await?;
    let mut leaving = signed_in_alice(&format!("{base}/")).await?;
    let staying = signed_in_alice(&format!("{base}/")).await?;
    let ended = leaving.cookie(&base, "sluice_session").unwrap_or_default();
    let live = staying.cookie(&base, "sluice_session").unwrap_or_default();
    let out = leaving.get(&format!("{base}{LOGOUT}")).await?;
    assert_eq!(out.status, 200, "{}", out.body);

    // The same state dir, a new process's worth of memory (new ports too).
    drop(agent);
    edge.shutdown().await;
    let edge = TestEdge::start_with(|c| c.state_dir = dir).await?;
    let base = edge.url(&format!("login.{DOMAIN}"));
    let _agent = login_agent(&edge, &idp, &app, "").await?;

    // The session nobody ended still works: keys and sessions outlived the restart.
    let mut browser = Browser::new();
    browser.set_cookie(&base, "sluice_session", &live)?;
    let page = browser.get(&format!("{base}/after")).await?;
    assert_eq!(page.hops.len(), 1, "{:?}", page.hops);
    assert_eq!(seen(&page)?.user()[0], "alice");
    // The logged-out one is still refused: back to the provider.
    let mut browser = Browser::new();
    browser.set_cookie(&base, "sluice_session", &ended)?;
    let page = browser.get(&format!("{base}/after")).await?;
    assert!(
        page.hops
            .iter()
            .any(|u| u.as_str().starts_with(&idp.issuer)),
        "{:?}",
        page.hops
    );
    assert!(!page.body.contains("alice@example.com"), "{}", page.body);
    Ok(())
}

//! openid-connect through real processes: the `edge` binary, the `agent` binary started with
//! the sign-in shorthand (`--oidc ISSUER --oidc-client-id --oidc-client-secret` and the allow
//! lists `--oauth-allow-email`, `--oauth-allow-domain`), a real OpenID provider (node
//! `oidc-provider`) and an app. A cookie-keeping client fills in the provider's login and
//! consent forms: allowed users reach the app with identity headers, anyone else gets the
//! documented 403. The same setup signs in once in headless Chromium.

use sluice_e2e::browser::{Browser, Page};
use sluice_e2e::chromium;
use sluice_e2e::oidc::{log_in, OidcClient, OidcProvider};
use sluice_e2e::process::agent_command;
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{any_port, error_code, AgentProcess, EdgeProcess, DOMAIN, TOKEN};
use std::time::Duration;

/// Edge and agent binaries, provider and app; the agent lets in alice@example.com (by email)
/// and anyone at example.net (by domain).
struct Setup {
    edge: EdgeProcess,
    agent: AgentProcess,
    idp: OidcProvider,
    _app: upstream::Upstream,
    /// `http://flags.localhost:PORT`.
    base: String,
    _dir: tempfile::TempDir,
}

impl Setup {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        // The identity provider runs on loopback, which the edge refuses unless allowed.
        let edge = EdgeProcess::spawn_with_args(
            dir.path(),
            any_port(),
            any_port(),
            TOKEN,
            &["--outbound-allow", "127.0.0.0/8"],
        )
        .await?;
        let base = format!("http://flags.{DOMAIN}:{}", edge.http_addr.port());
        let client = OidcClient::for_endpoint("flags-app", "flags-s3cret", &base);
        let idp = OidcProvider::start(&[client]).await?;
        let app = upstream::app("flags").await?;
        let mut cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "flags", app.addr)?;
        cmd.args(["--oidc", &idp.issuer])
            .args(["--oidc-client-id", "flags-app"])
            .args(["--oidc-client-secret", "flags-s3cret"])
            // Case does not matter in the allow list.
            .args(["--oauth-allow-email", "Alice@Example.com"])
            .args(["--oauth-allow-domain", "example.net"]);
        let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
        Ok(Self {
            edge,
            agent,
            idp,
            _app: app,
            base,
            _dir: dir,
        })
    }

    /// `what` with both processes' output, for failure messages.
    fn failed(&self, what: &str) -> String {
        format!("{what}\n{}\n{}", self.agent.output(), self.edge.output())
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.agent.terminate(Duration::from_secs(10)).await?;
        self.edge.terminate(Duration::from_secs(10)).await?;
        Ok(())
    }
}

/// Signs in a fresh browser as `user`, starting at `url`.
async fn sign_in(url: &str, user: &str) -> anyhow::Result<Page> {
    let mut browser = Browser::new();
    let login_page = browser.get(url).await?;
    log_in(&mut browser, login_page, user).await
}

#[tokio::test]
async fn oidc_flags_let_allowed_users_in_and_deny_others() -> anyhow::Result<()> {
    let s = Setup::start().await?;

    // alice (on the email list) signs in, lands on the page she asked for, and the app sees
    // who she is.
    let alice = sign_in(&format!("{}/dashboard?tab=2", s.base), "alice").await?;
    assert_eq!(alice.status, 200, "{}", s.failed(&alice.body));
    assert_eq!(alice.url.path(), "/dashboard");
    assert_eq!(alice.url.query(), Some("tab=2"));
    let app_saw = Seen::parse(&alice.body)?;
    assert_eq!(app_saw.uri, "/dashboard?tab=2");
    assert_eq!(
        app_saw.user(),
        ["alice", "alice@example.com", "Alice Example"]
    );
    assert_eq!(
        app_saw.header("sluice-auth-provider").as_deref(),
        Some(s.idp.issuer.as_str())
    );

    // carol (carol@example.net) is let in by --oauth-allow-domain.
    let carol = sign_in(&format!("{}/", s.base), "carol").await?;
    assert_eq!(carol.status, 200, "{}", s.failed(&carol.body));
    assert_eq!(
        Seen::parse(&carol.body)?.user(),
        ["carol", "carol@example.net", "Carol Third"]
    );

    // bob (bob@example.org) signs in at the provider but is on neither list: the deny rule
    // the flags compiled to answers 403 ERR_SLUICE_3220, and the app never sees him.
    let bob = sign_in(&format!("{}/dashboard", s.base), "bob").await?;
    assert_eq!(bob.status, 403, "{}", s.failed(&bob.body));
    assert_eq!(error_code(&bob.headers).as_deref(), Some("ERR_SLUICE_3220"));
    assert_eq!(
        bob.url.path(),
        "/dashboard",
        "denied after sign-in, not looped"
    );
    assert!(Seen::parse(&bob.body).is_err(), "{}", bob.body);

    s.stop().await
}

/// One sign-in in headless Chromium (`tests/node/login-browser.mjs`): the public URL sends it
/// to the provider's own login page, the user fills in login and consent, and the browser lands
/// on the page it asked for, served by the app with the user's identity.
#[tokio::test]
async fn chromium_signs_in_through_the_providers_pages_and_lands_on_the_app() -> anyhow::Result<()>
{
    let s = Setup::start().await?;
    let page = format!("{}/welcome?from=chromium", s.base);
    let out = chromium::drive("login-browser.mjs", &[&page, "alice"])
        .await
        .map_err(|e| anyhow::anyhow!("{}", s.failed(&format!("{e:#}"))))?;
    assert_eq!(out["url"], page.as_str(), "{out}");
    assert_eq!(out["status"], 200, "{out}");
    let app_saw = Seen::parse(out["text"].as_str().unwrap_or_default())?;
    assert_eq!(app_saw.upstream, "flags");
    assert_eq!(app_saw.uri, "/welcome?from=chromium");
    assert_eq!(
        app_saw.user(),
        ["alice", "alice@example.com", "Alice Example"]
    );
    let cookies: Vec<&str> = out["cookies"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c.as_str()).collect())
        .unwrap_or_default();
    assert!(cookies.contains(&"sluice_session"), "{out}");
    s.stop().await
}

//! A real OpenID provider on loopback: `tests/node/oidc-provider.mjs` (panva's certified
//! `oidc-provider`) as a child process, with helpers to get real tokens from it.

use crate::browser::{Browser, Page};
use crate::upstream::Seen;
use anyhow::{bail, Context as _};
use serde_json::{json, Value};
use sluice_proto::control::{PolicyKind, PolicySource};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// A client registered with the provider.
#[derive(Clone, Debug)]
pub struct OidcClient {
    /// `client_id`.
    pub id: String,
    /// `client_secret`.
    pub secret: String,
    /// Registered redirect URIs.
    pub redirect_uris: Vec<String>,
}

impl OidcClient {
    /// A client whose one redirect URI is the edge's sign-in callback on `base`
    /// (`http://NAME.localhost:PORT`).
    pub fn for_endpoint(id: &str, secret: &str, base: &str) -> Self {
        Self {
            id: id.into(),
            secret: secret.into(),
            redirect_uris: vec![format!("{base}{CALLBACK_PATH}")],
        }
    }
}

/// The edge's reserved sign-in callback path on every endpoint host.
pub const CALLBACK_PATH: &str = "/_sluice/oauth/callback";

/// The sign-in policy of these tests: an openid-connect action for client `web-app` (secret
/// `web-app-secret`) at `issuer`, scopes openid, email and profile; `extra` is more config of
/// the action (`key: value`), `rules` more rules after it (YAML list items, 2-space indent).
pub fn login_policy(issuer: &str, extra: &str, rules: &str) -> PolicySource {
    PolicySource {
        origin: "oidc.yml".into(),
        kind: PolicyKind::Document,
        text: format!(
            r#"
on_http_request:
  - actions:
      - type: openid-connect
        config:
          issuer_url: "{issuer}"
          client_id: web-app
          client_secret: web-app-secret
          scopes: [openid, email, profile]
          {extra}
{rules}"#
        ),
    }
}

/// What the test app saw, from a page that must have reached it (200).
pub fn app_saw(page: &Page) -> anyhow::Result<Seen> {
    if page.status != 200 {
        bail!("{} answered {}: {}", page.url, page.status, page.body);
    }
    Seen::parse(&page.body)
}

/// From the provider's login page: logs in as `user` (any password) through its login form,
/// consents, and ends wherever the provider sends the browser.
pub async fn log_in(browser: &mut Browser, login_page: Page, user: &str) -> anyhow::Result<Page> {
    if !login_page.body.contains("name=\"login\"") {
        bail!(
            "expected the provider's login form at {}: {}",
            login_page.url,
            login_page.body
        );
    }
    let consent = browser
        .submit(&login_page, &[("login", user), ("password", "any")])
        .await?;
    if !consent.body.contains("value=\"consent\"") {
        bail!(
            "expected the consent form at {}: {}",
            consent.url,
            consent.body
        );
    }
    browser.submit(&consent, &[]).await
}

/// A running provider; stopped when dropped.
pub struct OidcProvider {
    _child: Child,
    _stdin: Option<ChildStdin>,
    /// The issuer URL (`http://127.0.0.1:PORT`).
    pub issuer: String,
    /// The JWKS URL.
    pub jwks_uri: String,
    /// The token endpoint.
    pub token_endpoint: String,
    /// The `kid` of its signing key.
    pub kid: String,
}

impl OidcProvider {
    /// Starts a provider with `clients` and waits (up to 60 s) until it listens.
    pub async fn start(clients: &[OidcClient]) -> anyhow::Result<Self> {
        let config = json!({
            "clients": clients.iter().map(|c| json!({
                "client_id": c.id,
                "client_secret": c.secret,
                "redirect_uris": c.redirect_uris,
            })).collect::<Vec<_>>(),
        });
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
        let mut child = Command::new("node")
            .arg("oidc-provider.mjs")
            .arg(config.to_string())
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting node tests/node/oidc-provider.mjs (is node installed?)")?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().context("provider stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let first = crate::within(
            Duration::from_secs(60),
            "the OpenID provider to listen",
            async {
                while let Some(line) = lines.next_line().await? {
                    if line.starts_with('{') {
                        return Ok(line);
                    }
                }
                bail!("the OpenID provider exited before listening")
            },
        )
        .await??;
        let info: Value = serde_json::from_str(&first)?;
        let field = |k: &str| -> anyhow::Result<String> {
            Ok(info[k]
                .as_str()
                .with_context(|| format!("no {k} in {first}"))?
                .to_string())
        };
        Ok(Self {
            issuer: field("issuer")?,
            jwks_uri: field("jwks_uri")?,
            token_endpoint: field("token_endpoint")?,
            kid: field("kid")?,
            _stdin: stdin,
            _child: child,
        })
    }

    /// A JWT access token for audience `resource` from the client-credentials grant.
    pub async fn client_credentials_token(
        &self,
        client: &OidcClient,
        resource: &str,
    ) -> anyhow::Result<String> {
        let text = direct_client()?
            .post(&self.token_endpoint)
            .basic_auth(&client.id, Some(&client.secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("resource", resource),
                ("scope", "api"),
            ])
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?;
        let res: Value = serde_json::from_str(&text)?;
        Ok(res["access_token"]
            .as_str()
            .with_context(|| format!("no access_token in {res}"))?
            .to_string())
    }

    /// `claims` signed with the provider's own key (RS256, its `kid`), for tokens the grants
    /// cannot produce (expired, not yet valid).
    pub async fn sign(&self, claims: &Value) -> anyhow::Result<String> {
        Ok(direct_client()?
            .post(format!("{}/test/sign", self.issuer))
            .body(claims.to_string())
            .send()
            .await?
            .error_for_status()?
            .text()
            .await?)
    }

    /// Replaces (or adds) account `id`'s claims, as a directory does when a user's email or
    /// name changes.
    pub async fn set_account(&self, id: &str, claims: &Value) -> anyhow::Result<()> {
        direct_client()?
            .put(format!("{}/test/accounts/{id}", self.issuer))
            .body(claims.to_string())
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Removes account `id`: the provider refuses its tokens from now on.
    pub async fn remove_account(&self, id: &str) -> anyhow::Result<()> {
        direct_client()?
            .delete(format!("{}/test/accounts/{id}", self.issuer))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }
}

/// A client for the provider itself (plain loopback, no name mapping).
fn direct_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()?)
}

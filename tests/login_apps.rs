//! oauth / openid-connect without client credentials (ngrok's managed apps) through a real
//! edge and agent against a real OpenID provider: the edge operator's default app
//! (`login_apps:`) signs the browser in, its client id in the redirect to the provider and its
//! secret in the code exchange; an edge without a default app refuses such a policy at load,
//! naming the setting to add.

use sluice_agent::AgentError;
use sluice_e2e::browser::Browser;
use sluice_e2e::oidc::{app_saw, log_in, OidcClient, OidcProvider};
use sluice_e2e::upstream;
use sluice_e2e::{free_tcp_port, Launch, TestAgent, TestEdge, DOMAIN, TOKEN};
use sluice_policy::{LoginApp, LoginApps, Secret};
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::error_code::ErrorCode;

const APP_ID: &str = "operator-app";
const APP_SECRET: &str = "operator-app-secret-value";

/// openid-connect with only the provider: the credentials are the edge's.
fn policy(issuer: &str) -> PolicySource {
    PolicySource {
        origin: "managed.yml".into(),
        kind: PolicyKind::Document,
        text: format!(
            "on_http_request:\n  - actions:\n      - type: openid-connect\n        config:\n          issuer_url: \"{issuer}\"\n          scopes: [openid, email, profile]\n"
        ),
    }
}

#[tokio::test]
async fn the_operators_default_app_signs_in_and_without_one_the_policy_is_refused(
) -> anyhow::Result<()> {
    // The provider must know the callback before the edge starts: fix the edge's port first.
    let http_addr = free_tcp_port()?;
    let base = format!("http://login.{DOMAIN}:{}", http_addr.port());
    let idp = OidcProvider::start(&[OidcClient::for_endpoint(APP_ID, APP_SECRET, &base)]).await?;
    let apps = LoginApps {
        oidc: [(
            idp.issuer.clone(),
            LoginApp {
                client_id: APP_ID.into(),
                client_secret: Secret::new(APP_SECRET),
            },
        )]
        .into(),
        ..LoginApps::default()
    };
    let edge = TestEdge::start_with(|c| {
        c.http_addr = http_addr;
        c.login_apps = apps;
    })
    .await?;
    let app = upstream::app("managed").await?;
    let mut config = edge.agent_config(TOKEN, "login", app.addr);
    config.endpoints[0].policies = vec![policy(&idp.issuer)];
    let _agent = TestAgent::start(config).await?;

    let mut browser = Browser::new();
    let page = browser.get(&format!("{base}/private")).await?;
    let authorize = page
        .hops
        .iter()
        .find(|u| u.as_str().starts_with(&idp.issuer))
        .expect("a hop to the provider");
    let client_id = authorize
        .query_pairs()
        .find(|(k, _)| k == "client_id")
        .map(|(_, v)| v.into_owned());
    assert_eq!(client_id.as_deref(), Some(APP_ID), "{authorize}");
    // The code exchange authenticates with the operator's secret: the sign-in completes.
    let landed = log_in(&mut browser, page, "alice").await?;
    assert_eq!(landed.url.path(), "/private");
    assert_eq!(app_saw(&landed)?.user()[0], "alice");

    // An edge without a default app for this issuer refuses the policy before it goes online.
    let bare = TestEdge::start().await?;
    let mut config = bare.agent_config(TOKEN, "login", app.addr);
    config.endpoints[0].policies = vec![policy(&idp.issuer)];
    match TestAgent::launch(config).await? {
        Launch::Exited(Err(AgentError::Rejected(r))) => {
            assert_eq!(r.code, ErrorCode::PolicyInvalid);
            assert!(r.message.contains("managed.yml:5:"), "{}", r.message);
            assert!(
                r.message.contains("login_apps: {oidc: [{issuer_url: "),
                "{}",
                r.message
            );
        }
        Launch::Exited(other) => anyhow::bail!("expected a policy rejection, got {other:?}"),
        Launch::Online(_) => anyhow::bail!("a policy without credentials went online"),
    }
    Ok(())
}

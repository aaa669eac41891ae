//! `secrets.get(vault, name)` through a real edge and agent: vaults from the edge's config (a
//! directory of files, environment variables, a file of `NAME=value` lines) read when a policy
//! comes online, used in basic-auth credentials and an added header; agents see only the vaults
//! marked `agents: true`; a missing secret refuses the policy naming vault and secret, never a
//! value.

use sluice_agent::AgentError;
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{client, Launch, TestAgent, TestEdge, TOKEN};
use sluice_edge::{Hostname, OperatorPolicy, SecretVault, VaultSource};
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::error_code::ErrorCode;
use std::path::Path;

const API_KEY: &str = "s3cr3t-api-key-value";
const PASSWORD: &str = "correct-horse-battery";
const OPS_TOKEN: &str = "ops-only-token-value";

fn document(origin: &str, text: &str) -> PolicySource {
    PolicySource {
        origin: origin.into(),
        kind: PolicyKind::Document,
        text: text.into(),
    }
}

/// Vault `prod` (a directory, agents may read it) and `ops` (a file, edge.yaml only).
fn vaults(dir: &Path) -> anyhow::Result<Vec<SecretVault>> {
    std::fs::create_dir_all(dir.join("prod"))?;
    std::fs::write(dir.join("prod/api-key"), format!("{API_KEY}\n"))?;
    std::fs::write(dir.join("prod/password"), PASSWORD)?;
    std::fs::write(dir.join("ops.env"), format!("# ops\ntoken={OPS_TOKEN}\n"))?;
    Ok(vec![
        SecretVault {
            name: "prod".into(),
            source: VaultSource::Dir(dir.join("prod")),
            agents: true,
        },
        SecretVault {
            name: "ops".into(),
            source: VaultSource::File(dir.join("ops.env")),
            agents: false,
        },
    ])
}

const AGENT_POLICY: &str = r#"
on_http_request:
  - actions:
      - type: basic-auth
        config: {credentials: ["admin:${secrets.get('prod', 'password')}"]}
      - type: add-headers
        config: {headers: {x-api-key: "${secrets.get('prod', 'api-key')}"}}
"#;

/// What the edge answers when an agent asks to bring `policy` online.
async fn refusal(
    edge: &TestEdge,
    app: &upstream::Upstream,
    policy: &str,
) -> anyhow::Result<String> {
    let mut config = edge.agent_config(TOKEN, "refused", app.addr);
    config.endpoints[0].policies = vec![document("raw.yml", policy)];
    match TestAgent::launch(config).await? {
        Launch::Exited(Err(AgentError::Rejected(r))) => {
            assert_eq!(r.code, ErrorCode::PolicyInvalid);
            Ok(r.message)
        }
        Launch::Exited(other) => anyhow::bail!("expected a policy rejection, got {other:?}"),
        Launch::Online(_) => anyhow::bail!("a policy with a missing secret went online"),
    }
}

#[tokio::test]
async fn policies_read_the_edges_vaults_and_a_missing_secret_is_refused() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let vaults = vaults(dir.path())?;
    let operator = OperatorPolicy {
        pattern: Hostname::parse("ops.localhost")?,
        source: Some(document(
            "edge.yaml endpoints[0].traffic_policy",
            "on_http_request:\n  - actions: [{type: custom-response, config: {status_code: 200, body: \"${security.secret('ops', 'token')}\"}}]\n",
        )),
    };
    let edge = TestEdge::start_with(|c| {
        c.secret_vaults = vaults;
        c.operator_policies = vec![operator];
    })
    .await?;
    let app = upstream::app("secret-app").await?;
    let mut config = edge.agent_config(TOKEN, "vault", app.addr);
    config.endpoints[0].policies = vec![document("agent.yml", AGENT_POLICY)];
    let _agent = TestAgent::start(config).await?;
    let url = edge.url("vault.localhost");

    // The password from the vault opens basic-auth; the key reaches the upstream.
    let r = client().get(&url).send().await?;
    assert_eq!(r.status(), 401);
    let r = client()
        .get(&url)
        .basic_auth("admin", Some("wrong-password"))
        .send()
        .await?;
    assert_eq!(r.status(), 401);
    let r = client()
        .get(&url)
        .basic_auth("admin", Some(PASSWORD))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    let seen = Seen::parse(&r.text().await?)?;
    assert_eq!(seen.header("x-api-key").as_deref(), Some(API_KEY));

    // edge.yaml's own policy reads the vault agents may not.
    let r = client().get(edge.url("ops.localhost")).send().await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await?, OPS_TOKEN);

    // A missing name: refused, located, naming vault and secret and no value.
    let message = refusal(
        &edge,
        &app,
        "on_http_request:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-k: \"${secrets.get('prod', 'nope')}\"}}\n",
    )
    .await?;
    assert!(message.contains("raw.yml:4:"), "{message}");
    assert!(
        message.contains("secret `nope` not found in vault `prod`"),
        "{message}"
    );
    for value in [API_KEY, PASSWORD, OPS_TOKEN] {
        assert!(!message.contains(value), "{message}");
    }
    // An agent cannot read a vault kept for edge.yaml.
    let message = refusal(
        &edge,
        &app,
        "on_http_request: [{expressions: [\"secrets.get('ops', 'token') == 'x'\"], actions: [{type: deny}]}]\n",
    )
    .await?;
    assert!(message.contains("no secret vault `ops`"), "{message}");
    assert!(message.contains("agents: true"), "{message}");
    assert!(!message.contains(OPS_TOKEN), "{message}");
    Ok(())
}

//! The operator's control plane through a real edge and real agents: credentials with `bind:`
//! rules and limits, reservations, stopping sessions, deleting credentials, audit events, and
//! state that survives a restart in a store `sqlite3` reads. (The admin API's HTTP side is
//! tested in tests/admin.rs.)

use sluice_agent::AgentError;
use sluice_e2e::process::{agent_command, AgentProcess};
use sluice_e2e::{closed_port, eventually, Launch, TestAgent, TestEdge, TOKEN};
use sluice_edge::admin::api::{Actor, Admin, AdminError};
use sluice_edge::admin::model::{
    CredentialCreate, CredentialUpdate, EndpointCreate, ReservedAddr, ReservedAddrCreate,
    ReservedDomainCreate,
};
use sluice_edge::EventDestination;
use sluice_proto::error_code::ErrorCode;
use std::sync::Arc;
use std::time::Duration;

fn actor() -> Actor {
    Actor {
        token_id: "adm_test".into(),
        remote: [127, 0, 0, 1].into(),
    }
}

fn refused_with(launch: Launch) -> Option<ErrorCode> {
    match launch {
        Launch::Exited(Err(AgentError::Rejected(r))) => Some(r.code),
        _ => None,
    }
}

/// A new credential's token and id.
async fn credential(
    admin: &Arc<dyn Admin>,
    new: CredentialCreate,
) -> anyhow::Result<(String, String)> {
    let created = admin.create_credential(&actor(), new).await?;
    let token = created
        .token
        .clone()
        .ok_or_else(|| anyhow::anyhow!("no token in the answer"))?;
    Ok((token, created.id))
}

/// Reserves `domain` for the credential `owner`.
async fn reserve_domain(admin: &Arc<dyn Admin>, domain: &str, owner: &str) -> anyhow::Result<()> {
    let new = ReservedDomainCreate {
        domain: domain.into(),
        credential_id: owner.into(),
        ..Default::default()
    };
    admin.create_reserved_domain(&actor(), new).await?;
    Ok(())
}

/// Reserves a TCP address (`addr`, or any free one) for the credential `owner`.
async fn reserve_addr(
    admin: &Arc<dyn Admin>,
    addr: Option<String>,
    owner: &str,
) -> Result<ReservedAddr, AdminError> {
    let new = ReservedAddrCreate {
        addr,
        credential_id: owner.into(),
        ..Default::default()
    };
    admin.create_reserved_addr(&actor(), new).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_created_credential_works_within_its_acl_and_never_shows_its_token_again(
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events.jsonl");
    let events_path = events.clone();
    let edge = TestEdge::start_with(move |c| {
        c.event_destinations = vec![EventDestination::events_file(
            events_path.to_str().unwrap_or_default(),
        )]
    })
    .await?;
    let admin = edge.handle().admin();
    let (token, id) = credential(
        &admin,
        CredentialCreate {
            description: Some("ci runners".into()),
            acl: Some(vec!["bind:ci-*.localhost".into()]),
            ..Default::default()
        },
    )
    .await?;
    let upstream = closed_port()?;
    let _ci = TestAgent::start(edge.agent_config(&token, "ci-1", upstream)).await?;
    let outside = TestAgent::launch(edge.agent_config(&token, "prod", upstream)).await?;
    assert_eq!(refused_with(outside), Some(ErrorCode::BindNotAllowed));

    // The change applies without a restart: a wider rule lets the same token in.
    admin
        .update_credential(
            &actor(),
            &id,
            CredentialUpdate {
                acl: Some(vec!["bind:*.localhost".into()]),
                ..Default::default()
            },
        )
        .await?;
    let _prod = TestAgent::start(edge.agent_config(&token, "prod", upstream)).await?;

    // Listed, with edge.yaml's tokens read-only; the token itself nowhere.
    let listed = admin.credentials().await?;
    let shown = serde_json::to_string(&listed)?;
    assert!(!shown.contains(&token), "{shown}");
    assert!(
        shown.contains("ci runners") && shown.contains("\"source\":\"config\""),
        "{shown}"
    );
    let sessions = serde_json::to_string(&admin.tunnel_sessions().await?)?;
    assert!(
        sessions.contains(&id) && !sessions.contains(&token),
        "{sessions}"
    );
    edge.shutdown().await;
    let exported = std::fs::read_to_string(&events)?;
    assert!(exported.contains("credential_created.v0"), "{exported}");
    assert!(exported.contains("credential_updated.v0") && exported.contains("adm_test"));
    assert!(!exported.contains(&token), "the token reached an event");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_credentials_session_and_endpoint_limits_hold() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let admin = edge.handle().admin();
    let upstream = closed_port()?;
    let (one_session, _) = credential(
        &admin,
        CredentialCreate {
            max_sessions: Some(1),
            ..Default::default()
        },
    )
    .await?;
    let _first = TestAgent::start(edge.agent_config(&one_session, "s1", upstream)).await?;
    let second = TestAgent::launch(edge.agent_config(&one_session, "s2", upstream)).await?;
    assert_eq!(refused_with(second), Some(ErrorCode::AgentLimitReached));

    let (one_endpoint, _) = credential(
        &admin,
        CredentialCreate {
            max_endpoints: Some(1),
            ..Default::default()
        },
    )
    .await?;
    let _e1 = TestAgent::start(edge.agent_config(&one_endpoint, "e1", upstream)).await?;
    let e2 = TestAgent::launch(edge.agent_config(&one_endpoint, "e2", upstream)).await?;
    assert_eq!(refused_with(e2), Some(ErrorCode::EndpointLimitReached));
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reserved_name_is_refused_to_others_while_its_owner_is_offline() -> anyhow::Result<()> {
    let ports = sluice_e2e::tcp_port_range(4)?;
    let edge = TestEdge::start_with(|c| c.tcp_ports = Some(ports)).await?;
    let admin = edge.handle().admin();
    let upstream = closed_port()?;
    let (owner_token, owner) = credential(&admin, CredentialCreate::default()).await?;
    reserve_domain(&admin, "kept", &owner).await?;
    let addr = reserve_addr(&admin, None, &owner).await?;
    // Nobody online holds it, and still the other token is refused.
    let other = TestAgent::launch(edge.agent_config(TOKEN, "kept", upstream)).await?;
    assert_eq!(refused_with(other), Some(ErrorCode::NameReserved));
    let port_url = format!("tcp://{}", addr.addr);
    // An explicit address is read as an agent's tcp:// URL is: PORT or DOMAIN:PORT.
    let port = addr
        .addr
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    for (asked, refusal) in [
        (port.clone(), "already reserved"),
        (format!("localhost:{port}"), "already reserved"),
        (format!("elsewhere.example:{port}"), "this edge's domain"),
        ("0".to_string(), "not a number between 1 and 65535"),
    ] {
        let again = reserve_addr(&admin, Some(asked.clone()), &owner).await;
        let said = again.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(said.contains(refusal), "{asked}: {said}");
    }
    let other_tcp = TestAgent::launch(edge.tcp_agent_config(TOKEN, &port_url, upstream)).await?;
    assert_eq!(refused_with(other_tcp), Some(ErrorCode::NameReserved));
    // The owner gets both.
    let _mine = TestAgent::start(edge.agent_config(&owner_token, "kept", upstream)).await?;
    let _mine_tcp =
        TestAgent::start(edge.tcp_agent_config(&owner_token, &port_url, upstream)).await?;
    // Free names stay first come, first served.
    let _free = TestAgent::start(edge.agent_config(TOKEN, "free", upstream)).await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopped_agent_exits_with_the_operators_message_and_frees_its_name() -> anyhow::Result<()>
{
    let edge = TestEdge::start().await?;
    let admin = edge.handle().admin();
    let upstream = closed_port()?;
    let dir = tempfile::tempdir()?;
    let cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "stopme", upstream)?;
    let mut agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let sessions = admin.tunnel_sessions().await?;
    let session = sessions
        .iter()
        .find(|s| s.endpoints.iter().any(|e| e.contains("stopme")))
        .ok_or_else(|| anyhow::anyhow!("no session listed: {sessions:?}"))?;
    assert!(
        session.agent_version.starts_with(env!("CARGO_PKG_VERSION")),
        "{session:?}"
    );
    admin.stop_tunnel_session(&actor(), &session.id).await?;
    let status = agent.exited(Duration::from_secs(2)).await?;
    assert!(!status.success(), "a stopped agent exits non-zero");
    let said = agent.output();
    assert!(said.contains("stopped by the edge operator"), "{said}");
    // Its name is free at once, and it did not come back.
    let _next = TestAgent::start(edge.agent_config(TOKEN, "stopme", upstream)).await?;
    assert!(admin.tunnel_session(&session.id).await.is_err());
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_credential_closes_its_sessions() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let admin = edge.handle().admin();
    let upstream = closed_port()?;
    let (token, id) = credential(&admin, CredentialCreate::default()).await?;
    let agent = TestAgent::start(edge.agent_config(&token, "doomed", upstream)).await?;
    admin.delete_credential(&actor(), &id).await?;
    let ended = agent.join(Duration::from_secs(1)).await?;
    assert!(
        matches!(&ended, Err(AgentError::Stopped(why)) if why.contains("deleted")),
        "{ended:?}"
    );
    let again = TestAgent::launch(edge.agent_config(&token, "doomed", upstream)).await?;
    assert_eq!(refused_with(again), Some(ErrorCode::AuthtokenInvalid));
    // edge.yaml's tokens are read-only.
    let configured = admin.credentials().await?;
    let err = admin.delete_credential(&actor(), &configured[0].id).await;
    assert!(matches!(
        err,
        Err(sluice_edge::admin::api::AdminError::ReadOnly { .. })
    ));
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_survives_a_restart_and_sqlite3_reads_it() -> anyhow::Result<()> {
    sluice_e2e::tools::require(&["sqlite3"], "scripts/setup.d/78-sqlite3")?;
    let state = tempfile::tempdir()?;
    let dir = state.path().to_path_buf();
    let upstream = closed_port()?;
    let (token, id, endpoint) = {
        let state_dir = dir.clone();
        let edge = TestEdge::start_with(move |c| c.state_dir = state_dir).await?;
        let admin = edge.handle().admin();
        let (token, id) = credential(&admin, CredentialCreate::default()).await?;
        reserve_domain(&admin, "mine", &id).await?;
        let endpoint = admin
            .create_endpoint(
                &actor(),
                EndpointCreate {
                    url: "http://hello.localhost".into(),
                    traffic_policy: "on_http_request:\n  - actions:\n      - type: custom-response\n        config: {status_code: 200, content: cloud says hi}\n".into(),
                    credential_id: Some(id.clone()),
                    ..Default::default()
                },
            )
            .await?;
        edge.shutdown().await;
        (token, id, endpoint)
    };
    let state_dir = dir.clone();
    let edge = TestEdge::start_with(move |c| c.state_dir = state_dir).await?;
    let admin = edge.handle().admin();
    assert!(admin.credential(&id).await.is_ok());
    assert_eq!(admin.reserved_domains().await?.len(), 1);
    // The same endpoint, on the new edge's port.
    let restored = admin.endpoint(&endpoint.id).await?;
    assert!(
        restored.url.starts_with("http://hello.localhost:"),
        "{restored:?}"
    );
    let body = sluice_e2e::client()
        .get(edge.url("hello.localhost"))
        .send()
        .await?
        .text()
        .await?;
    assert_eq!(body, "cloud says hi");
    let other = TestAgent::launch(edge.agent_config(TOKEN, "mine", upstream)).await?;
    assert_eq!(refused_with(other), Some(ErrorCode::NameReserved));
    let _owner = TestAgent::start(edge.agent_config(&token, "mine", upstream)).await?;
    // The operator's own tools read the store; the token is not in it.
    let db = dir.join("sluice.db");
    let out = std::process::Command::new("sqlite3")
        .arg(&db)
        .arg("SELECT id FROM credentials; SELECT domain FROM reserved_domains; SELECT url FROM cloud_endpoints;")
        .output()?;
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        listed.contains(&id)
            && listed.contains("mine.localhost")
            && listed.contains("hello.localhost"),
        "{listed}"
    );
    let raw = std::fs::read(&db)?;
    assert!(
        !raw.windows(token.len()).any(|w| w == token.as_bytes()),
        "the token is stored in clear"
    );
    // Deleting the cloud endpoint takes it offline.
    admin.delete_endpoint(&actor(), &endpoint.id).await?;
    eventually(
        Duration::from_secs(2),
        "the cloud endpoint offline",
        || async {
            let resp = sluice_e2e::client()
                .get(edge.url("hello.localhost"))
                .send()
                .await
                .ok()?;
            (resp.status() == 404).then_some(())
        },
    )
    .await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_endpoint_list_shows_pool_members_internal_and_cloud_endpoints() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let admin = edge.handle().admin();
    let upstream = closed_port()?;
    let mut pooled = Vec::new();
    for _ in 0..2 {
        let mut config = edge.agent_config(TOKEN, "pool", upstream);
        config.endpoints[0].pooling_enabled = true;
        pooled.push(TestAgent::start(config).await?);
    }
    let _internal = TestAgent::start(edge.agent_config(TOKEN, "api.internal", upstream)).await?;
    let cloud = admin
        .create_endpoint(
            &actor(),
            EndpointCreate {
                url: "http://front.localhost".into(),
                traffic_policy: "on_http_request: [{actions: [{type: custom-response, config: {content: front}}]}]".into(),
                ..Default::default()
            },
        )
        .await;
    // The test edge accepts two tokens: without credential_id the namespace is ambiguous.
    assert!(
        matches!(&cloud, Err(sluice_edge::admin::api::AdminError::Invalid(m)) if m.contains("credential_id")),
        "{cloud:?}"
    );
    let configured = admin.credentials().await?;
    let cloud = admin
        .create_endpoint(
            &actor(),
            EndpointCreate {
                url: "http://front.localhost".into(),
                traffic_policy: "on_http_request: [{actions: [{type: custom-response, config: {content: front}}]}]".into(),
                credential_id: Some(configured[0].id.clone()),
                ..Default::default()
            },
        )
        .await?;
    let all = admin.endpoints().await?;
    let members: Vec<_> = all
        .iter()
        .filter(|e| e.url.contains("pool.localhost"))
        .collect();
    assert_eq!(members.len(), 2, "{all:#?}");
    assert!(members
        .iter()
        .all(|m| m.pooling_enabled && m.kind == "agent" && m.tunnel_session.is_some()));
    assert_ne!(members[0].id, members[1].id);
    let internal = all
        .iter()
        .find(|e| e.url == "https://api.internal")
        .ok_or_else(|| anyhow::anyhow!("{all:#?}"))?;
    assert_eq!(internal.binding, "internal");
    let front = admin.endpoint(&cloud.id).await?;
    assert_eq!(
        (front.kind.as_str(), front.source),
        ("cloud", Some(sluice_edge::admin::model::Source::Api))
    );
    assert!(front
        .traffic_policy
        .as_deref()
        .is_some_and(|p| p.contains("front")));
    edge.shutdown().await;
    Ok(())
}

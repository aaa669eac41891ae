//! Who may open agent sessions and what they may do: the per-token session limit, the rate
//! limit on wrong authtokens, the one-stream limit on agents, and agents speaking another
//! protocol version, through a real edge.

use sluice_agent::{AgentError, AgentEvent};
use sluice_e2e::{closed_port, eventually, Launch, TestAgent, TestEdge, TOKEN};
use sluice_edge::MAX_AUTH_FAILURES;
use sluice_proto::control::HelloReply;
use sluice_proto::error_code::ErrorCode;
use sluice_proto::PROTOCOL_VERSION;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

fn refused_with(launch: Launch) -> Option<ErrorCode> {
    match launch {
        Launch::Exited(Err(AgentError::Rejected(r))) => Some(r.code),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_beyond_its_session_limit_is_refused_until_one_ends() -> anyhow::Result<()> {
    let edge = TestEdge::start_with(|c| c.max_agents_per_token = 2).await?;
    let upstream = closed_port()?;
    let first = TestAgent::start(edge.agent_config(TOKEN, "one", upstream)).await?;
    let _second = TestAgent::start(edge.agent_config(TOKEN, "two", upstream)).await?;
    let third = TestAgent::launch(edge.agent_config(TOKEN, "three", upstream)).await?;
    assert_eq!(refused_with(third), Some(ErrorCode::AgentLimitReached));
    // The refused agent claimed nothing.
    sluice_e2e::assert_endpoint_not_found(
        &sluice_e2e::client()
            .get(edge.url("three.localhost"))
            .send()
            .await?,
    );
    first.stop().await?;
    eventually(Duration::from_secs(10), "a freed session slot", || async {
        match TestAgent::launch(edge.agent_config(TOKEN, "three", upstream)).await {
            Ok(Launch::Online(agent)) => Some(agent),
            _ => None,
        }
    })
    .await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_tokens_in_a_loop_get_the_address_rate_limited() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let upstream = closed_port()?;
    for _ in 0..MAX_AUTH_FAILURES {
        let launch = TestAgent::launch(edge.agent_config("wrong-token", "guess", upstream)).await?;
        assert_eq!(refused_with(launch), Some(ErrorCode::AuthtokenInvalid));
    }
    // Now this address is refused before its token is looked at, even the right one; the agent
    // keeps retrying with backoff instead of exiting.
    let (stop, stop_rx) = watch::channel(false);
    let (tx, mut events) = mpsc::unbounded_channel();
    let task = tokio::spawn(sluice_agent::run(
        edge.agent_config(TOKEN, "honest", upstream),
        Some(tx),
        stop_rx,
    ));
    let reason = sluice_e2e::within(Duration::from_secs(15), "a rate-limited attempt", async {
        match events.recv().await {
            Some(AgentEvent::Reconnecting { reason, .. }) => Some(reason),
            Some(AgentEvent::Online { .. }) | None => None,
        }
    })
    .await?;
    let reason = reason.unwrap_or_default();
    assert!(reason.contains("ERR_SLUICE_109"), "{reason}");
    assert!(!task.is_finished(), "the agent gave up instead of retrying");
    let _ = stop.send(true);
    let _ = task.await;
    edge.shutdown().await;
    Ok(())
}

/// A hand-made agent: the real handshake, then whatever the test does with the connection.
/// The control stream's halves come back too: dropping them would end the control stream.
async fn rogue_session(
    edge: &TestEdge,
    url: &str,
) -> anyhow::Result<(quinn::Connection, quinn::SendStream, quinn::RecvStream)> {
    match handshake(edge, sluice_proto::PROTOCOL_VERSION, url).await? {
        (conn, send, recv, HelloReply::Welcome(_)) => Ok((conn, send, recv)),
        (_, _, _, HelloReply::Rejected(r)) => anyhow::bail!("rogue agent rejected: {r:?}"),
    }
}

/// A hand-made agent's `Hello` speaking protocol `version` for `url`: the connection, the
/// control stream's halves and the edge's reply.
async fn handshake(
    edge: &TestEdge,
    version: u32,
    url: &str,
) -> anyhow::Result<(
    quinn::Connection,
    quinn::SendStream,
    quinn::RecvStream,
    HelloReply,
)> {
    use quinn::crypto::rustls::QuicClientConfig;
    use sluice_proto::codec::{read_frame, write_frame};
    use sluice_proto::control::{EndpointRequest, Hello, Secret};
    let tls = sluice_agent::tls::client_config(Some(&edge.cert), sluice_proto::ALPN)?;
    let quic = QuicClientConfig::try_from((*tls).clone())?;
    let mut client = quinn::ClientConfig::new(std::sync::Arc::new(quic));
    client.transport_config(std::sync::Arc::new(
        sluice_proto::transport::transport_config(16),
    ));
    let endpoint = sluice_proto::transport::endpoint(
        sluice_e2e::any_port(),
        quinn::EndpointConfig::default(),
        None,
    )?;
    let conn = endpoint
        .connect_with(client, edge.tunnel_addr, "127.0.0.1")?
        .await?;
    let (mut send, mut recv) = conn.open_bi().await?;
    let hello = Hello {
        version,
        authtoken: Secret(TOKEN.into()),
        agent_version: "rogue".into(),
        run_id: String::new(),
        endpoints: vec![EndpointRequest {
            url: Some(url.into()),
            upstream: "nowhere".into(),
            pooling_enabled: false,
            policies: vec![],
        }],
        moving_from: None,
    };
    write_frame(&mut send, &hello).await?;
    let reply = tokio::time::timeout(Duration::from_secs(10), read_frame(&mut recv))
        .await
        .map_err(|_| anyhow::anyhow!("no HelloReply within 10 s"))??;
    Ok((conn, send, recv, reply))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_ends_its_control_stream_ends_its_session() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (conn, mut control_send, _control_recv) = rogue_session(&edge, "quitter").await?;
    control_send.finish()?;
    // The edge closes the connection and frees the name, rather than granting the freed stream
    // slot to a stream it would never read.
    let closed = tokio::time::timeout(Duration::from_secs(10), conn.closed()).await;
    assert!(
        matches!(closed, Ok(quinn::ConnectionError::ApplicationClosed(_))),
        "session still open after its control stream ended: {closed:?}"
    );
    // Freed at once, not after the QUIC idle timeout (8 s): well inside this limit.
    sluice_e2e::client::endpoint_freed(&edge.url("quitter.localhost"), Duration::from_secs(5))
        .await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_cannot_open_streams_the_edge_never_reads() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (conn, _control_send, _control_recv) = rogue_session(&edge, "rogue").await?;
    // The control stream is the only one an agent may open: a second is never granted, so it
    // cannot park data in the edge's buffers.
    let extra = tokio::time::timeout(Duration::from_secs(2), conn.open_bi()).await;
    assert!(extra.is_err(), "the edge granted a second agent stream");
    // Requests to the rogue's name it never answers are bounded by the client, and an honest
    // agent is unaffected.
    let upstream = sluice_e2e::upstream::app("honest").await?;
    let honest = TestAgent::start(edge.agent_config(TOKEN, "honest", upstream.addr)).await?;
    let resp = sluice_e2e::client().get(honest.url()).send().await?;
    assert_eq!(resp.status(), 200);
    honest.stop().await?;
    edge.shutdown().await;
    Ok(())
}

/// The numbers written in `text`, e.g. `[1, 2]` for "agent speaks protocol 1, edge 2".
fn numbers_in(text: &str) -> Vec<u32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn other_protocol_versions_are_refused_naming_both_and_who_must_upgrade() -> anyhow::Result<()>
{
    let edge = TestEdge::start().await?;
    let ours = PROTOCOL_VERSION;
    // An older agent must upgrade itself; a newer agent needs a newer edge.
    let mut cases = vec![(ours + 1, "upgrade the edge")];
    if ours > 1 {
        cases.push((ours - 1, "upgrade the agent"));
    } else {
        println!("PROTOCOL_VERSION is 1: there is no older version to try");
    }
    let mut problems = Vec::new();
    for (version, advice) in cases {
        let url = format!("version{version}");
        let (_conn, _send, _recv, reply) = handshake(&edge, version, &url).await?;
        let HelloReply::Rejected(r) = reply else {
            problems.push(format!(
                "protocol {version}: welcomed by an edge speaking {ours}"
            ));
            continue;
        };
        println!(
            "protocol {version} refused: {} {}",
            r.code.number(),
            r.message
        );
        let numbers = numbers_in(&r.message);
        if r.code != ErrorCode::UnsupportedVersion {
            problems.push(format!(
                "protocol {version}: code {:?}, not UnsupportedVersion",
                r.code
            ));
        }
        if !(numbers.contains(&version) && numbers.contains(&ours)) {
            problems.push(format!(
                "protocol {version}: the message names not both {version} and {ours}: {:?}",
                r.message
            ));
        }
        if !r.message.to_lowercase().contains(advice) {
            problems.push(format!(
                "protocol {version}: the message does not say {advice:?}: {:?}",
                r.message
            ));
        }
        // Nothing was claimed.
        sluice_e2e::assert_endpoint_not_found(
            &sluice_e2e::client()
                .get(edge.url(&format!("{url}.localhost")))
                .send()
                .await?,
        );
    }
    edge.shutdown().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    Ok(())
}

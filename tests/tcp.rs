//! TCP endpoints end to end: `agent tcp`'s connections through the edge's ports, byte for
//! byte, half-close included; the ports' range, exhaustion and reclaiming; and what a client
//! sees when the agent or its upstream is gone.

use sluice_e2e::upstream::{echo_round_trip, tcp_echo, tcp_reply_after_eof};
use sluice_e2e::{
    closed_port, tcp_address, tcp_port_range, within, Launch, TestAgent, TestEdge, OTHER_TOKEN,
    TOKEN,
};
use sluice_edge::EventDestination;
use sluice_proto::control::{PolicyKind, PolicySource};
use sluice_proto::error_code::ErrorCode;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// An edge with `len` TCP ports.
async fn tcp_edge(len: u16) -> anyhow::Result<TestEdge> {
    let range = tcp_port_range(len)?;
    TestEdge::start_with(|c| c.tcp_ports = Some(range)).await
}

#[tokio::test]
async fn sixty_four_mib_echo_arrives_whole_and_half_close_ends_it() -> anyhow::Result<()> {
    let edge = tcp_edge(20).await?;
    let echo = tcp_echo().await?;
    let agent = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    assert!(
        agent.url().starts_with("tcp://localhost:"),
        "{}",
        agent.url()
    );
    const LEN: u64 = 64 * 1024 * 1024;
    // Half-close: the echo server sees the end, finishes echoing and closes its side.
    let echoed =
        echo_round_trip(tcp_address(agent.url())?, LEN, 7, Duration::from_secs(60)).await?;
    assert_eq!((echoed.received_len, &echoed.received), (LEN, &echoed.sent));
    Ok(())
}

#[tokio::test]
async fn a_client_that_shuts_down_its_write_side_still_gets_the_reply() -> anyhow::Result<()> {
    let edge = tcp_edge(20).await?;
    let server = tcp_reply_after_eof().await?;
    let agent = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", server.addr)).await?;
    let mut client = TcpStream::connect(tcp_address(agent.url())?).await?;
    client.write_all(b"hello, server").await?;
    client.shutdown().await?;
    let mut reply = String::new();
    within(
        Duration::from_secs(10),
        "the reply",
        client.read_to_string(&mut reply),
    )
    .await??;
    assert_eq!(reply, "got 13 bytes");
    Ok(())
}

#[tokio::test]
async fn ports_stay_in_range_run_out_and_come_back_to_the_agent_that_held_them(
) -> anyhow::Result<()> {
    let range = tcp_port_range(2)?;
    let edge = TestEdge::start_with(|c| c.tcp_ports = Some(range)).await?;
    let echo = tcp_echo().await?;
    let first = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    let second = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    let ports: Vec<u16> = [first.url(), second.url()]
        .iter()
        .map(|u| tcp_address(u).map(|a| a.port()))
        .collect::<anyhow::Result<_>>()?;
    assert_ne!(ports[0], ports[1]);
    for port in &ports {
        assert!(range.contains(*port), "{port} outside {range}");
    }
    // The range is used up.
    let third = TestAgent::launch(edge.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    let Launch::Exited(Err(e)) = third else {
        anyhow::bail!("a third endpoint came online on a two-port range");
    };
    assert!(
        e.to_string()
            .contains(&ErrorCode::TcpPortsExhausted.to_string()),
        "{e}"
    );
    // Another token may not take a held port; a port outside the range is refused.
    for (url, code) in [
        (first.url().to_string(), ErrorCode::HostnameTaken),
        (
            format!("tcp://localhost:{}", closed_port()?.port()),
            ErrorCode::TcpPortNotAllowed,
        ),
    ] {
        let other = TestAgent::launch(edge.tcp_agent_config(OTHER_TOKEN, &url, echo.addr)).await?;
        let Launch::Exited(Err(e)) = other else {
            anyhow::bail!("{url} came online for another token");
        };
        assert!(e.to_string().contains(&code.to_string()), "{url}: {e}");
    }
    // The agent leaves; its port is free at once, and asking for it by URL gets it back.
    let url = first.url().to_string();
    first.stop().await?;
    let back = TestAgent::start(edge.tcp_agent_config(TOKEN, &url, echo.addr)).await?;
    assert_eq!(back.url(), url);
    let mut client = TcpStream::connect(tcp_address(&url)?).await?;
    client.write_all(b"ping").await?;
    let mut buf = [0u8; 4];
    within(
        Duration::from_secs(5),
        "the echo",
        client.read_exact(&mut buf),
    )
    .await??;
    assert_eq!(&buf, b"ping");
    Ok(())
}

#[tokio::test]
async fn an_edge_without_tcp_ports_says_how_to_enable_them() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let echo = tcp_echo().await?;
    let launched = TestAgent::launch(edge.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    let Launch::Exited(Err(e)) = launched else {
        anyhow::bail!("a tcp:// endpoint came online on an edge without TCP ports");
    };
    let shown = e.to_string();
    assert!(
        shown.contains(&ErrorCode::TcpNotEnabled.to_string()),
        "{shown}"
    );
    assert!(shown.contains("tcp_ports"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn an_unreachable_upstream_closes_the_client_at_once() -> anyhow::Result<()> {
    let edge = tcp_edge(20).await?;
    let agent = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", closed_port()?)).await?;
    let mut client = TcpStream::connect(tcp_address(agent.url())?).await?;
    let mut buf = [0u8; 16];
    let n = within(Duration::from_secs(5), "the close", client.read(&mut buf)).await?;
    assert!(matches!(n, Ok(0) | Err(_)), "{n:?}");
    Ok(())
}

#[tokio::test]
async fn a_stopped_agent_frees_its_port_within_a_second() -> anyhow::Result<()> {
    let edge = tcp_edge(20).await?;
    let echo = tcp_echo().await?;
    let agent = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", echo.addr)).await?;
    let addr = tcp_address(agent.url())?;
    agent.stop().await?;
    sluice_e2e::eventually(Duration::from_secs(1), "the port to close", || async {
        TcpStream::connect(addr).await.err().map(|_| ())
    })
    .await?;
    Ok(())
}

/// Sends `message` to `addr`, shuts down the write side, and reads the answer to its end.
async fn send_and_read(addr: std::net::SocketAddr, message: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut client = TcpStream::connect(addr).await?;
    client.write_all(message).await?;
    client.shutdown().await?;
    let mut answer = Vec::new();
    within(
        Duration::from_secs(5),
        "the answer",
        client.read_to_end(&mut answer),
    )
    .await??;
    Ok(answer)
}

/// A policy layer from YAML text.
fn policy(text: &str) -> PolicySource {
    PolicySource {
        origin: "tcp-policy.yml".into(),
        kind: PolicyKind::Document,
        text: text.into(),
    }
}

#[tokio::test]
async fn restrict_ips_on_connect_closes_with_no_bytes_and_the_event_says_so() -> anyhow::Result<()>
{
    let dir = tempfile::tempdir()?;
    let events = dir.path().join("events.jsonl");
    let range = tcp_port_range(20)?;
    let file = EventDestination::events_file(events.to_str().expect("utf8"));
    let edge = TestEdge::start_with(|c| {
        c.tcp_ports = Some(range);
        c.event_destinations = vec![file];
    })
    .await?;
    let echo = tcp_echo().await?;
    let mut config = edge.tcp_agent_config(TOKEN, "tcp://", echo.addr);
    config.endpoints[0].policies = vec![policy(
        "on_tcp_connect:\n  - actions:\n      - type: restrict-ips\n        config: {allow: [192.0.2.0/24]}\n",
    )];
    let refused = TestAgent::start(config).await?;
    let mut allowed_config = edge.tcp_agent_config(TOKEN, "tcp://", echo.addr);
    allowed_config.endpoints[0].policies = vec![policy(
        "on_tcp_connect:\n  - actions:\n      - type: restrict-ips\n        config: {allow: [127.0.0.0/8]}\n",
    )];
    let allowed = TestAgent::start(allowed_config).await?;

    let mut client = TcpStream::connect(tcp_address(refused.url())?).await?;
    let _ = client.write_all(b"let me in").await;
    let mut got = Vec::new();
    let read = within(
        Duration::from_secs(5),
        "the close",
        client.read_to_end(&mut got),
    )
    .await?;
    assert!(got.is_empty(), "{read:?} {got:?}");

    assert_eq!(
        send_and_read(tcp_address(allowed.url())?, b"ping").await?,
        b"ping"
    );

    let port = |url: &str| tcp_address(url).map(|a| a.port());
    let (refused_port, allowed_port) = (port(refused.url())?, port(allowed.url())?);
    let lines = sluice_e2e::eventually(Duration::from_secs(5), "both events", || async {
        let text = std::fs::read_to_string(&events).unwrap_or_default();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|e: &serde_json::Value| e["event_type"] == "tcp_connection_closed.v0")
            .collect();
        (lines.len() >= 2).then_some(lines)
    })
    .await?;
    let by_port = |p: u16| {
        lines
            .iter()
            .find(|e| e["object"]["conn"]["server_port"] == p)
            .unwrap_or_else(|| panic!("no event for port {p}: {lines:#?}"))
    };
    let blocked = &by_port(refused_port)["object"];
    assert_eq!(blocked["ip_policy"]["decision"], "block", "{blocked}");
    assert_eq!(blocked["conn"]["bytes_out"], 0, "{blocked}");
    assert_eq!(blocked["sluice"]["outcome"], "policy_closed", "{blocked}");
    let passed = &by_port(allowed_port)["object"];
    assert_eq!(passed["ip_policy"]["decision"], "allow", "{passed}");
    assert_eq!(passed["conn"]["bytes_in"], 4, "{passed}");
    assert_eq!(passed["conn"]["bytes_out"], 4, "{passed}");
    assert_eq!(passed["conn"]["client_ip"], "127.0.0.1", "{passed}");
    assert_eq!(
        passed["sluice"]["transport"],
        sluice_e2e::expected_transport(),
        "{passed}"
    );
    Ok(())
}

#[tokio::test]
async fn an_http_phase_on_a_tcp_endpoint_is_refused_before_it_goes_online() -> anyhow::Result<()> {
    let edge = tcp_edge(20).await?;
    let echo = tcp_echo().await?;
    let mut config = edge.tcp_agent_config(TOKEN, "tcp://", echo.addr);
    config.endpoints[0].policies = vec![policy("on_http_request:\n  - actions: [{type: deny}]\n")];
    let Launch::Exited(Err(e)) = TestAgent::launch(config).await? else {
        anyhow::bail!("a tcp:// endpoint came online with an on_http_request rule");
    };
    let shown = e.to_string();
    assert!(
        shown.contains(&ErrorCode::PolicyInvalid.to_string()) && shown.contains("on_http_request"),
        "{shown}"
    );
    Ok(())
}

#[tokio::test]
async fn on_tcp_connect_of_an_http_endpoint_runs_before_each_request() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let app = sluice_e2e::upstream::app("app").await?;
    // set-vars on connect reaches on_http_request; a deny on connect closes without an answer.
    let mut open = edge.agent_config(TOKEN, "http://open", app.addr);
    open.endpoints[0].policies = vec![policy(concat!(
        "on_tcp_connect:\n",
        "  - actions: [{type: set-vars, config: {vars: [{from_connect: \"${conn.client_ip}\"}]}}]\n",
        "on_http_request:\n",
        "  - actions: [{type: custom-response, config: {status_code: 200, body: \"seen ${vars.from_connect}\"}}]\n",
    ))];
    let _open = TestAgent::start(open).await?;
    let mut shut = edge.agent_config(TOKEN, "http://shut", app.addr);
    shut.endpoints[0].policies = vec![policy(
        "on_tcp_connect:\n  - expressions: [\"conn.client_ip == '127.0.0.1'\"]\n    actions: [{type: deny}]\n",
    )];
    let _shut = TestAgent::start(shut).await?;

    let client = sluice_e2e::client();
    let seen = client.get(edge.url("open.localhost")).send().await?;
    assert_eq!(seen.status(), 200);
    assert_eq!(seen.text().await?, "seen 127.0.0.1");
    let refused = client.get(edge.url("shut.localhost")).send().await;
    assert!(
        refused.is_err(),
        "a denied connection got an answer: {refused:?}"
    );
    Ok(())
}

#[tokio::test]
async fn forward_internal_on_connect_hands_the_connection_to_an_internal_tcp_endpoint(
) -> anyhow::Result<()> {
    let edge = tcp_edge(20).await?;
    let echo = tcp_echo().await?;
    let _internal =
        TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://echo.internal:7000", echo.addr))
            .await?;
    // The public endpoint's own upstream refuses connections: only the forward can echo.
    let mut front = edge.tcp_agent_config(TOKEN, "tcp://", closed_port()?);
    front.endpoints[0].policies = vec![policy(
        "on_tcp_connect:\n  - actions: [{type: forward-internal, config: {url: \"tcp://echo.internal:7000\"}}]\n",
    )];
    let front = TestAgent::start(front).await?;
    assert_eq!(
        send_and_read(tcp_address(front.url())?, b"through the internal endpoint").await?,
        b"through the internal endpoint"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_an_edge_restart_the_agent_gets_its_port_back() -> anyhow::Result<()> {
    use sluice_e2e::process::{base_command, EdgeProcess};
    use sluice_e2e::AgentProcess;
    let dir = tempfile::tempdir()?;
    let range = tcp_port_range(20)?.to_string();
    let extra = ["--tcp-ports", range.as_str()];
    let (http, tunnel) = (sluice_e2e::free_tcp_port()?, sluice_e2e::free_udp_port()?);
    let edge = EdgeProcess::spawn_with_args(dir.path(), http, tunnel, TOKEN, &extra).await?;
    let echo = tcp_echo().await?;
    let mut cmd = base_command("agent")?;
    cmd.args(["tcp", &echo.addr.to_string()])
        .args(["--edge", &tunnel.to_string(), "--authtoken", TOKEN])
        .arg("--edge-ca")
        .arg(&edge.cert);
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let addr = tcp_address(&agent.url)?;
    let status = edge.terminate(Duration::from_secs(15)).await?;
    assert!(status.success(), "edge exit {status}");
    let edge = within(Duration::from_secs(10), "the edge to start again", async {
        loop {
            match EdgeProcess::spawn_with_args(dir.path(), http, tunnel, TOKEN, &extra).await {
                Ok(edge) => return edge,
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    })
    .await?;
    // The agent reconnects on its own and asks for the port it had.
    let echoed =
        sluice_e2e::eventually(Duration::from_secs(20), "the same port to echo", || async {
            let mut client = TcpStream::connect(addr).await.ok()?;
            client.write_all(b"again").await.ok()?;
            client.shutdown().await.ok()?;
            let mut got = Vec::new();
            tokio::time::timeout(Duration::from_secs(2), client.read_to_end(&mut got))
                .await
                .ok()?
                .ok()?;
            (got == b"again").then_some(got)
        })
        .await?;
    assert_eq!(echoed, b"again");
    agent.terminate(Duration::from_secs(10)).await?;
    edge.terminate(Duration::from_secs(15)).await?;
    Ok(())
}

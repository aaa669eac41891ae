//! Sessions coming and going: bad tokens, hostname ownership, agent and edge restarts, and
//! graceful shutdown.

use sluice_agent::AgentError;
use sluice_e2e::process::agent_command;
use sluice_e2e::upstream::{self, Seen};
use sluice_e2e::{
    assert_endpoint_not_found, client, eventually, probe, AgentProcess, EdgeProcess, Launch,
    TestAgent, TestEdge, OTHER_TOKEN, TOKEN,
};
use sluice_proto::error_code::ErrorCode;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_token_makes_the_agent_exit_with_a_clear_message() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("intruder").await?;
    let cmd = agent_command(
        edge.tunnel_addr,
        &edge.cert,
        "not-a-valid-token",
        "intruder",
        up.addr,
    )?;
    let (status, stdout, stderr) = AgentProcess::run_to_exit(cmd, Duration::from_secs(20)).await?;
    assert!(
        !status.success(),
        "agent exited {status}; stderr:\n{stderr}"
    );
    assert!(!stdout.contains("Forwarding"), "stdout:\n{stdout}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error:"), "stderr:\n{stderr}");
    assert!(last.contains("ERR_SLUICE_105"), "stderr:\n{stderr}");
    assert!(
        last.to_lowercase().contains("authtoken"),
        "stderr:\n{stderr}"
    );
    assert!(
        !stderr.contains("not-a-valid-token"),
        "the token leaked into stderr:\n{stderr}"
    );
    let resp = client().get(edge.url("intruder.localhost")).send().await?;
    assert_endpoint_not_found(&resp);
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostname_taken_by_another_token_is_refused_but_the_owner_reclaims() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let (up_a, up_b, up_c) = (
        upstream::app("first").await?,
        upstream::app("squatter").await?,
        upstream::app("reclaimer").await?,
    );
    let url = edge.url("shared.localhost");
    let first = TestAgent::start(edge.agent_config(TOKEN, "shared", up_a.addr)).await?;
    assert_eq!(probe(&url).await?, (200, Some("first".into())));

    match TestAgent::launch(edge.agent_config(OTHER_TOKEN, "shared", up_b.addr)).await? {
        Launch::Exited(Err(AgentError::Rejected(r))) => {
            assert_eq!(r.code, ErrorCode::HostnameTaken);
            assert_eq!(r.code.number(), 334);
        }
        Launch::Exited(other) => panic!("expected a 334 rejection, got {other:?}"),
        Launch::Online(_) => panic!("another token took a live hostname"),
    }
    assert_eq!(probe(&url).await?, (200, Some("first".into())));

    // The same token takes the hostname over; the old session is told it was replaced.
    let second = TestAgent::start(edge.agent_config(TOKEN, "shared", up_c.addr)).await?;
    assert_eq!(probe(&url).await?, (200, Some("reclaimer".into())));
    match first.join(Duration::from_secs(10)).await? {
        Err(AgentError::Replaced) => {}
        other => panic!("first agent should end as Replaced, got {other:?}"),
    }
    assert_eq!(probe(&url).await?, (200, Some("reclaimer".into())));
    second.stop().await?;
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_agent_restarted_serves_the_same_url_again() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("phoenix").await?;
    let dir = tempfile::tempdir()?;
    let log = dir.path().join("agent.log");
    let cmd = || agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "phoenix", up.addr);
    let agent = AgentProcess::spawn(cmd()?, &log).await?;
    let url = agent.url.clone();
    assert_eq!(url, edge.url("phoenix.localhost"));
    assert_eq!(probe(&url).await?, (200, Some("phoenix".into())));
    agent.kill().await?;

    let started = Instant::now();
    let agent = AgentProcess::spawn(cmd()?, &log).await?;
    assert_eq!(agent.url, url);
    // The dead session still held the name; the same token takes it over at once.
    assert_eq!(probe(&url).await?, (200, Some("phoenix".into())));
    println!("restarted agent serving after {:.2?}", started.elapsed());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    let status = agent.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "{status}");
    edge.shutdown().await;
    Ok(())
}

/// An edge binary on fixed ports (so a new process can take its place) and an agent binary
/// forwarding `name` to an app of that name.
struct Restartable {
    dir: tempfile::TempDir,
    edge: EdgeProcess,
    agent: AgentProcess,
    url: String,
    _up: upstream::Upstream,
}

impl Restartable {
    async fn start(name: &str) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let up = upstream::app(name).await?;
        let edge = EdgeProcess::spawn_on_fixed_ports(dir.path(), TOKEN).await?;
        let cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, name, up.addr)?;
        let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
        let url = agent.url.clone();
        assert_eq!(probe(&url).await?, (200, Some(name.into())));
        Ok(Self {
            dir,
            edge,
            agent,
            url,
            _up: up,
        })
    }
}

/// A new edge process on the old one's ports (`http`, `tunnel`) and state dir; the old one must
/// be gone.
async fn respawn_edge(
    dir: &std::path::Path,
    old: (SocketAddr, SocketAddr),
) -> anyhow::Result<EdgeProcess> {
    let edge = EdgeProcess::respawn(dir, old.0, old.1, TOKEN).await?;
    assert_eq!((edge.http_addr, edge.tunnel_addr), old);
    Ok(edge)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarted_edge_gets_its_agent_back_on_its_own() -> anyhow::Result<()> {
    let t = Restartable::start("loyal").await?;
    let ports = (t.edge.http_addr, t.edge.tunnel_addr);
    let status = t.edge.terminate(Duration::from_secs(15)).await?;
    assert!(status.success(), "edge exit {status}");
    let down = Instant::now();
    let edge = respawn_edge(t.dir.path(), ports).await?;
    let up_again = Instant::now();
    back_online(&t.url, "loyal", &edge, &t.agent).await?;
    println!(
        "edge restart: URL answered again {:.2?} after the old edge exited, {:.2?} after the new one was listening",
        down.elapsed(),
        up_again.elapsed()
    );
    let status = t.agent.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "agent exit {status}");
    edge.terminate(Duration::from_secs(15)).await?;
    Ok(())
}

/// What one request during an edge restart ended in.
#[derive(Debug, PartialEq)]
enum Outcome {
    /// The app answered.
    Served,
    /// A 5xx from the edge or a failed connection: an error the client can see.
    CleanError,
    /// Anything else: a wrong answer, or no end within 30 s.
    Bad(String),
}

/// One request against `url` during the restart, bounded by 30 s.
async fn restart_probe(url: &str, name: &str) -> Outcome {
    let exchange = async {
        let resp = client().get(url).send().await?;
        let (status, seen) = (resp.status(), resp.headers().get("x-upstream").cloned());
        resp.bytes().await?;
        Ok::<_, reqwest::Error>((status, seen))
    };
    match tokio::time::timeout(Duration::from_secs(30), exchange).await {
        Err(_) => Outcome::Bad("no answer within 30 s".into()),
        Ok(Err(_)) => Outcome::CleanError,
        Ok(Ok((status, seen))) if status == 200 && seen.as_ref().is_some_and(|s| s == name) => {
            Outcome::Served
        }
        Ok(Ok((status, _))) if status.is_server_error() || status == 404 => Outcome::CleanError,
        Ok(Ok((status, seen))) => Outcome::Bad(format!("{status} from {seen:?}")),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn edge_restarted_under_load_answers_every_request_or_fails_it_cleanly() -> anyhow::Result<()>
{
    let t = Restartable::start("busy").await?;
    let url = t.url.clone();
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    // Eight clients in closed loops, each bounded to 2,000 requests.
    let loops: Vec<_> = (0..8)
        .map(|_| {
            let (url, stop) = (url.clone(), stop.clone());
            tokio::spawn(async move {
                let mut outcomes = Vec::new();
                while !*stop.borrow() && outcomes.len() < 2_000 {
                    outcomes.push(restart_probe(&url, "busy").await);
                }
                outcomes
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ports = (t.edge.http_addr, t.edge.tunnel_addr);
    let status = t.edge.terminate(Duration::from_secs(15)).await?;
    assert!(status.success(), "edge exit {status}");
    let edge = respawn_edge(t.dir.path(), ports).await?;
    back_online(&url, "busy", &edge, &t.agent).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop_tx.send(true)?;
    let mut all = Vec::new();
    for l in loops {
        let outcomes = l.await?;
        // Every client is served again once the agent is back.
        assert_eq!(outcomes.last(), Some(&Outcome::Served), "{outcomes:?}");
        all.extend(outcomes);
    }
    let bad: Vec<_> = all
        .iter()
        .filter(|o| matches!(o, Outcome::Bad(_)))
        .collect();
    let served = all.iter().filter(|o| **o == Outcome::Served).count();
    println!(
        "{} requests during the restart: {served} served, {} clean errors",
        all.len(),
        all.len() - served - bad.len()
    );
    assert!(bad.is_empty(), "{bad:?}");
    t.agent.terminate(Duration::from_secs(10)).await?;
    edge.terminate(Duration::from_secs(15)).await?;
    Ok(())
}

/// Waits (up to 30 s) until `url` is served by upstream `name` again; on timeout the error
/// carries both processes' output.
async fn back_online(
    url: &str,
    name: &str,
    edge: &EdgeProcess,
    agent: &AgentProcess,
) -> anyhow::Result<()> {
    eventually(
        Duration::from_secs(30),
        "agent back on the new edge",
        || async {
            match probe(url).await {
                Ok((200, Some(seen))) if seen == name => Some(()),
                _ => None,
            }
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}\n{}", edge.output(), agent.output()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashed_edge_resets_its_agents_connection_when_it_comes_back() -> anyhow::Result<()> {
    let t = Restartable::start("patient").await?;
    let ports = (t.edge.http_addr, t.edge.tunnel_addr);
    // No close frame: the old connection dies with the process. The new edge reads the same
    // reset key from the state dir and answers the agent's next packet with a stateless reset,
    // instead of leaving the agent to its 8 s idle timeout.
    t.edge.kill().await?;
    let down = Instant::now();
    let edge = respawn_edge(t.dir.path(), ports).await?;
    back_online(&t.url, "patient", &edge, &t.agent).await?;
    println!(
        "edge crash: URL answered again {:.2?} after SIGKILL",
        down.elapsed()
    );
    let log = t.agent.output();
    // Over TCP the dead process's socket is reset by the kernel; over QUIC the new edge sends
    // the stateless reset. Neither waits for the idle timeout.
    let reset = match sluice_e2e::test_transport() {
        sluice_agent::TransportChoice::Tcp => true,
        _ => log.contains("reset by peer"),
    };
    assert!(
        reset && !log.contains("timed out"),
        "the agent should have been reset, not timed out:\n{log}"
    );
    let status = t.agent.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "agent exit {status}");
    edge.terminate(Duration::from_secs(15)).await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_on_the_agent_frees_its_hostname_at_once() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("polite").await?;
    let dir = tempfile::tempdir()?;
    let cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, "polite", up.addr)?;
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let url = agent.url.clone();
    assert_eq!(probe(&url).await?, (200, Some("polite".into())));
    let status = agent.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "agent exit {status}");
    let exited = Instant::now();
    // Far below the 8 s QUIC idle timeout: the close frame released the route.
    eventually(
        Duration::from_millis(1000),
        "404 after agent SIGTERM",
        || async { matches!(probe(&url).await, Ok((404, None))).then_some(()) },
    )
    .await?;
    println!(
        "hostname freed {:.0?} after the agent exited",
        exited.elapsed()
    );
    let resp = client().get(&url).send().await?;
    assert_endpoint_not_found(&resp);
    edge.shutdown().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_process_agent_stop_frees_its_hostname_at_once() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let up = upstream::app("brief").await?;
    let agent = TestAgent::start(edge.agent_config(TOKEN, "brief", up.addr)).await?;
    let url = agent.url().to_string();
    let resp = client().get(&url).send().await?;
    assert_eq!(Seen::parse(&resp.text().await?)?.upstream, "brief");
    agent.stop().await?;
    let stopped = Instant::now();
    eventually(
        Duration::from_millis(1000),
        "404 after agent stop",
        || async { matches!(probe(&url).await, Ok((404, None))).then_some(()) },
    )
    .await?;
    println!("hostname freed {:.0?} after stop", stopped.elapsed());
    edge.shutdown().await;
    Ok(())
}

#[tokio::test]
async fn version_names_the_crate_version_and_the_checkout() -> anyhow::Result<()> {
    let head = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()?;
    let head = String::from_utf8(head.stdout)?.trim().to_string();
    for name in ["edge", "agent"] {
        let out = sluice_e2e::process::base_command(name)?
            .arg("--version")
            .output()
            .await?;
        let shown = String::from_utf8(out.stdout)?;
        let version = env!("CARGO_PKG_VERSION");
        // Outside a git checkout (a source tarball) the version stands alone; inside one, the
        // description names the commit built (after a tag, when there is one).
        let expected = match head.as_str() {
            "" => format!("{name} {version}\n"),
            _ => format!("{name} {version} ("),
        };
        assert!(
            out.status.success() && shown.starts_with(&expected) && shown.contains(&head),
            "{shown} (HEAD {head})"
        );
    }
    Ok(())
}

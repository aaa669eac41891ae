//! Process faults: the agent binary SIGKILLed in the middle of a download and of an upload,
//! and upstreams that reset or stall in the middle of a body. The client gets an error (never
//! a silently short body, never a hang), and open descriptors return to their baseline.

use sluice_e2e::process::{agent_command, open_fds};
use sluice_e2e::upstream::{self, Upstream};
use sluice_e2e::{any_port, client, data, eventually, within, AgentProcess, EdgeProcess, TOKEN};
use sluice_proto::transport::IDLE_TIMEOUT;
use std::time::Duration;

const GIB: u64 = 1 << 30;
/// The client must hear about the dead agent within the idle timeout plus scheduling slack.
const PROMPTLY: Duration = Duration::from_secs(IDLE_TIMEOUT.as_secs() + 10);

struct Running {
    edge: EdgeProcess,
    agent: AgentProcess,
    baseline_fds: usize,
    _up: Upstream,
    _dir: tempfile::TempDir,
}

async fn running(name: &str) -> anyhow::Result<Running> {
    running_with(name, upstream::app(name).await?, &[]).await
}

/// Edge and agent binaries forwarding `name` to `up`, the agent started with `agent_args` too.
async fn running_with(name: &str, up: Upstream, agent_args: &[&str]) -> anyhow::Result<Running> {
    let dir = tempfile::tempdir()?;
    let edge = EdgeProcess::spawn(dir.path(), any_port(), any_port(), TOKEN).await?;
    let mut cmd = agent_command(edge.tunnel_addr, &edge.cert, TOKEN, name, up.addr)?;
    cmd.args(agent_args);
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    // One request first, so lazily created state is part of the baseline. (It may fail: some
    // upstreams here always misbehave.)
    let warm_up = async { client().get(&agent.url).send().await?.bytes().await };
    let _ = tokio::time::timeout(Duration::from_secs(10), warm_up).await;
    let baseline_fds = open_fds(edge.pid()?)?;
    Ok(Running {
        edge,
        agent,
        baseline_fds,
        _up: up,
        _dir: dir,
    })
}

/// Waits until `edge` holds no more descriptors than `baseline`.
async fn fds_back_to(edge: &EdgeProcess, baseline: usize) -> anyhow::Result<()> {
    let pid = edge.pid()?;
    eventually(
        Duration::from_secs(20),
        "edge fds back to baseline",
        || async move { (open_fds(pid).ok()? <= baseline).then_some(()) },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_download_gives_the_client_an_error() -> anyhow::Result<()> {
    let t = running("killdown").await?;
    let mut resp = client()
        .get(format!("{}/bytes/{GIB}/4", t.agent.url))
        .send()
        .await?;
    assert_eq!(resp.status(), 200);
    // Part of the body has arrived when the agent dies.
    let mut got = 0u64;
    while got < (8 << 20) {
        got += resp.chunk().await?.map_or(0, |c| c.len() as u64);
    }
    t.agent.kill().await?;
    let rest = within(
        PROMPTLY,
        "the cut download to fail",
        data::read_digest(resp),
    )
    .await?;
    assert!(
        rest.is_err(),
        "the body completed although the agent died: {rest:?}"
    );
    fds_back_to(&t.edge, t.baseline_fds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_killed_mid_upload_gives_the_client_an_error() -> anyhow::Result<()> {
    let t = running("killup").await?;
    let url = format!("{}/sha256", t.agent.url);
    let upload = tokio::spawn(async move {
        let body = reqwest::Body::wrap_stream(data::stream(GIB, 9));
        let resp = client().post(url).body(body).send().await?;
        Ok::<_, anyhow::Error>((resp.status().as_u16(), resp.text().await?))
    });
    // Let a good part of the upload flow before the agent dies.
    tokio::time::sleep(Duration::from_millis(700)).await;
    t.agent.kill().await?;
    // Either the edge answered for the dead agent, or the connection was closed: both are
    // errors the client sees. A success would mean a lost body went unnoticed.
    if let Ok((status, body)) = within(PROMPTLY, "the cut upload to end", upload).await?? {
        assert!(status >= 500, "upload got {status}: {body}");
    }
    fds_back_to(&t.edge, t.baseline_fds).await
}

/// `GET url` must end in an error the client can see: a failed connection, a 5xx, or a body
/// that fails before its promised end. Never a hang, never a short body passed off as whole.
async fn assert_cut_off(url: &str) -> anyhow::Result<()> {
    let outcome = within(PROMPTLY, "the broken response to end", async {
        let resp = client().get(url).send().await?;
        let status = resp.status();
        Ok::<_, reqwest::Error>((status, resp.bytes().await))
    })
    .await?;
    match outcome {
        Err(_) => Ok(()),
        Ok((status, _)) if status.is_server_error() => Ok(()),
        Ok((status, body)) => {
            let len = body.as_ref().map(|b| b.len());
            anyhow::ensure!(
                body.is_err(),
                "{status} with a {len:?}-byte body passed off as complete"
            );
            Ok(())
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_reset_mid_body_gives_the_client_an_error() -> anyhow::Result<()> {
    let up = upstream::reset_mid_body(4 << 20).await?;
    let t = running_with("resetter", up, &[]).await?;
    for _ in 0..3 {
        assert_cut_off(&t.agent.url).await?;
    }
    fds_back_to(&t.edge, t.baseline_fds).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_stalled_mid_body_gives_the_client_an_error_after_the_upstream_timeout(
) -> anyhow::Result<()> {
    // The stall outlasts the test; the agent's upstream timeout must end it.
    let up = upstream::stall_mid_body(4 << 20, Duration::from_secs(600)).await?;
    let t = running_with("staller", up, &["--upstream-timeout", "2s"]).await?;
    let agent_fds = open_fds(t.agent.pid()?)?;
    assert_cut_off(&t.agent.url).await?;
    fds_back_to(&t.edge, t.baseline_fds).await?;
    let pid = t.agent.pid()?;
    eventually(
        Duration::from_secs(20),
        "agent fds back to baseline",
        || async move { (open_fds(pid).ok()? <= agent_fds).then_some(()) },
    )
    .await
}

//! gRPC between two real C-core peers (Python grpcio, `scripts/setup.d/60-grpcio`): the server
//! `tests/grpc/server.py` behind an agent with `--upstream-protocol http2`, the client
//! `tests/grpc/client.py` in front of the edge, once over h2c (plain listener, HTTP/2 with prior
//! knowledge) and once over h2 on the HTTPS listener (ALPN). Every call shape, text and binary
//! metadata both ways, a status with its message in the trailers, a deadline, and a client's
//! cancel reaching the server.

use serde_json::Value;
use sluice_agent::UpstreamProtocol;
use sluice_e2e::tls::TestCa;
use sluice_e2e::{within, TestAgent, TestEdge, TOKEN};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

const INSTALLER: &str = "scripts/setup.d/60-grpcio";

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/grpc")
        .join(name)
}

/// `tests/grpc/server.py` on a loopback port; killed when dropped (and it exits by itself when
/// its standard input, held here, closes).
struct GrpcServer {
    _child: Child,
    addr: SocketAddr,
}

async fn grpc_server() -> anyhow::Result<GrpcServer> {
    let mut child = Command::new("python3")
        .arg(script("server.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut lines = BufReader::new(stdout).lines();
    let port = within(
        Duration::from_secs(20),
        "server.py to print its port",
        async {
            while let Some(line) = lines.next_line().await? {
                if let Some(port) = line.strip_prefix("PORT ") {
                    return Ok(port.trim().parse::<u16>()?);
                }
            }
            anyhow::bail!("server.py exited before printing its port")
        },
    )
    .await??;
    Ok(GrpcServer {
        _child: child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    })
}

/// Runs `tests/grpc/client.py` (at most 90 s) and parses its JSON results.
async fn run_client(
    target: SocketAddr,
    authority: &str,
    ca: Option<&Path>,
) -> anyhow::Result<Value> {
    let mut cmd = Command::new("python3");
    cmd.arg(script("client.py"))
        .args(["--target", &target.to_string(), "--authority", authority])
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(ca) = ca {
        cmd.arg("--ca").arg(ca);
    }
    let out = within(Duration::from_secs(90), "client.py", cmd.output()).await??;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).map_err(|e| {
        anyhow::anyhow!(
            "client.py printed no JSON ({e}), exit {}:\n{stdout}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every case's expectation; one line per broken case (empty: all passed).
fn broken_cases(r: &Value) -> Vec<String> {
    let mut broken = Vec::new();
    let mut expect = |case: &str, ok: bool, want: &str| {
        if !ok {
            broken.push(format!("{case}: want {want}, got {}", r[case]));
        }
    };
    let code = |case: &str| r[case]["code"].as_str().unwrap_or("<none>").to_string();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let has_pairs = |have: &Value, want: &Value| {
        let have = have.as_array().cloned().unwrap_or_default();
        want.as_array()
            .is_some_and(|w| !w.is_empty() && w.iter().all(|p| have.contains(p)))
    };
    let secs = |v: &Value| v.as_f64().unwrap_or(f64::INFINITY);

    expect("connect", r.get("connect").is_none(), "a ready channel");
    expect(
        "unary",
        code("unary") == "OK" && r["unary"]["reply"] == "hello sluice",
        "OK with reply `hello sluice`",
    );
    expect(
        "unary_large",
        code("unary_large") == "OK" && r["unary_large"]["identical"] == true,
        "OK with the 1 MiB message echoed intact",
    );
    let in_order: Vec<String> = (0..100).map(|i| format!("msg-{i}")).collect();
    expect(
        "server_streaming",
        code("server_streaming") == "OK" && strings(&r["server_streaming"]["replies"]) == in_order,
        "OK with msg-0 .. msg-99 in order",
    );
    let joined: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    expect(
        "client_streaming",
        code("client_streaming") == "OK"
            && r["client_streaming"]["reply"] == format!("50:{}", joined.join(",")),
        "OK with the 50 messages counted and joined in order",
    );
    let echoes: Vec<String> = (0..20).map(|i| format!("echo:ping-{i}")).collect();
    expect(
        "bidi",
        code("bidi") == "OK" && strings(&r["bidi"]["replies"]) == echoes,
        "OK with 20 ping-pong echoes",
    );
    let md = &r["metadata"];
    expect(
        "metadata",
        code("metadata") == "OK"
            && has_pairs(&md["initial_metadata"], &md["sent"])
            && has_pairs(&md["trailing_metadata"], &md["sent"]),
        "OK with x-echo-text and x-echo-bin (binary) back in initial and trailing metadata",
    );
    let text_md = serde_json::json!([["x-echo-text", "hello sluice, text metadata"]]);
    expect(
        "error_status",
        code("error_status") == "NOT_FOUND"
            && r["error_status"]["details"] == "no such greeting: café"
            && has_pairs(&r["error_status"]["trailing_metadata"], &text_md),
        "NOT_FOUND with its (non-ASCII) message and the trailing metadata",
    );
    let dl = &r["deadline"];
    expect(
        "deadline",
        code("deadline") == "DEADLINE_EXCEEDED"
            && secs(&dl["elapsed"]) < 3.0
            && secs(&dl["server"]["time_remaining"]) <= 1.5
            && dl["server"]["state"] == "cancelled",
        "DEADLINE_EXCEEDED within 3 s of a 1 s deadline, the server having seen the deadline \
         (grpc-timeout) and ended the call",
    );
    let cancel = &r["cancel"];
    expect(
        "cancel",
        code("cancel") == "CANCELLED"
            && cancel["server"]["state"] == "cancelled"
            && secs(&cancel["server_saw_it_after"]) < 3.0,
        "CANCELLED, and the server saw the call cancelled within 3 s",
    );
    broken
}

/// Server, agent (HTTP/2 to the server) on `edge`, and the client's run against `listener`.
async fn through(
    edge: &TestEdge,
    listener: SocketAddr,
    ca: Option<&Path>,
) -> anyhow::Result<Value> {
    let server = grpc_server().await?;
    let mut config = edge.agent_config(TOKEN, "grpc", server.addr);
    config.endpoints[0].upstream_protocol = UpstreamProtocol::Http2;
    let agent = TestAgent::start(config).await?;
    let authority = agent
        .url()
        .split_once("://")
        .map_or(agent.url(), |(_, rest)| rest)
        .to_string();
    let started = Instant::now();
    let results = run_client(
        SocketAddr::from(([127, 0, 0, 1], listener.port())),
        &authority,
        ca,
    )
    .await?;
    println!(
        "client.py against {} in {:.2?}:\n{results:#}",
        agent.url(),
        started.elapsed()
    );
    agent.stop().await?;
    Ok(results)
}

/// The control: client and server pass every case when nothing is between them (same
/// `:authority` as through the tunnel), so a failure of the tests below is the tunnel's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_core_peers_pass_every_case_without_the_tunnel() -> anyhow::Result<()> {
    if !sluice_e2e::tools::python_module("grpc", INSTALLER)? {
        return Ok(());
    }
    let server = grpc_server().await?;
    let authority = format!("grpc.localhost:{}", server.addr.port());
    let results = run_client(server.addr, &authority, None).await?;
    let broken = broken_cases(&results);
    assert!(
        broken.is_empty(),
        "directly:\n{}\n{results:#}",
        broken.join("\n")
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_core_peers_over_h2c() -> anyhow::Result<()> {
    if !sluice_e2e::tools::python_module("grpc", INSTALLER)? {
        return Ok(());
    }
    let edge = TestEdge::start().await?;
    let results = through(&edge, edge.http_addr, None).await?;
    edge.shutdown().await;
    let broken = broken_cases(&results);
    assert!(broken.is_empty(), "over h2c:\n{}", broken.join("\n"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_core_peers_over_h2_on_https() -> anyhow::Result<()> {
    if !sluice_e2e::tools::python_module("grpc", INSTALLER)? {
        return Ok(());
    }
    let dir = tempfile::tempdir()?;
    let ca = TestCa::new("sluice test CA")?;
    let ca_pem = dir.path().join("ca.pem");
    std::fs::write(&ca_pem, ca.pem())?;
    let edge = TestEdge::start_https(&ca, dir.path(), "tunnel.test").await?;
    let https = edge.https()?;
    let results = through(&edge, https, Some(&ca_pem)).await?;
    edge.shutdown().await;
    let broken = broken_cases(&results);
    assert!(broken.is_empty(), "over h2 (TLS):\n{}", broken.join("\n"));
    Ok(())
}

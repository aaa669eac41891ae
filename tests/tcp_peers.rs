//! TCP and TLS endpoints in front of real services, driven by their real clients: Debian's
//! redis-server with redis-cli, OpenSSH's sshd with ssh (through the `agent tcp` binary), the
//! PROXY protocol v1/v2 headers the agent writes, parsed by the `ppp` crate, and OpenSSL's
//! s_client seeing a TLS endpoint's own certificate beside an HTTPS endpoint's.

use sluice_e2e::process::{base_command, AgentProcess};
use sluice_e2e::tls::{server_config, tls_connect, tls_upstream, TestCa};
use sluice_e2e::{any_port, eventually, free_tcp_port, tcp_address, tcp_port_range, within};
use sluice_e2e::{tools, TestAgent, TestEdge, TOKEN};
use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::process::{Child, Command};

/// What installs redis-server and redis-cli.
const REDIS_SETUP: &str = "scripts/setup.d/70-redis";
/// What installs sshd, ssh and ssh-keygen.
const SSH_SETUP: &str = "scripts/setup.d/71-openssh";
const CURL_SETUP: &str = "scripts/setup.d/55-curl";
/// Debian's sshd (not on a non-root `PATH`).
const SSHD: &str = "/usr/sbin/sshd";

/// An edge with a few TCP ports.
async fn tcp_edge() -> anyhow::Result<TestEdge> {
    let range = tcp_port_range(20)?;
    TestEdge::start_with(|c| c.tcp_ports = Some(range)).await
}

/// Runs `cmd` with `stdin` to completion (at most 30 s); fails unless it exits 0. Returns
/// stdout.
async fn run(mut cmd: Command, stdin: &[u8]) -> anyhow::Result<String> {
    let shown = format!("{:?}", cmd.as_std());
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin).await?;
    }
    let out = within(Duration::from_secs(30), &shown, child.wait_with_output()).await??;
    anyhow::ensure!(
        out.status.success(),
        "{shown}: {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?)
}

/// Starts `cmd` (a server that logs to `log`, killed when dropped) and waits up to 10 s until
/// `addr` accepts connections.
async fn serve(mut cmd: Command, addr: SocketAddr, log: &Path) -> anyhow::Result<Child> {
    let shown = format!("{:?}", cmd.as_std());
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(log)?)
        .stderr(std::fs::File::create(log.with_extension("err"))?)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| anyhow::anyhow!("{shown}: {e}"))?;
    let up = eventually(Duration::from_secs(10), &shown, || async {
        TcpStream::connect(addr).await.ok().map(|_| ())
    })
    .await;
    if let Err(e) = up {
        let _ = child.start_kill();
        let logs = [log.to_path_buf(), log.with_extension("err")]
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap_or_default())
            .collect::<Vec<_>>()
            .join("\n");
        anyhow::bail!("{e}; exit {:?}; output:\n{logs}", child.try_wait());
    }
    Ok(child)
}

#[tokio::test]
async fn redis_cli_sets_and_gets_through_the_tunnel() -> anyhow::Result<()> {
    tools::require(&["redis-server", "redis-cli"], REDIS_SETUP)?;
    let dir = tempfile::tempdir()?;
    let redis_addr = free_tcp_port()?;
    let mut cmd = Command::new("redis-server");
    cmd.args(["--port", &redis_addr.port().to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir.path());
    let _redis = serve(cmd, redis_addr, &dir.path().join("redis.log")).await?;

    let edge = tcp_edge().await?;
    let agent = TestAgent::start(edge.tcp_agent_config(TOKEN, "tcp://", redis_addr)).await?;
    let port = tcp_address(agent.url())?.port().to_string();
    let cli = |args: &[&str]| {
        let mut cmd = Command::new("redis-cli");
        cmd.args(["-h", "127.0.0.1", "-p", &port]).args(args);
        cmd
    };
    assert_eq!(run(cli(&["SET", "k", "v"]), b"").await?, "OK\n");
    assert_eq!(run(cli(&["GET", "k"]), b"").await?, "v\n");
    // A 1 MiB value: `-x` takes the last argument from stdin.
    let big: String = (0..1024 * 1024)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(
        run(cli(&["-x", "SET", "big"]), big.as_bytes()).await?,
        "OK\n"
    );
    assert_eq!(run(cli(&["STRLEN", "big"]), b"").await?, "1048576\n");
    let got = run(cli(&["GET", "big"]), b"").await?;
    assert!(got == format!("{big}\n"), "GET big: {} bytes", got.len());
    Ok(())
}

/// `ssh-keygen` makes a passwordless ed25519 key at `path` (and `path.pub`).
async fn keygen(path: &Path) -> anyhow::Result<()> {
    let mut cmd = Command::new("ssh-keygen");
    cmd.args(["-q", "-t", "ed25519", "-N", "", "-C", "sluice-test", "-f"])
        .arg(path);
    run(cmd, b"").await.map(drop)
}

#[tokio::test]
async fn ssh_logs_in_and_runs_a_command_through_agent_tcp() -> anyhow::Result<()> {
    tools::require(&[SSHD, "ssh", "ssh-keygen"], SSH_SETUP)?;
    let dir = tempfile::tempdir()?;
    let (host_key, client_key) = (dir.path().join("host_key"), dir.path().join("client_key"));
    keygen(&host_key).await?;
    keygen(&client_key).await?;
    let authorized = dir.path().join("authorized_keys");
    std::fs::copy(client_key.with_extension("pub"), &authorized)?;
    // sshd checks for its privilege separation directory before it starts.
    std::fs::create_dir_all("/run/sshd")?;
    let sshd_addr = free_tcp_port()?;
    let config = dir.path().join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "ListenAddress {sshd_addr}\nHostKey {}\nAuthorizedKeysFile {}\nPidFile {}\n\
             UsePAM no\nStrictModes no\nPubkeyAuthentication yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n",
            host_key.display(),
            authorized.display(),
            dir.path().join("sshd.pid").display()
        ),
    )?;
    let mut cmd = Command::new(SSHD);
    cmd.args(["-D", "-e", "-f"]).arg(&config);
    let _sshd = serve(cmd, sshd_addr, &dir.path().join("sshd.log")).await?;

    let edge = tcp_edge().await?;
    let mut cmd = base_command("agent")?;
    cmd.args(["tcp", &sshd_addr.to_string()])
        .args([
            "--edge",
            &edge.tunnel_addr.to_string(),
            "--authtoken",
            TOKEN,
        ])
        .arg("--edge-ca")
        .arg(&edge.cert);
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    anyhow::ensure!(agent.url.starts_with("tcp://"), "{}", agent.url);

    let mut id = Command::new("id");
    id.arg("-un");
    let user = run(id, b"").await?;
    let mut ssh = Command::new("ssh");
    ssh.arg("-i")
        .arg(&client_key)
        .args([
            "-F",
            "/dev/null",
            "-p",
            &tcp_address(&agent.url)?.port().to_string(),
        ])
        .args([
            "-o",
            "StrictHostKeyChecking=no",
            "-o",
            "UserKnownHostsFile=/dev/null",
        ])
        .args(["-o", "BatchMode=yes", "-o", "ConnectTimeout=10"])
        .arg(format!("{}@127.0.0.1", user.trim()))
        .arg("echo sluice-$((6*7))");
    let out = run(ssh, b"").await.map_err(|e| {
        let sshd_log = std::fs::read_to_string(dir.path().join("sshd.err")).unwrap_or_default();
        anyhow::anyhow!("{e}\nsshd:\n{sshd_log}\n{}", agent.output())
    })?;
    assert_eq!(out, "sluice-42\n");
    Ok(())
}

/// The source and destination a PROXY protocol header names, parsed with `ppp`, and the bytes
/// that followed it.
async fn read_proxy_header(
    stream: &mut TcpStream,
) -> anyhow::Result<(SocketAddr, SocketAddr, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        let mut chunk = [0u8; 512];
        let n = stream.read(&mut chunk).await?;
        anyhow::ensure!(n > 0, "the connection ended inside the header: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
        match ppp::HeaderResult::parse(&buf) {
            ppp::HeaderResult::V1(Err(ppp::v1::BinaryParseError::Parse(
                ppp::v1::ParseError::Partial,
            ))) => continue,
            ppp::HeaderResult::V2(Err(
                ppp::v2::ParseError::Incomplete(_) | ppp::v2::ParseError::Partial(..),
            )) => continue,
            ppp::HeaderResult::V1(Ok(h)) => {
                let ppp::v1::Addresses::Tcp4(a) = h.addresses else {
                    anyhow::bail!("not a TCP4 v1 header: {:?}", h.header);
                };
                let rest = buf[h.header.len()..].to_vec();
                return Ok(ends(a, rest));
            }
            ppp::HeaderResult::V2(Ok(h)) => {
                let ppp::v2::Addresses::IPv4(a) = h.addresses else {
                    anyhow::bail!("not an IPv4 v2 header: {:?}", h.addresses);
                };
                anyhow::ensure!(h.command == ppp::v2::Command::Proxy, "{:?}", h.command);
                anyhow::ensure!(h.protocol == ppp::v2::Protocol::Stream, "{:?}", h.protocol);
                let rest = buf[h.len()..].to_vec();
                return Ok(ends(a, rest));
            }
            other => anyhow::bail!("no PROXY header at the start of {buf:?}: {other:?}"),
        }
    }
}

/// `(source, destination, rest)` of an IPv4 header.
fn ends(a: ppp::v1::IPv4, rest: Vec<u8>) -> (SocketAddr, SocketAddr, Vec<u8>) {
    (
        SocketAddr::from((a.source_address, a.source_port)),
        SocketAddr::from((a.destination_address, a.destination_port)),
        rest,
    )
}

/// A client's connection through an endpoint with `proxy_protocol` set to `version`: the
/// upstream reads a header naming the client's address as source and the edge's TCP port as
/// destination, then the client's bytes.
async fn proxy_header_names_client_and_edge(version: &str) -> anyhow::Result<()> {
    let upstream = TcpListener::bind(any_port()).await?;
    let upstream_addr = upstream.local_addr()?;
    let edge = tcp_edge().await?;
    let mut config = edge.tcp_agent_config(TOKEN, "tcp://", upstream_addr);
    config.endpoints[0].proxy_protocol = Some(version.parse()?);
    let agent = TestAgent::start(config).await?;
    let edge_addr = tcp_address(agent.url())?;

    let mut client = TcpStream::connect(edge_addr).await?;
    client.write_all(b"after the header").await?;
    let (mut conn, _) = within(Duration::from_secs(10), "the upstream connection", async {
        upstream.accept().await
    })
    .await??;
    let (source, destination, mut rest) = within(
        Duration::from_secs(10),
        "the PROXY header",
        read_proxy_header(&mut conn),
    )
    .await??;
    assert_eq!(source, client.local_addr()?, "v{version} source");
    assert_eq!(destination, edge_addr, "v{version} destination");
    // The client's bytes follow the header unchanged.
    while rest.len() < b"after the header".len() {
        let mut chunk = [0u8; 64];
        let n = within(
            Duration::from_secs(5),
            "the client's bytes",
            conn.read(&mut chunk),
        )
        .await??;
        anyhow::ensure!(n > 0, "the upstream connection ended after {rest:?}");
        rest.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(rest, b"after the header");
    Ok(())
}

#[tokio::test]
async fn proxy_protocol_v1_names_the_client_and_the_edge_port() -> anyhow::Result<()> {
    proxy_header_names_client_and_edge("1").await
}

#[tokio::test]
async fn proxy_protocol_v2_names_the_client_and_the_edge_port() -> anyhow::Result<()> {
    proxy_header_names_client_and_edge("2").await
}

/// The SHA-256 fingerprint `openssl s_client -servername NAME` sees on the edge's HTTPS port,
/// as `openssl x509 -fingerprint` prints it.
async fn fingerprint_seen(https: SocketAddr, name: &str) -> anyhow::Result<String> {
    let mut s_client = Command::new("timeout");
    s_client.args([
        "10",
        "openssl",
        "s_client",
        "-connect",
        &https.to_string(),
        "-servername",
        name,
    ]);
    // "Q" ends s_client's session once the handshake is done.
    let shown = run(s_client, b"Q\n").await?;
    let mut x509 = Command::new("openssl");
    x509.args(["x509", "-noout", "-fingerprint", "-sha256"]);
    Ok(run(x509, shown.as_bytes()).await?.trim().to_string())
}

/// `openssl x509 -fingerprint -sha256`'s form of a certificate's fingerprint.
fn fingerprint_of(der: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    let hex: Vec<String> = Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect();
    format!("sha256 Fingerprint={}", hex.join(":"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_passthrough_shows_the_upstreams_certificate_and_https_the_edges() -> anyhow::Result<()>
{
    tools::require(&["openssl"], SSH_SETUP)?;
    let HttpsEdge { dir, edge, .. } = HttpsEdge::start().await?;
    // The app's certificate comes from a CA the edge has never seen.
    let app_ca = TestCa::new("app CA")?;
    let (app_files, app_leaf) = app_ca.issue(dir.path(), "app", &["db.tunnel.test"])?;
    let tls_app = tls_upstream(server_config(&app_files, rustls::DEFAULT_VERSIONS)?).await?;
    let db =
        TestAgent::start(edge.tcp_agent_config(TOKEN, "tls://db.tunnel.test", tls_app)).await?;
    assert_eq!(
        db.url(),
        format!("tls://db.tunnel.test:{}", edge.https()?.port())
    );
    let app = sluice_e2e::upstream::app("web").await?;
    let _web =
        TestAgent::start(edge.agent_config(TOKEN, "https://web.tunnel.test", app.addr)).await?;

    let https = edge.https()?;
    assert_eq!(
        fingerprint_seen(https, "db.tunnel.test").await?,
        fingerprint_of(&app_leaf)
    );
    let edge_seen = fingerprint_seen(https, "web.tunnel.test").await?;
    assert_ne!(edge_seen, fingerprint_of(&app_leaf));
    // The HTTPS endpoint on the same port keeps the edge's certificate.
    let mut s_client = Command::new("openssl");
    s_client.args([
        "s_client",
        "-connect",
        &https.to_string(),
        "-servername",
        "web.tunnel.test",
    ]);
    let shown = run(s_client, b"Q\n").await?;
    assert!(shown.contains("edge CA"), "{shown}");

    // Bytes go both ways through the passthrough: the app answers over its own TLS.
    let client_config = app_ca.client_config(&[])?;
    let mut tls = tls_connect(client_config, https, "db.tunnel.test").await?;
    tls.write_all(b"hello").await?;
    let mut buf = [0u8; 64];
    let n = within(
        Duration::from_secs(5),
        "the app's answer",
        tls.read(&mut buf),
    )
    .await??;
    assert_eq!(&buf[..n], b"upstream: hello");

    Ok(())
}

/// A policy layer from YAML text.
fn policy(text: &str) -> sluice_proto::control::PolicySource {
    sluice_proto::control::PolicySource {
        origin: "tls-policy.yml".into(),
        kind: sluice_proto::control::PolicyKind::Document,
        text: text.into(),
    }
}

/// An edge for `tunnel.test` with an HTTPS listener, its certificate from `edge_ca`, its files
/// in `dir`.
struct HttpsEdge {
    dir: tempfile::TempDir,
    edge_ca: TestCa,
    edge: TestEdge,
}

impl HttpsEdge {
    async fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let edge_ca = TestCa::new("edge CA")?;
        let edge = TestEdge::start_https(&edge_ca, dir.path(), "tunnel.test").await?;
        Ok(Self { dir, edge_ca, edge })
    }
}

/// `openssl s_client`'s flags presenting the certificate in `files`.
fn cert_flags(files: &sluice_edge::CertFiles) -> Vec<String> {
    let (cert, key) = (files.cert.to_string_lossy(), files.key.to_string_lossy());
    vec![
        "-cert".into(),
        cert.into_owned(),
        "-key".into(),
        key.into_owned(),
    ]
}

/// `flags` as the `&str`s the helpers take.
fn strs(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// `openssl s_client` against the edge's HTTPS port for `name` with `extra` flags, sending
/// `input` after the handshake: whether it exited 0, and what it printed.
async fn s_client(
    https: SocketAddr,
    name: &str,
    extra: &[&str],
    input: &[u8],
) -> anyhow::Result<(bool, String)> {
    let mut cmd = Command::new("timeout");
    cmd.args([
        "10",
        "openssl",
        "s_client",
        "-connect",
        &https.to_string(),
        "-servername",
        name,
        "-quiet",
        "-no_ign_eof",
    ])
    .args(extra)
    .stdin(Stdio::piped())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(input).await?;
        // Leave stdin open a moment so the reply is read before s_client ends.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let out = within(
        Duration::from_secs(15),
        "s_client",
        child.wait_with_output(),
    )
    .await??;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_tls_on_a_tls_endpoint_enforces_versions_and_mutual_tls() -> anyhow::Result<()> {
    tools::require(&["openssl"], SSH_SETUP)?;
    let HttpsEdge { dir, edge, .. } = HttpsEdge::start().await?;
    let https = edge.https()?;
    let echo = sluice_e2e::upstream::tcp_echo().await?;
    // TLS 1.3 only, the edge's certificate: the agent's echo server gets plaintext.
    let mut v13 = edge.tcp_agent_config(TOKEN, "tls://v13.tunnel.test", echo.addr);
    v13.endpoints[0].policies = vec![policy(
        "on_tcp_connect:\n  - actions: [{type: terminate-tls, config: {min_version: \"1.3\"}}]\n",
    )];
    let _v13 = TestAgent::start(v13).await?;
    let (ok, shown) = s_client(https, "v13.tunnel.test", &["-tls1_2"], b"").await?;
    assert!(!ok, "a TLS 1.2 client got through: {shown}");
    let (ok, shown) = s_client(https, "v13.tunnel.test", &["-tls1_3"], b"plain\n").await?;
    assert!(ok && shown.contains("plain"), "{shown}");

    // Mutual TLS: a client certificate from the configured CA is required, and the rule after
    // terminate-tls reads its common name.
    let client_ca = TestCa::new("client CA")?;
    let (alice, _) = client_ca.issue(dir.path(), "alice", &["alice.example"])?;
    let (mallory, _) = client_ca.issue(dir.path(), "mallory", &["mallory.example"])?;
    let mut mtls = edge.tcp_agent_config(TOKEN, "tls://mtls.tunnel.test", echo.addr);
    let ca_pem = client_ca.pem().replace('\n', "\\n");
    mtls.endpoints[0].policies = vec![policy(&format!(
        "on_tcp_connect:\n  - actions: [{{type: terminate-tls, config: {{mutual_tls_certificate_authorities: [\"{ca_pem}\"]}}}}]\n  - expressions: [\"conn.tls.client.subject.common_name != 'alice'\"]\n    actions: [{{type: deny}}]\n"
    ))];
    let _mtls = TestAgent::start(mtls).await?;
    let (ok, shown) = s_client(https, "mtls.tunnel.test", &[], b"no cert\n").await?;
    assert!(
        !(ok && shown.contains("no cert")),
        "a client without a certificate got through: {shown}"
    );
    let mallory = cert_flags(&mallory);
    let (ok, shown) = s_client(https, "mtls.tunnel.test", &strs(&mallory), b"as mallory\n").await?;
    assert!(
        !(ok && shown.contains("as mallory")),
        "the rule after terminate-tls let another common name through: {shown}"
    );
    let alice = cert_flags(&alice);
    let (ok, shown) = s_client(https, "mtls.tunnel.test", &strs(&alice), b"with cert\n").await?;
    assert!(ok && shown.contains("with cert"), "{shown}");
    Ok(())
}

/// curl against the edge's HTTPS port for `https://NAME:PORT/`, trusting `ca`, with `extra`
/// flags: whether it exited 0, and the body followed by ` HTTP/<version>` (or its error).
async fn curl_https(
    https: SocketAddr,
    name: &str,
    ca: &Path,
    extra: &[&str],
) -> anyhow::Result<(bool, String)> {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "10", "--noproxy", "*"])
        .args(["--resolve", &format!("{name}:{}:127.0.0.1", https.port())])
        .arg("--cacert")
        .arg(ca)
        .args(["-w", " HTTP/%{http_version}"])
        .args(extra)
        .arg(format!("https://{name}:{}/", https.port()))
        .kill_on_drop(true);
    let out = within(Duration::from_secs(15), "curl", cmd.output()).await??;
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok((out.status.success(), text))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminate_tls_on_an_https_endpoint_sets_its_handshake_and_requests_read_the_client_certificate(
) -> anyhow::Result<()> {
    tools::require(&["curl"], CURL_SETUP)?;
    let HttpsEdge { dir, edge_ca, edge } = HttpsEdge::start().await?;
    let https = edge.https()?;
    let ca_file = dir.path().join("edge-ca.pem");
    std::fs::write(&ca_file, edge_ca.pem())?;
    let app = sluice_e2e::upstream::app("app").await?;
    let client_ca = TestCa::new("client CA")?;
    let (alice, _) = client_ca.issue(dir.path(), "alice", &["alice.example"])?;
    let ca_pem = client_ca.pem().replace('\n', "\\n");
    let mut mtls = edge.agent_config(TOKEN, "https://mtls.tunnel.test", app.addr);
    mtls.endpoints[0].policies = vec![policy(&format!(
        "on_tcp_connect:\n  - actions: [{{type: terminate-tls, config: {{min_version: \"1.3\", mutual_tls_certificate_authorities: [\"{ca_pem}\"]}}}}]\non_http_request:\n  - actions: [{{type: custom-response, config: {{status_code: 200, body: \"hello ${{conn.tls.client.subject.common_name}} over TLS ${{conn.tls.version}}\"}}}}]\n"
    ))];
    let _mtls = TestAgent::start(mtls).await?;
    // The same port's other HTTPS endpoint keeps the edge's defaults.
    let plain = edge.agent_config(TOKEN, "https://plain.tunnel.test", app.addr);
    let _plain = TestAgent::start(plain).await?;

    let cert = alice.cert.to_string_lossy().into_owned();
    let key = alice.key.to_string_lossy().into_owned();
    let with_cert = ["--cert", &cert, "--key", &key];
    for (protocol, version) in [("--http2", "2"), ("--http1.1", "1.1")] {
        let mut flags = with_cert.to_vec();
        flags.push(protocol);
        let (ok, shown) = curl_https(https, "mtls.tunnel.test", &ca_file, &flags).await?;
        let expected = format!("hello alice over TLS 1.3 HTTP/{version}");
        assert!(ok && shown == expected, "{protocol}: {shown}");
    }
    let (ok, shown) = curl_https(https, "mtls.tunnel.test", &ca_file, &[]).await?;
    assert!(!ok, "a client without a certificate got an answer: {shown}");
    let mut tls12 = with_cert.to_vec();
    tls12.extend(["--tlsv1.2", "--tls-max", "1.2"]);
    let (ok, shown) = curl_https(https, "mtls.tunnel.test", &ca_file, &tls12).await?;
    assert!(
        !ok,
        "a TLS 1.2 client got an answer under min_version 1.3: {shown}"
    );
    let (ok, shown) = curl_https(https, "plain.tunnel.test", &ca_file, &tls12[4..]).await?;
    assert!(
        ok && shown.ends_with("HTTP/2"),
        "the other endpoint: {shown}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_any_and_request_take_certificates_from_any_issuer() -> anyhow::Result<()> {
    tools::require(&["openssl"], SSH_SETUP)?;
    let HttpsEdge { dir, edge, .. } = HttpsEdge::start().await?;
    let https = edge.https()?;
    let echo = sluice_e2e::upstream::tcp_echo().await?;
    // No authorities: rules decide by the certificate's fields (and by the SNI, known before
    // the handshake).
    let mut agents = Vec::new();
    for strategy in ["require-any", "request"] {
        let mut config =
            edge.tcp_agent_config(TOKEN, &format!("tls://{strategy}.tunnel.test"), echo.addr);
        config.endpoints[0].policies = vec![policy(&format!(
            "on_tcp_connect:\n  - expressions: [\"conn.tls.sni != '{strategy}.tunnel.test'\"]\n    actions: [{{type: deny}}]\n  - actions: [{{type: terminate-tls, config: {{mutual_tls_verification_strategy: {strategy}}}}}]\n  - expressions: [\"conn.tls.client.subject.common_name == 'mallory'\"]\n    actions: [{{type: deny}}]\n"
        ))];
        agents.push(TestAgent::start(config).await?);
    }
    let someone = TestCa::new("some CA")?;
    let (carol, _) = someone.issue(dir.path(), "carol", &["carol.example"])?;
    let (mallory, _) = someone.issue(dir.path(), "mallory", &["mallory.example"])?;
    let (carol, mallory) = (cert_flags(&carol), cert_flags(&mallory));
    for (name, without_cert_passes) in [("require-any", false), ("request", true)] {
        let host = format!("{name}.tunnel.test");
        let (ok, shown) = s_client(https, &host, &strs(&carol), b"carol\n").await?;
        assert!(ok && shown.contains("carol"), "{name}, carol: {shown}");
        let (ok, shown) = s_client(https, &host, &strs(&mallory), b"mallory\n").await?;
        assert!(
            !(ok && shown.contains("mallory")),
            "{name}, mallory: {shown}"
        );
        let (ok, shown) = s_client(https, &host, &[], b"anonymous\n").await?;
        let passed = ok && shown.contains("anonymous");
        assert_eq!(
            passed, without_cert_passes,
            "{name}, no certificate: {shown}"
        );
    }
    Ok(())
}

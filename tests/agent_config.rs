//! `agent.yml`: the fixtures in tests/fixtures/agent-config (valid files pass `check`, each
//! invalid one fails with exactly its `.expected` message), `agent config check` from the real
//! binary, and three endpoints started from one file over one QUIC connection.

use sluice_agent::agent_file::{self, LoadedFile, Selection};
use sluice_e2e::process::base_command;
use sluice_e2e::upstream::app;
use sluice_e2e::{client, eventually, AgentProcess, TestEdge, TOKEN};
use sluice_proto::scheme::Scheme;
use std::path::{Path, PathBuf};
use std::time::Duration;

fn fixtures(kind: &str) -> anyhow::Result<Vec<PathBuf>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/agent-config")
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    Ok(files)
}

/// Loads a fixture the way `agent_file::load` does, with a fixed environment and the file
/// name alone in messages (so expected messages do not depend on the checkout path).
fn load_fixture(path: &Path) -> Result<LoadedFile, agent_file::ConfigError> {
    let shown = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let raw =
        std::fs::read_to_string(path).map_err(|e| agent_file::ConfigError(vec![e.to_string()]))?;
    let env = |name: &str| match name {
        "SLUICE_TEST_TOKEN" => Some("tok".to_string()),
        "SLUICE_TEST_PASSWORD" => Some("correct-horse".to_string()),
        _ => None,
    };
    let text = agent_file::expand_env(&raw, &shown, env)?;
    let file = agent_file::parse(&text, &shown)?;
    let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedFile { shown, base, file })
}

#[test]
fn valid_fixtures_pass_check() -> anyhow::Result<()> {
    let files = fixtures("valid")?;
    assert!(files.len() >= 2);
    for path in files {
        let config = load_fixture(&path)
            .and_then(|f| f.check())
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
        assert!(!config.endpoints.is_empty());
    }
    Ok(())
}

#[test]
fn invalid_fixtures_fail_with_their_located_message() -> anyhow::Result<()> {
    let files = fixtures("invalid")?;
    assert!(files.len() >= 12);
    for path in files {
        let expected = std::fs::read_to_string(path.with_extension("expected"))?;
        let got = match load_fixture(&path).and_then(|f| f.check()) {
            Ok(_) => panic!("{} was accepted", path.display()),
            Err(e) => e.to_string(),
        };
        let (want, have): (Vec<&str>, Vec<&str>) =
            (expected.trim_end().lines().collect(), got.lines().collect());
        assert_eq!(want.len(), have.len(), "{}:\n{got}", path.display());
        for (w, h) in want.iter().zip(&have) {
            // An expected line may end early where the rest depends on the machine (OS errors).
            assert!(h.starts_with(w), "{}:\nwant {w}\nhave {h}", path.display());
        }
    }
    Ok(())
}

#[test]
fn tcp_endpoints_load_with_their_proxy_protocol() -> anyhow::Result<()> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent-config/valid/tcp.yml");
    let config = load_fixture(&path)
        .and_then(|f| f.check())
        .map_err(anyhow::Error::msg)?;
    let shown: Vec<(Option<&str>, String, String)> = config
        .endpoints
        .iter()
        .map(|e| {
            (
                e.url.as_deref(),
                e.upstream.to_string(),
                format!("{:?}", e.proxy_protocol),
            )
        })
        .collect();
    assert_eq!(
        shown,
        [
            (
                Some("tcp://"),
                "tcp://localhost:22".to_string(),
                "Some(V2)".to_string()
            ),
            (
                Some("tcp://localhost:20001"),
                "tcp://db.internal:5432".to_string(),
                "Some(V1)".to_string()
            ),
        ]
    );
    assert!(config.endpoints.iter().all(|e| e.is_raw()));
    Ok(())
}

#[test]
fn selection_by_name() -> anyhow::Result<()> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent-config/valid/full.yml");
    let file = load_fixture(&path).map_err(anyhow::Error::msg)?;
    let two = file
        .agent_config(&Selection::Names(vec!["docs".into(), "web".into()]), None)
        .map_err(anyhow::Error::msg)?;
    // File order, not argument order.
    let urls: Vec<_> = two.endpoints.iter().map(|e| e.url.clone()).collect();
    assert_eq!(urls, [Some("web".to_string()), None]);
    assert_eq!(two.authtoken.expose(), "tok");
    let err = file
        .agent_config(&Selection::Names(vec!["nope".into()]), None)
        .expect_err("unknown name");
    assert_eq!(err.to_string(), "full.yml: no endpoint named 'nope'");
    Ok(())
}

#[tokio::test]
async fn config_check_from_the_binary() -> anyhow::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/agent-config");
    let mut ok = base_command("agent")?;
    ok.args(["config", "check", "--config"])
        .arg(dir.join("valid/minimal.yml"));
    let (status, stdout, stderr) = AgentProcess::run_to_exit(ok, Duration::from_secs(30)).await?;
    assert!(status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("minimal.yml: ok (1 endpoints)"), "{stdout}");

    let mut bad = base_command("agent")?;
    bad.args(["config", "check", "--config"])
        .arg(dir.join("invalid/bad-upstream.yml"));
    let (status, _, stderr) = AgentProcess::run_to_exit(bad, Duration::from_secs(30)).await?;
    assert!(!status.success());
    assert!(
        stderr.contains("bad-upstream.yml:6:7: endpoints[0].upstream: invalid upstream"),
        "{stderr}"
    );
    Ok(())
}

#[tokio::test]
async fn three_endpoints_from_one_file_share_one_connection() -> anyhow::Result<()> {
    let edge = TestEdge::start().await?;
    let web = app("web").await?;
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join("site"))?;
    std::fs::write(dir.path().join("site/hello.txt"), "from the file endpoint")?;
    std::fs::write(dir.path().join("edge.crt"), std::fs::read(&edge.cert)?)?;
    let config = dir.path().join("agent.yml");
    std::fs::write(
        &config,
        format!(
            r#"version: 3
agent:
  authtoken: ${{E2E_AGENT_TOKEN}}
  connect_url: {tunnel}
  edge_ca: edge.crt
endpoints:
  - name: web
    url: cfg-web
    upstream: {{url: "http://{web}"}}
  - name: files
    url: cfg-files
    upstream: {{url: "file://site"}}
  - name: guarded
    url: cfg-guarded
    upstream: {{url: "http://{web}"}}
    basic_auth: ["me:${{E2E_PASSWORD}}"]
    traffic_policy:
      on_http_response:
        - actions:
            - type: add-headers
              config: {{headers: {{x-endpoint: guarded}}}}
"#,
            tunnel = edge.tunnel_addr,
            web = web.addr,
        ),
    )?;
    let mut cmd = base_command("agent")?;
    cmd.args(["start", "--all", "--config"])
        .arg(&config)
        .env("E2E_AGENT_TOKEN", TOKEN)
        .env("E2E_PASSWORD", "s3cret-horse");
    let agent = AgentProcess::spawn(cmd, &dir.path().join("agent.log")).await?;
    let output = eventually(
        Duration::from_secs(20),
        "three Forwarding lines",
        || async {
            let out = agent.output();
            (out.matches("Forwarding ").count() == 3).then_some(out)
        },
    )
    .await?;
    let port = edge.http_addr.port();
    let url = |name: &str| format!("http://{name}.localhost:{port}");
    for name in ["cfg-web", "cfg-files", "cfg-guarded"] {
        assert!(output.contains(&url(name)), "{name} missing:\n{output}");
    }
    let http = client();
    let r = http.get(format!("{}/hello", url("cfg-web"))).send().await?;
    assert_eq!(r.status(), 200);
    let r = http
        .get(format!("{}/hello.txt", url("cfg-files")))
        .send()
        .await?;
    assert_eq!(r.text().await?, "from the file endpoint");
    let r = http.get(url("cfg-guarded")).send().await?;
    assert_eq!(r.status(), 401);
    let r = http
        .get(url("cfg-guarded"))
        .basic_auth("me", Some("s3cret-horse"))
        .send()
        .await?;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-endpoint"], "guarded");

    // One QUIC connection: every hostname routes to the same agent session.
    let routes = edge.handle().routes();
    let sessions: Vec<String> = ["cfg-web", "cfg-files", "cfg-guarded"]
        .iter()
        .map(|n| {
            routes
                .lookup(Scheme::Http, &format!("{n}.localhost"))
                .and_then(|set| set.pick())
                .map(|r| r.member_id().to_string())
                .unwrap_or_default()
        })
        .collect();
    assert!(!sessions[0].is_empty());
    assert!(sessions.iter().all(|s| s == &sessions[0]), "{sessions:?}");
    agent.terminate(Duration::from_secs(10)).await?;
    Ok(())
}

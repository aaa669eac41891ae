//! What a server admin installs: the systemd units in `deploy/systemd`, checked by systemd's
//! own `systemd-analyze verify` (every key known, every value valid, the command executable),
//! the Dockerfile, checked by hadolint and replayed natively (no Docker engine runs here), the
//! Kubernetes manifests, checked against Kubernetes' schemas, and the release tarballs and the
//! .deb scripts/release makes, the .deb installed with dpkg and its edge started.

use sluice_e2e::process::{bin, command_at, EdgeProcess};
use sluice_e2e::{any_port, client, tools, TOKEN};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const SYSTEMD_SETUP: &str = "scripts/setup.d/73-systemd";
const HADOLINT_SETUP: &str = "scripts/setup.d/74-hadolint";
const KUBERNETES_VALIDATE_SETUP: &str = "scripts/setup.d/75-kubernetes-validate";
const CARGO_DEB_SETUP: &str = "scripts/setup.d/76-cargo-deb";

/// A file of this tree.
fn source(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// `unit` from deploy/systemd written into `dir` as `name`, its `/usr/bin/sluice-*` commands
/// pointed at this build's binaries (verify checks that the command is executable).
fn staged(dir: &Path, unit: &str, name: &str) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("deploy/systemd")
            .join(unit),
    )?;
    let text = text
        .replace("/usr/bin/sluice-edge", &bin("edge")?.to_string_lossy())
        .replace("/usr/bin/sluice-agent", &bin("agent")?.to_string_lossy());
    std::fs::write(dir.join(name), text)?;
    Ok(())
}

#[test]
fn the_systemd_units_pass_systemd_analyze_verify() -> anyhow::Result<()> {
    tools::require(&["systemd-analyze"], SYSTEMD_SETUP)?;
    let dir = tempfile::tempdir()?;
    staged(dir.path(), "sluice-edge.service", "sluice-edge.service")?;
    // A template is verified through an instance of it.
    staged(
        dir.path(),
        "sluice-agent@.service",
        "sluice-agent@demo.service",
    )?;
    let out = Command::new("systemd-analyze")
        .current_dir(dir.path())
        .args([
            "verify",
            "--man=no",
            "./sluice-edge.service",
            "./sluice-agent@demo.service",
        ])
        .output()?;
    // Unknown keys and bad values are warnings with exit code 0: any output is a failure.
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && shown.trim().is_empty(), "{shown}");
    Ok(())
}

#[test]
fn the_dockerfile_passes_hadolint() -> anyhow::Result<()> {
    tools::require(&["hadolint"], HADOLINT_SETUP)?;
    let out = Command::new("hadolint")
        .arg("--no-color")
        .arg(source("Dockerfile"))
        .output()?;
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && shown.trim().is_empty(), "{shown}");
    Ok(())
}

/// The target dir of this test build (`target/`, above `target/debug/edge`).
fn target_dir() -> anyhow::Result<PathBuf> {
    let edge = bin("edge")?;
    edge.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("no target dir above {}", edge.display()))
}

/// Runs scripts/release over this build's binaries (no build), writing into `dist`.
fn release_into(dist: &Path) -> anyhow::Result<()> {
    tools::require(&["cargo-deb"], CARGO_DEB_SETUP)?;
    let edge = bin("edge")?;
    let profile_dir = edge.parent().ok_or_else(|| anyhow::anyhow!("no dir"))?;
    let target_dir = profile_dir
        .parent()
        .ok_or_else(|| anyhow::anyhow!("no dir"))?;
    let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
        Some("debug") => "dev",
        Some(other) => other,
        None => anyhow::bail!("no profile in {}", edge.display()),
    };
    let out = Command::new(source("scripts/release"))
        .env("SLUICE_RELEASE_PROFILE", profile)
        .env("SLUICE_RELEASE_NO_BUILD", "1")
        .env("SLUICE_RELEASE_FAST", "1")
        .env("CARGO_TARGET_DIR", target_dir)
        .env("SLUICE_DIST", dist)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "scripts/release: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

#[test]
fn release_tarballs_check_out_against_their_sums_and_are_reproducible() -> anyhow::Result<()> {
    let (first, second) = (tempfile::tempdir()?, tempfile::tempdir()?);
    release_into(first.path())?;
    release_into(second.path())?;
    let sums = std::fs::read_to_string(first.path().join("SHA256SUMS"))?;
    assert_eq!(
        sums,
        std::fs::read_to_string(second.path().join("SHA256SUMS"))?,
        "the same binaries give the same archives"
    );
    assert!(sums.lines().any(|l| l.ends_with(".deb")), "no .deb: {sums}");
    let check = Command::new("sha256sum")
        .args(["--check", "--strict", "SHA256SUMS"])
        .current_dir(first.path())
        .output()?;
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stdout)
    );
    // The edge's archive unpacks into a runnable binary under its installed name, with the
    // units beside it.
    let edge_tar = sums
        .split_whitespace()
        .find(|w| w.starts_with("sluice-edge-") && w.ends_with(".tar.gz"))
        .ok_or_else(|| anyhow::anyhow!("no edge archive in {sums}"))?;
    let unpacked = tempfile::tempdir()?;
    let untar = Command::new("tar")
        .arg("xzf")
        .arg(first.path().join(edge_tar))
        .arg("-C")
        .arg(unpacked.path())
        .status()?;
    assert!(untar.success());
    let root = unpacked.path().join(edge_tar.trim_end_matches(".tar.gz"));
    assert!(root.join("systemd/sluice-edge.service").is_file());
    let version = Command::new(root.join("sluice-edge"))
        .arg("--version")
        .output()?;
    let shown = String::from_utf8_lossy(&version.stdout);
    assert!(
        version.status.success() && shown.starts_with("edge "),
        "{shown}"
    );
    Ok(())
}

#[test]
fn the_kubernetes_manifests_match_the_kubernetes_schemas() -> anyhow::Result<()> {
    tools::require(&["kubernetes-validate"], KUBERNETES_VALIDATE_SETUP)?;
    let dir = source("deploy/kubernetes");
    let mut files: Vec<_> = std::fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.sort();
    assert!(files.len() >= 3, "{files:?}");
    // --strict refuses fields the schema does not have (a misspelt key is not ignored).
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "--quiet", "--kubernetes-version", "1.33.0"])
        .args(&files)
        .output()?;
    let shown =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && shown.trim().is_empty(), "{shown}");
    Ok(())
}

/// Runs `cmd` and fails with its output unless it succeeds; returns its stdout.
fn run(cmd: &mut Command) -> anyhow::Result<String> {
    let out = cmd.stdin(Stdio::null()).output()?;
    anyhow::ensure!(
        out.status.success(),
        "{cmd:?}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A dpkg root of its own in `root`, whose package database starts as a copy of this machine's:
/// the package's Depends are checked against what is really installed here, and its files
/// against the files other packages own (the `.list` files).
fn dpkg_root(root: &Path) -> anyhow::Result<()> {
    let admin = root.join("var/lib/dpkg");
    for dir in ["info", "updates", "triggers"] {
        std::fs::create_dir_all(admin.join(dir))?;
    }
    std::fs::copy("/var/lib/dpkg/status", admin.join("status"))?;
    for entry in std::fs::read_dir("/var/lib/dpkg/info")? {
        let path = entry?.path();
        if let (Some(name), Some("list")) =
            (path.file_name(), path.extension().and_then(|e| e.to_str()))
        {
            std::fs::copy(&path, admin.join("info").join(name))?;
        }
    }
    Ok(())
}

/// The .deb scripts/release makes from this build holds both programs under their installed
/// names, the units and the docs, and no maintainer script; `dpkg -i` installs it (its
/// dependencies met by this machine), the installed `sluice-edge` answers `/healthz` on its
/// metrics listener, and `dpkg -r` removes it again.
///
/// dpkg works in a root of its own (`--root`, the package database copied from this machine's)
/// rather than on the machine itself: tests run in parallel with other programs that may hold
/// the real database's lock (apt in scripts/setup.d, another checkout's tests), a developer's
/// machine may have the real `sluice` package installed, which this test must not replace or
/// remove, and a test killed at its time limit leaves nothing behind in the system.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deb_installs_with_dpkg_and_its_edge_answers_healthz() -> anyhow::Result<()> {
    tools::require(&["dpkg", "dpkg-deb"], CARGO_DEB_SETUP)?;
    let dist = tempfile::tempdir()?;
    release_into(dist.path())?;
    let deb = std::fs::read_dir(dist.path())?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| anyhow::anyhow!("scripts/release made no .deb"))?;

    let contents = run(Command::new("dpkg-deb").arg("--contents").arg(&deb))?;
    let files: Vec<&str> = contents
        .lines()
        .filter_map(|l| l.split_whitespace().last())
        .map(|f| f.trim_start_matches('.'))
        .collect();
    for wanted in [
        "/usr/bin/sluice-edge",
        "/usr/bin/sluice-agent",
        "/usr/lib/systemd/system/sluice-edge.service",
        "/usr/lib/systemd/system/sluice-agent@.service",
        // The units' Documentation= link.
        "/usr/share/doc/sluice/operating.md",
        "/usr/share/doc/sluice/README.md",
    ] {
        assert!(
            files.contains(&wanted),
            "{wanted} not in the package:\n{contents}"
        );
    }
    // Plain `edge` and `agent` would collide with other programs of those names.
    let plain = files
        .iter()
        .filter(|f| {
            f.rsplit('/')
                .next()
                .is_some_and(|n| n == "edge" || n == "agent")
        })
        .collect::<Vec<_>>();
    assert!(plain.is_empty(), "plain names in the package: {plain:?}");
    let depends = run(Command::new("dpkg-deb")
        .arg("--field")
        .arg(&deb)
        .arg("Depends"))?;
    assert!(depends.contains("ca-certificates"), "Depends: {depends}");
    // The units use DynamicUser and StateDirectory: nothing for a maintainer script to do.
    let control = tempfile::tempdir()?;
    run(Command::new("dpkg-deb")
        .arg("--control")
        .arg(&deb)
        .arg(control.path()))?;
    let mut scripts: Vec<String> = std::fs::read_dir(control.path())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<Result<_, _>>()?;
    scripts.retain(|n| n != "control" && n != "md5sums");
    assert!(scripts.is_empty(), "maintainer scripts: {scripts:?}");

    let root = tempfile::tempdir()?;
    dpkg_root(root.path())?;
    let dpkg = || {
        let mut cmd = Command::new("dpkg");
        cmd.arg("--root").arg(root.path());
        cmd
    };
    run(dpkg().arg("--install").arg(&deb))?;
    let installed = root.path().join("usr/bin/sluice-edge");
    let version = run(Command::new(root.path().join("usr/bin/sluice-agent")).arg("--version"))?;
    assert!(version.starts_with("agent "), "{version}");

    let state = tempfile::tempdir()?;
    let edge = EdgeProcess::spawn_command(
        command_at(&installed),
        state.path(),
        any_port(),
        any_port(),
        TOKEN,
    )
    .await?;
    // The process runs the installed file, not the build's.
    let exe = std::fs::read_link(format!("/proc/{}/exe", edge.pid()?))?;
    assert_eq!(exe, installed);
    let printed = edge.output();
    let metrics = printed
        .lines()
        .find_map(|l| l.trim().strip_prefix("Metrics:"))
        .map(|m| m.trim().trim_end_matches("/metrics").to_string())
        .ok_or_else(|| anyhow::anyhow!("no Metrics line:\n{printed}"))?;
    let health = client().get(format!("{metrics}/healthz")).send().await?;
    assert_eq!(health.status(), 200, "{}", edge.output());
    let status = edge.terminate(Duration::from_secs(10)).await?;
    assert!(status.success(), "{status}");

    run(dpkg().arg("--purge").arg("sluice"))?;
    assert!(
        !installed.exists(),
        "dpkg --purge left {}",
        installed.display()
    );
    let listed = run(dpkg().args(["--list"]))?;
    assert!(
        !listed
            .lines()
            .any(|l| l.split_whitespace().nth(1) == Some("sluice")),
        "{listed}"
    );
    Ok(())
}

/// scripts/docker-replay carries out the Dockerfile natively: the build context as `docker
/// build` sends it, the build stage's steps (the `cargo build --release` for real, into this
/// build's target dir so a second run is incremental), the runtime stage assembled into a
/// root, and its entry point started as the container would run it (chrooted, as user 10001,
/// with the image's environment, in network namespaces of its own), with a test edge.yaml
/// mounted; it must answer `/healthz` on the image's metrics port and exit 0 on SIGTERM.
///
/// The release build is minutes of both cores (docs/operating.md has the measured cost):
/// .config/nextest.toml runs this test alone, with a longer time limit.
#[test]
fn docker_replay_builds_the_image_natively_and_its_edge_answers_healthz() -> anyhow::Result<()> {
    tools::require(
        &["unshare", "ip", "apt-cache", "dpkg-query", "ldd"],
        "apt-get install util-linux iproute2",
    )?;
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("edge.yaml");
    std::fs::write(&config, format!("authtokens: [{TOKEN}]\n"))?;
    let log_path = dir.path().join("replay.log");
    let log = std::fs::File::create(&log_path)?;
    let mut child = Command::new(source("scripts/docker-replay"))
        .arg("--cargo-target-dir")
        .arg(target_dir()?)
        .arg("--mount")
        .arg(format!("{}:/etc/sluice/edge.yaml", config.display()))
        .args(["--probe", "http://127.0.0.1:9090/healthz"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    // Bounded: a cold release build of the tree on two cores is well under this.
    let deadline = Instant::now() + Duration::from_secs(40 * 60);
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if Instant::now() > deadline {
            child.kill()?;
            child.wait()?;
            break None;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    let shown = std::fs::read_to_string(&log_path)?;
    let tail: String = {
        let lines: Vec<&str> = shown.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    };
    // What the replay did, step by step, in the test's output (cargo's lines left out).
    let steps: Vec<&str> = shown
        .lines()
        .filter(|l| l.starts_with("docker-replay:"))
        .collect();
    eprintln!("{}", steps.join("\n"));
    match status {
        Some(s) if s.success() => {}
        Some(s) => anyhow::bail!("scripts/docker-replay: {s}\n{tail}"),
        None => anyhow::bail!("scripts/docker-replay ran for over 40 minutes\n{tail}"),
    }
    // It did what the Dockerfile says, not less.
    for step in [
        "the build context",
        "RUN cargo build --release --locked --bin edge --bin agent",
        "COPY --from=build /src/target/release/edge /usr/bin/sluice-edge",
        "as uid 10001 in /var/lib/sluice",
        "http://127.0.0.1:9090/healthz: 200",
        "exited 0 after SIGTERM",
    ] {
        assert!(shown.contains(step), "no {step:?} in:\n{tail}");
    }
    Ok(())
}

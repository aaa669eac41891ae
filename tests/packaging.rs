//! What a server admin installs: the systemd units in `deploy/systemd`, checked by systemd's
//! own `systemd-analyze verify` (every key known, every value valid, the command executable),
//! the Dockerfile, checked by hadolint (no Docker engine runs here), the Kubernetes manifests,
//! checked against Kubernetes' schemas, and the release tarballs scripts/release makes.

use sluice_e2e::process::bin;
use sluice_e2e::tools;
use std::path::Path;
use std::process::Command;

const SYSTEMD_SETUP: &str = "scripts/setup.d/73-systemd";
const HADOLINT_SETUP: &str = "scripts/setup.d/74-hadolint";
const KUBERNETES_VALIDATE_SETUP: &str = "scripts/setup.d/75-kubernetes-validate";

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

/// Runs scripts/release over this build's binaries (no build), writing into `dist`.
fn release_into(dist: &Path) -> anyhow::Result<()> {
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

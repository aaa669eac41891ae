//! What a server admin installs: the systemd units in `deploy/systemd`, checked by systemd's
//! own `systemd-analyze verify` (every key known, every value valid, the command executable),
//! and the Dockerfile, checked by hadolint (no Docker engine runs here).

use sluice_e2e::process::bin;
use sluice_e2e::tools;
use std::path::Path;
use std::process::Command;

const SYSTEMD_SETUP: &str = "scripts/setup.d/73-systemd";
const HADOLINT_SETUP: &str = "scripts/setup.d/74-hadolint";

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

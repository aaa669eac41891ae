//! Headless Chromium driven by a node script under `tests/node/` (playwright-core through
//! `tests/node/chromium.mjs`): run it with a deadline and read the JSON line it prints.

use anyhow::{bail, Context as _};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

/// How long one driver run may take (a cold Chromium start on a loaded machine included).
const LIMIT: Duration = Duration::from_secs(150);

/// Runs `node tests/node/SCRIPT ARGS…` and returns the `{"ok":true,…}` object it printed.
/// On failure the error holds the driver's stdout and stderr (steps, the error, and the path
/// of a screenshot saved under `target/browser-screenshots/`).
pub async fn drive(script: &str, args: &[&str]) -> anyhow::Result<serde_json::Value> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tokio::process::Command::new("node")
        .arg(root.join("tests/node").join(script))
        .args(args)
        .env(
            "SLUICE_SCREENSHOT_DIR",
            root.join("target").join("browser-screenshots"),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .output();
    let out = crate::within(LIMIT, script, out)
        .await?
        .with_context(|| format!("starting node {script} (is node installed?)"))?;
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    let result = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l.trim()).ok())
        .filter(|v| v["ok"] == true);
    match result {
        Some(v) if out.status.success() => Ok(v),
        _ => bail!(
            "browser driver {script} failed ({}):\n{stdout}\n{stderr}",
            out.status
        ),
    }
}

//! External programs some tests drive (pebble, h2load): found on `PATH`, or the test is skipped,
//! except under the project's test command, where a missing one fails the test.

/// Whether every program in `binaries` is on `PATH`. When one is missing the test should
/// skip (this prints why), unless `SLUICE_REQUIRE_TOOLS` or `CI` is set: `scripts/test`, which
/// installs them through `installer`, sets it, so a failed install can never pass as a skip.
pub fn installed(binaries: &[&str], installer: &str) -> anyhow::Result<bool> {
    let on_path = |b: &&str| {
        std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(b).is_file()))
    };
    if binaries.iter().all(on_path) {
        return Ok(true);
    }
    let what = binaries.join(", ");
    if std::env::var_os("SLUICE_REQUIRE_TOOLS").is_some() || std::env::var_os("CI").is_some() {
        anyhow::bail!("{what} not installed; {installer} installs it");
    }
    eprintln!("{what} not installed; skipping ({installer} installs it)");
    Ok(false)
}

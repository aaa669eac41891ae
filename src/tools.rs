//! External programs some tests drive (pebble, h2load, curl, Python's grpcio, redis, sshd):
//! found on `PATH` (or importable), or the test is skipped, except under the project's test
//! command, where a missing one fails the test; [`require`] always fails.

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
    if required() {
        anyhow::bail!("{what} not installed; {installer} installs it");
    }
    eprintln!("{what} not installed; skipping ({installer} installs it)");
    Ok(false)
}

/// Fails, naming `installer`, unless every program in `programs` is on `PATH` (or, for an
/// absolute path such as `/usr/sbin/sshd`, is a file there): for tests that must never skip.
pub fn require(programs: &[&str], installer: &str) -> anyhow::Result<()> {
    let found = |p: &&str| {
        let path = std::path::Path::new(p);
        if path.is_absolute() {
            return path.is_file();
        }
        std::env::var_os("PATH")
            .is_some_and(|dirs| std::env::split_paths(&dirs).any(|d| d.join(p).is_file()))
    };
    let missing: Vec<&str> = programs.iter().copied().filter(|p| !found(p)).collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} not installed; run {installer} (or every script in scripts/setup.d/)",
        missing.join(", ")
    );
    Ok(())
}

/// Whether `python3` is on `PATH` and can `import module` (checked by running it, at most
/// 20 s). Skips or fails like [`installed`] when not.
pub fn python_module(module: &str, installer: &str) -> anyhow::Result<bool> {
    let importable = std::process::Command::new("python3")
        .args(["-c", &format!("import {module}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()
        .and_then(|child| wait_bounded(child, std::time::Duration::from_secs(20)))
        .is_some_and(|status| status.success());
    if importable {
        return Ok(true);
    }
    if required() {
        anyhow::bail!("python3 cannot import {module}; {installer} installs it");
    }
    eprintln!("python3 cannot import {module}; skipping ({installer} installs it)");
    Ok(false)
}

/// Whether a missing tool must fail the test (the project's test command, CI) instead of
/// skipping it.
fn required() -> bool {
    std::env::var_os("SLUICE_REQUIRE_TOOLS").is_some() || std::env::var_os("CI").is_some()
}

/// Waits for `child` for at most `limit`; kills it and returns `None` past that.
fn wait_bounded(
    mut child: std::process::Child,
    limit: std::time::Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

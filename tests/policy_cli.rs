//! `agent policy check` and `agent policy test`: offline policy debugging from the real binary.

use sluice_e2e::process::bin;
use std::process::Command;

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/policies");

fn agent(args: &[&str]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(bin("agent")?).args(args).output()?;
    Ok((
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

#[test]
fn check_accepts_examples_and_locates_every_problem() -> anyhow::Result<()> {
    let (ok, stdout, _) = agent(&[
        "policy",
        "check",
        &format!("{EXAMPLES}/maintenance-page.yml"),
    ])?;
    assert!(ok, "{stdout}");
    assert!(stdout.contains("ok (1 request rules"), "{stdout}");

    let dir = tempfile::tempdir()?;
    let bad = dir.path().join("bad.yml");
    std::fs::write(
        &bad,
        "on_http_request:\n  - expressions: [\"req.method ==\"]\n    actions: [{type: deny}]\n  - actions: [{type: restrict-ips, config: {allow: [not-a-cidr]}}]\n",
    )?;
    let (ok, _, stderr) = agent(&["policy", "check", bad.to_str().unwrap_or_default()])?;
    assert!(!ok, "an invalid policy must fail the check");
    assert!(
        stderr.contains("on_http_request[0].expressions[0]"),
        "{stderr}"
    );
    assert!(
        stderr.contains("on_http_request[1].actions[0].config.allow[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("bad.yml:2:"), "{stderr}");
    Ok(())
}

#[test]
fn test_shows_matched_rules_and_the_outcome() -> anyhow::Result<()> {
    let file = format!("{EXAMPLES}/basic-auth-cors.yml");
    let (ok, stdout, stderr) = agent(&["policy", "test", &file, "--request", "GET /private"])?;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("matched"), "{stdout}");
    assert!(
        stdout.contains("401"),
        "no credentials must be challenged: {stdout}"
    );

    let (ok, stdout, _) = agent(&[
        "policy",
        "test",
        &file,
        "--request",
        "OPTIONS /private",
        "-H",
        "Origin: https://app.example",
        "-H",
        "Access-Control-Request-Method: POST",
    ])?;
    assert!(ok);
    assert!(
        stdout.contains("forwarded upstream"),
        "CORS preflight passes: {stdout}"
    );
    Ok(())
}

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

#[test]
fn test_takes_secrets_from_flags_and_never_prints_them() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("secret.yml");
    std::fs::write(
        &file,
        "on_http_request:\n  - actions:\n      - type: add-headers\n        config: {headers: {x-api-key: \"${secrets.get('prod', 'api-key')}\"}}\n      - type: log\n        config: {metadata: {key: \"${secrets.get('prod', 'api-key')}\"}}\n",
    )?;
    let file = file.to_str().unwrap_or_default();
    // `check` leaves secrets to the edge.
    let (ok, stdout, stderr) = agent(&["policy", "check", file])?;
    assert!(ok, "{stdout}{stderr}");
    let (ok, stdout, stderr) = agent(&[
        "policy",
        "test",
        file,
        "--secret",
        "prod.api-key=flag-secret-value",
    ])?;
    assert!(ok, "{stderr}");
    assert!(stdout.contains("x-api-key: <secret>"), "{stdout}");
    assert!(!stdout.contains("flag-secret-value"), "{stdout}");
    // Without the flag: the missing secret is named, with how to give it.
    let (ok, _, stderr) = agent(&["policy", "test", file])?;
    assert!(!ok);
    assert!(stderr.contains("secret.yml:4:"), "{stderr}");
    assert!(
        stderr.contains("no secret vault `prod` (for secret `api-key`)"),
        "{stderr}"
    );
    assert!(stderr.contains("--secret VAULT.NAME=VALUE"), "{stderr}");
    Ok(())
}

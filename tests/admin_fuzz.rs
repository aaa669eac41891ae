//! schemathesis, a third-party API fuzzer (PyPI; `scripts/setup.d/77-schemathesis`), runs a
//! bounded pass against the admin API from the OpenAPI document the listener serves: no 5xx,
//! every status, content type, header and body as the document says, and invalid input
//! refused.

use anyhow::Context;
use sluice_e2e::admin::{AdminServer, ADMIN_TOKEN};
use sluice_e2e::{tools, within};
use std::process::Stdio;
use std::time::Duration;
use tokio::process::Command;

/// Test cases per operation and phase: about 21 operations, so a pass stays well under a
/// minute on the two shared cores.
const EXAMPLES: &str = "25";
/// Fixed, so a failure reproduces; change it to explore other inputs.
const SEED: &str = "20";
/// The whole pass, schemathesis's start-up included.
const LIMIT: Duration = Duration::from_secs(150);

/// What schemathesis checks. `positive_data_acceptance` is left out: inputs valid by the
/// schema's types may still be refused by the control plane (a hostname not under the edge's
/// domain is a 400), which the document cannot express. `ignored_auth` is left out here
/// because it would spend the address's failure budget; tests/admin.rs covers auth.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,negative_data_rejection,\
unsupported_method";

#[tokio::test]
async fn schemathesis_finds_no_server_error_or_schema_violation() -> anyhow::Result<()> {
    if !tools::installed(&["schemathesis"], "scripts/setup.d/77-schemathesis")? {
        return Ok(());
    }
    let server = AdminServer::start().await?;
    // schemathesis keeps a database of examples in its working directory: not in the repo.
    let dir = tempfile::tempdir()?;
    let mut cmd = Command::new("schemathesis");
    cmd.arg("run")
        .arg(format!("{}/openapi.json", server.url()))
        .args(["--header", &format!("Authorization: Bearer {ADMIN_TOKEN}")])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", EXAMPLES, "--seed", SEED])
        .args(["--workers", "1", "--request-timeout", "5"])
        .args(["--max-failures", "5"])
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env("SCHEMATHESIS_HOOKS", "")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = within(LIMIT, "schemathesis", cmd.output())
        .await?
        .context("running schemathesis")?;
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // The summary (phases, test cases, seed) in the test's output, passed or not.
    eprintln!("{report}");
    assert!(out.status.success(), "schemathesis failed (report above)");
    // It must have tested the API, not merely loaded the document.
    assert!(report.contains("passed"), "{report}");
    Ok(())
}

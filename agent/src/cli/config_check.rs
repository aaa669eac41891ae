//! `agent config check`: validates an `agent.yml` offline and prints every problem.

use sluice_agent::agent_file;
use std::path::Path;

/// Checks the file at `path`; prints `PATH: ok (N endpoints)` when it is valid.
pub fn config_check(path: &Path) -> anyhow::Result<()> {
    let config = agent_file::load(path)?.check()?;
    println!(
        "{}: ok ({} endpoints)",
        path.display(),
        config.endpoints.len()
    );
    Ok(())
}

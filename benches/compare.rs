//! Comparison harness: the same loads against the upstream directly, through Sluice (without and
//! with the 10-rule policy), through rathole and through bore, measured in one run so the ratios
//! hold on a noisy machine. Run it with `./scripts/bench`, which builds release binaries and
//! installs wrk, rathole and bore when missing.
//!
//! Every load is bounded in time (`SLUICE_BENCH_SECS`, default 10 s per HTTP scenario) and in
//! count. The table goes to stdout, to `benches/results/DATE.md` with the machine's description,
//! and between the `bench:start`/`bench:end` markers of README.md. Quick checks (table to stdout
//! only): `SLUICE_BENCH_PATHS=direct,sluice,bore` runs a subset of the paths (labels as in the
//! table), `SLUICE_BENCH_SCALE=0` skips the memory and restart runs, and
//! `SLUICE_BENCH_LOADS=small,download` runs only the named loads (see `loads::run_all`).
//! The TCP section (`compare/tcp.rs`) follows: `SLUICE_BENCH_TCP=0` skips it, and
//! `SLUICE_BENCH_PATHS=none SLUICE_BENCH_SCALE=0` runs it alone.

#[path = "compare/echo_process.rs"]
mod echo_process;
#[path = "compare/loads.rs"]
mod loads;
#[path = "compare/paths.rs"]
mod paths;
#[path = "compare/report.rs"]
mod report;
#[path = "compare/scale.rs"]
mod scale;
#[path = "compare/tcp.rs"]
mod tcp;

use paths::{Path, PathKind};
use report::Table;
use sluice_e2e::upstream;
use std::time::Duration;

/// Whether `name` is in the comma-separated list in the environment variable `var` (`default`
/// when it is unset): how quick checks pick paths and loads.
fn selected_or(var: &str, name: &str, default: bool) -> bool {
    std::env::var(var).map_or(default, |list| list.split(',').any(|l| l.trim() == name))
}

/// [`selected_or`], everything selected when the variable is unset.
fn selected(var: &str, name: &str) -> bool {
    selected_or(var, name, true)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    echo_process::serve_if_child().await?;
    let secs = sluice_e2e::load::bench_secs(10);
    let dir = tempfile::tempdir()?;
    let app = upstream::app("bench").await?;
    let ws = echo_process::spawn().await?;
    let mut table = Table::default();
    for kind in PathKind::ALL
        .iter()
        .copied()
        .filter(|k| selected_or("SLUICE_BENCH_PATHS", k.label(), k.by_default()))
    {
        eprintln!("== {}", kind.label());
        let path = Path::start(kind, app.addr, ws.addr, dir.path()).await?;
        table.record(
            kind,
            loads::run_all(&path, Duration::from_secs(secs)).await?,
        );
        path.stop().await?;
    }
    let scale = if std::env::var("SLUICE_BENCH_SCALE").as_deref() == Ok("0") {
        scale::Scale::default()
    } else {
        eprintln!("== scale");
        scale::run(dir.path(), app.addr, ws.addr).await?
    };
    let tcp = if std::env::var("SLUICE_BENCH_TCP").as_deref() == Ok("0") {
        tcp::TcpTable::default()
    } else {
        tcp::run(dir.path(), Duration::from_secs(secs)).await?
    };
    let text = table.render(&scale) + &tcp.render();
    println!("{text}");
    let partial = [
        "SLUICE_BENCH_PATHS",
        "SLUICE_BENCH_SCALE",
        "SLUICE_BENCH_LOADS",
        "SLUICE_BENCH_TCP",
    ]
    .iter()
    .any(|v| std::env::var_os(v).is_some());
    if !partial {
        report::save(&text)?;
    }
    Ok(())
}

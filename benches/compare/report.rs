//! The results table: absolute numbers with ratios against direct and against rathole, written
//! to `benches/results/` with the machine's description and into README.md.

use crate::loads::Measured;
use crate::paths::PathKind;
use crate::scale::Scale;
use std::fmt::Write as _;
use std::time::Duration;

const README_START: &str = "<!-- bench:start -->";
const README_END: &str = "<!-- bench:end -->";

/// Per-path measurements in run order.
#[derive(Default)]
pub struct Table {
    rows: Vec<(PathKind, Measured)>,
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

impl Table {
    pub fn record(&mut self, kind: PathKind, m: Measured) {
        self.rows.push((kind, m));
    }

    fn get(&self, kind: PathKind) -> Option<&Measured> {
        self.rows.iter().find(|(k, _)| *k == kind).map(|(_, m)| m)
    }

    /// The markdown table and the Sluice-only lines.
    pub fn render(&self, scale: &Scale) -> String {
        let direct = self.get(PathKind::Direct).cloned().unwrap_or_default();
        let rathole = self.get(PathKind::Rathole).cloned().unwrap_or_default();
        let ratio = |v: f64, base: f64| {
            if base > 0.0 {
                format!("{:.2}", v / base)
            } else {
                "–".into()
            }
        };
        let mut out = String::new();
        let _ = writeln!(
            out,
            "| path | small GETs req/s | vs direct | vs rathole | tunnel CPU µs per GET | p50 / p99 ms (32 conns) | p50 / p99 ms at 2,000 req/s | 256×3 slow requests, s | 1 GiB down MiB/s | vs rathole | 1 GiB up MiB/s | ws RTT p50 / p99 ms | errors |"
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
        for (kind, m) in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {:.0} | {} | {} | {} | {} / {} | {} / {} | {:.2} | {:.0} | {} | {:.0} | {} / {} | {} |",
                kind.label(),
                m.small_rps,
                ratio(m.small_rps, direct.small_rps),
                ratio(m.small_rps, rathole.small_rps),
                m.small_cpu_per_request
                    .map_or("–".to_string(), |d| format!("{:.0}", d.as_secs_f64() * 1e6)),
                ms(m.small_p50),
                ms(m.small_p99),
                ms(m.fixed_p50),
                ms(m.fixed_p99),
                m.slow_secs,
                m.download_mibs,
                ratio(m.download_mibs, rathole.download_mibs),
                m.upload_mibs,
                ms(m.ws_p50),
                ms(m.ws_p99),
                m.errors,
            );
        }
        let _ = writeln!(out);
        self.render_forwarding(&mut out);
        for (agents, rss) in &scale.edge_rss_by_agents {
            let _ = writeln!(
                out,
                "- Edge RSS with {agents} idle agents: {} KiB",
                rss >> 10
            );
        }
        if let Some(per) = scale.per_agent_bytes() {
            let _ = writeln!(
                out,
                "- Edge memory per idle agent: {:.1} KiB (goal < 64 KiB)",
                per / 1024.0
            );
        }
        if let Some((agents, _)) = scale.edge_rss_by_agents.last() {
            let _ = writeln!(
                out,
                "- Edge CPU with {agents} idle agents: {:.1} % of one core",
                scale.edge_idle_cpu * 100.0
            );
        }
        let (open, edge, agent) = scale.websockets;
        let _ = writeln!(
            out,
            "- {open} open websockets: edge RSS {} MiB, agent RSS {} MiB",
            edge >> 20,
            agent >> 20
        );
        let _ = writeln!(
            out,
            "- URL answers again {} ms after the edge exits (SIGTERM, restart on the same ports; goal < 2,000 ms)",
            scale.restart.as_millis()
        );
        out
    }
}

impl Table {
    /// The cost of the hop between edges: the forwarded path against the path entering the
    /// edge with the agents, in the same run (goal: ≥ 0.8× the req/s, p99 within 1 ms).
    fn render_forwarding(&self, out: &mut String) {
        let (Some(owner), Some(forwarded)) = (
            self.get(PathKind::SluiceClusterOwner),
            self.get(PathKind::SluiceClusterForwarded),
        ) else {
            return;
        };
        if owner.small_rps <= 0.0 {
            return;
        }
        let extra = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1e3;
        let _ = writeln!(
            out,
            "- Forwarded between edges: small GETs {:.2}× the edge with the agent (goal ≥ 0.8), p99 {:+.2} ms (32 conns) and {:+.2} ms (2,000 req/s) (goal ≤ 1 ms); 1 GiB down {:.2}×, up {:.2}×",
            forwarded.small_rps / owner.small_rps,
            extra(forwarded.small_p99, owner.small_p99),
            extra(forwarded.fixed_p99, owner.fixed_p99),
            forwarded.download_mibs / owner.download_mibs.max(f64::MIN_POSITIVE),
            forwarded.upload_mibs / owner.upload_mibs.max(f64::MIN_POSITIVE),
        );
    }
}

/// The machine the numbers come from.
fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{cores} cores ({cpu}), Linux {}, load average at the end: {}",
        kernel.trim(),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

/// Writes `benches/results/<unix time>.md` and replaces the table in README.md.
pub fn save(table: &str) -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let when = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs();
    let block = format!(
        "Measured by `./scripts/bench` on {}; release build, everything on loopback.\n\n{table}",
        machine()
    );
    let results = root.join("benches/results");
    std::fs::create_dir_all(&results)?;
    std::fs::write(results.join(format!("{when}.md")), &block)?;
    let readme_path = root.join("README.md");
    let readme = std::fs::read_to_string(&readme_path)?;
    if let (Some(a), Some(b)) = (readme.find(README_START), readme.find(README_END)) {
        let updated = format!("{}{README_START}\n{block}{}", &readme[..a], &readme[b..]);
        std::fs::write(readme_path, updated)?;
    }
    Ok(())
}

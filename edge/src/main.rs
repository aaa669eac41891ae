//! `edge` binary: parse flags, set up logging, run [`sluice_edge::start`] until a signal; or,
//! with `edge admin …`, call a running edge's admin API (`cli/`).

mod cli;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command};
use sluice_edge::{EdgeArgs, EdgeConfig, LogFormat};
use std::process::ExitCode;
use tokio::signal::unix::{signal, SignalKind};
use tracing_appender::non_blocking::WorkerGuard;

/// jemalloc rather than glibc's malloc: glibc's allocator was about 9 % of the tunnel's CPU
/// under small requests (`benches/results/profile-small-gets.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Admin(args)) => cli::admin::run(args).await,
        None => run(cli.edge).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: EdgeArgs) -> anyhow::Result<()> {
    let config = EdgeConfig::from_args(args)?;
    let _log_writer = init_tracing(config.log_format);
    // Handlers first: a SIGTERM that arrives once the addresses are printed (a supervisor or a
    // test reacting to them) must stop the edge cleanly, never kill it by the default action.
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let edge = sluice_edge::start(config).await.context("starting edge")?;
    println!("Sluice edge");
    println!("  HTTP:     http://{}", edge.http_addr);
    if let Some(https) = edge.https_addr {
        println!("  HTTPS:    https://{https}");
    }
    println!("  Tunnel:   {} (QUIC)", edge.tunnel_addr);
    if let Some(m) = edge.metrics_addr {
        println!("  Metrics:  http://{m}/metrics");
    }
    if let Some(a) = edge.admin_addr {
        println!("  Admin:    http://{a}");
    }
    println!("  Cert:     {}", edge.tunnel_cert_path.display());
    println!("  SHA-256:  {}", edge.tunnel_fingerprint);
    if let Some(dev) = &edge.dev_token {
        if dev.generated {
            println!("  Dev authtoken (shown once): {}", dev.token);
        }
        println!("  Dev authtoken file: {}", dev.path.display());
    }
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    edge.shutdown().await;
    Ok(())
}

/// Installs the log subscriber. Lines go to stderr from a background thread, in batches, until
/// the returned guard is dropped: a request never waits for a write system call (logging was
/// 6–9 % of the tunnel's CPU in the small-GET profile, part of it these writes). Lines are never
/// dropped; when the thread falls far behind, logging waits.
fn init_tracing(format: LogFormat) -> WorkerGuard {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,pingora=warn"));
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::new(std::io::stderr()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(writer);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Term => builder.init(),
    }
    guard
}

//! The binary's log subscriber: `--log` destination and `--log-format`, written off the
//! request path by a background thread.

use super::args::LogArgs;
use anyhow::Context;
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

/// Installs the log subscriber; log lines are written by a background thread until the returned
/// guard is dropped (see [`background`]).
pub fn init_logging(log: &LogArgs) -> anyhow::Result<WorkerGuard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let format = log.log_format.as_str();
    // One subscriber type per format, so the writer is installed in each arm.
    let (writer, guard) = match log.log.as_str() {
        "stdout" => background(std::io::stdout()),
        "stderr" => background(std::io::stderr()),
        path => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("--log {path}"))?;
            background(file)
        }
    };
    match format {
        "json" => builder.json().with_writer(writer).init(),
        "logfmt" => builder
            .event_format(tracing_logfmt::EventsFormatter::default())
            .fmt_fields(tracing_logfmt::FieldsFormatter::default())
            .with_writer(writer)
            .init(),
        _ => builder.with_ansi(false).with_writer(writer).init(),
    }
    Ok(guard)
}

/// A writer whose lines a background thread writes to `out` in batches: a request never waits
/// for a write system call, and a burst of requests costs one write instead of one per line
/// (logging was 6–9 % of the tunnel's CPU in the small-GET profile, part of it these writes).
/// Lines are never dropped: when the thread falls far behind, logging waits.
fn background<W: std::io::Write + Send + 'static>(out: W) -> (NonBlocking, WorkerGuard) {
    tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::BufWriter::new(out))
}

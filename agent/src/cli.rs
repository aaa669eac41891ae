//! Command-line interface of the `agent` binary.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Sluice agent: expose a local app through a Sluice edge.
#[derive(Debug, Parser)]
#[command(name = "agent", version)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Expose a local HTTP app: `agent http 8080`.
    Http(HttpArgs),
}

/// Where logs go and how they look.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log destination: stdout, stderr, or a file path.
    #[arg(long, default_value = "stderr")]
    pub log: String,
    /// Log format: term or json.
    #[arg(long, default_value = "term", value_parser = ["term", "json"])]
    pub log_format: String,
}

/// `agent http` flags.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Local app: PORT, HOST:PORT, http://HOST[:PORT] or https://HOST[:PORT].
    pub upstream: String,
    /// Edge QUIC address, HOST:PORT.
    #[arg(long, env = "SLUICE_EDGE", default_value = "127.0.0.1:4443")]
    pub edge: String,
    /// Authtoken accepted by the edge.
    #[arg(long, env = "SLUICE_AUTHTOKEN", hide_env_values = true)]
    pub authtoken: String,
    /// Trust this PEM certificate/CA for the edge (e.g. the edge's self-signed tunnel.crt).
    #[arg(long, env = "SLUICE_EDGE_CA")]
    pub edge_ca: Option<PathBuf>,
    /// Public URL: NAME, NAME.DOMAIN or http://NAME.DOMAIN (random name when absent).
    #[arg(long)]
    pub url: Option<String>,
    /// Host header sent upstream: `rewrite` (the upstream's host) or a literal value.
    #[arg(long)]
    pub host_header: Option<String>,
    /// Time the upstream may take to answer before the client gets a 504, e.g. `30s`.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

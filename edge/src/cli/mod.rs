//! The `edge` binary's command line: the edge's own flags ([`EdgeArgs`], in the library), and
//! the `admin` subcommands that call a running edge's admin API.

pub mod admin;
pub mod admin_args;
pub mod client;
pub mod table;

use clap::{Parser, Subcommand};
use sluice_edge::EdgeArgs;

/// `edge [FLAGS]` runs the edge; `edge admin …` talks to one that runs.
#[derive(Parser)]
#[command(
    name = "edge",
    version = env!("SLUICE_VERSION"),
    about = "Sluice edge: public HTTP in, agents over QUIC"
)]
pub struct Cli {
    /// The edge's flags (used when no subcommand is given).
    #[command(flatten)]
    pub edge: EdgeArgs,
    /// What to do instead of running the edge.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Subcommand)]
pub enum Command {
    /// Call a running edge's admin API: credentials, sessions, reserved names, endpoints.
    Admin(admin_args::AdminArgs),
}

//! `agent` binary: parse flags, run the command (logging is set up by the commands that run the
//! agent), and turn its result into the exit code. The commands are in `cli/`.

mod cli;
mod status;

use clap::Parser;
use cli::args::{Cli, Command, ConfigCommand};
use std::process::ExitCode;

/// jemalloc rather than glibc's malloc: glibc's allocator was about 9 % of the tunnel's CPU
/// under small requests (`benches/results/profile-small-gets.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let result = match Cli::parse().command {
        Command::Http(args) => cli::http::http(*args).await,
        Command::Tcp(args) => cli::raw::raw(*args, "tcp").await,
        Command::Tls(args) => cli::raw::raw(*args, "tls").await,
        Command::Start(args) => cli::start::start(args).await,
        Command::Config(ConfigCommand::Check { config }) => {
            cli::config_check::config_check(&config)
        }
        Command::Policy(cmd) => cli::policy::policy(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `agent start`: the selected endpoints of an `agent.yml` over one edge connection.

use super::args::StartArgs;
use super::logging::init_logging;
use super::run::{run_until_signal, Output};
use sluice_agent::agent_file::{self, Selection};
use sluice_proto::control::Secret;

/// Runs `agent start` until Ctrl-C or SIGTERM.
pub async fn start(args: StartArgs) -> anyhow::Result<()> {
    let _log_writer = init_logging(&args.log)?;
    let selection = if args.all {
        Selection::All
    } else {
        Selection::Names(args.names)
    };
    let file = agent_file::load(&args.config)?;
    let config = file.agent_config(&selection, args.authtoken.map(Secret))?;
    run_until_signal(
        config,
        None,
        Output::Lines {
            json: args.log.log_format == "json",
        },
    )
    .await
}

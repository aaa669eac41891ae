//! Runs the agent until Ctrl-C or SIGTERM, reporting to the user as plain (or JSON) lines or on
//! the live status screen.

use super::args::LogArgs;
use super::inspect_args::InspectArgs;
use super::logging::init_logging;
use crate::status;
use crate::status::stats::{Stats, StatsObserver};
use crate::status::terminal::StatusScreen;
use anyhow::Context;
use sluice_agent::inspect::Inspector;
use sluice_agent::{AgentConfig, AgentEvent};
use std::io::IsTerminal;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tracing_appender::non_blocking::WorkerGuard;

/// How the running agent reports to the user.
pub enum Output {
    /// Plain lines (JSON with `--log-format json`).
    Lines {
        /// One JSON object per line instead of text.
        json: bool,
    },
    /// The live status screen, fed by these counters.
    Screen(Arc<Stats>),
}

/// Whether to draw the status screen, and the logging that goes with it: none when logs would
/// go to the terminal the screen is drawn on (they would tear it); a redirected stderr or a
/// file still logs. Keep the guard until the agent stops.
pub fn screen_and_logging(log: &LogArgs) -> anyhow::Result<(bool, Option<WorkerGuard>)> {
    let screen = status::wanted(&log.log);
    let guard = if screen && log.log == "stderr" && std::io::stderr().is_terminal() {
        None
    } else {
        Some(init_logging(log)?)
    };
    Ok((screen, guard))
}

/// The status screen (its counters added to `config`'s observers) or plain lines.
pub fn output(screen: bool, log: &LogArgs, config: &mut AgentConfig) -> Output {
    if screen {
        let stats = Stats::new();
        config
            .observers
            .push(Arc::new(StatsObserver(stats.clone())));
        Output::Screen(stats)
    } else {
        Output::Lines {
            json: log.log_format == "json",
        }
    }
}

/// Starts the inspector unless `--inspect=false`, printing its address in line mode. When
/// every default port is taken the agent runs without it: forwarding matters more.
pub async fn start_inspector(
    args: &InspectArgs,
    config: &mut AgentConfig,
    output: &Output,
) -> anyhow::Result<Option<Inspector>> {
    let Some(c) = args.config() else {
        return Ok(None);
    };
    let inspector = match Inspector::start(c, config).await {
        Ok(inspector) => inspector,
        Err(e) if args.inspect_addr.is_none() => {
            eprintln!("warning: {e}; running without the inspector");
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if let Output::Lines { json } = output {
        print_inspector(&inspector, *json);
    }
    Ok(Some(inspector))
}

/// Runs `config` until a signal (or Ctrl-C on the status screen) stops it cleanly, or it fails.
pub async fn run_until_signal(
    config: AgentConfig,
    inspector: Option<Inspector>,
    output: Output,
) -> anyhow::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);
    let json = matches!(output, Output::Lines { json: true });
    let screen = match output {
        Output::Screen(stats) => {
            let stop = stop_tx.clone();
            let url = inspector.as_ref().map(|i| format!("http://{}", i.addr()));
            Some(StatusScreen::start(
                config.edges().collect::<Vec<_>>().join(", "),
                url,
                stats,
                move || {
                    let _ = stop.send(true);
                },
            )?)
        }
        Output::Lines { .. } => None,
    };
    let (events_tx, mut events) = mpsc::unbounded_channel();
    let agent = tokio::spawn(sluice_agent::run(config, Some(events_tx), stop_rx));
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        tokio::select! { _ = term.recv() => {}, _ = int.recv() => {} }
        let _ = stop_tx.send(true);
    });
    while let Some(event) = events.recv().await {
        if let Some(inspector) = &inspector {
            inspector.event(&event);
        }
        match &screen {
            Some(screen) => screen.event(&event),
            None => print_event(&event, json),
        }
    }
    let result = agent.await.context("agent task");
    if let Some(screen) = screen {
        screen.finish().context("restoring the terminal")?;
        println!("Session closed");
    }
    result?.map_err(Into::into)
}

/// Prints the inspector's URL as a line (or a JSON object).
pub fn print_inspector(inspector: &Inspector, json: bool) {
    let url = format!("http://{}", inspector.addr());
    if json {
        println!("{}", serde_json::json!({ "inspector": url }));
    } else {
        println!("Inspector  {url}");
    }
}

/// Prints the forwarding lines when the agent first comes online, and one line per link
/// whenever one comes up: its transport, and in a cluster the edge it goes to.
fn print_event(event: &AgentEvent, json: bool) {
    let AgentEvent::Online {
        session_id,
        endpoints,
        reconnected,
        link,
        edge,
    } = event
    else {
        return;
    };
    let transport = link.transport();
    if !reconnected {
        for (bound, upstream) in endpoints {
            if json {
                println!(
                    "{}",
                    serde_json::json!({ "url": bound.url, "upstream": upstream, "transport": transport })
                );
            } else {
                println!("Forwarding {} -> {}", bound.url, upstream);
            }
        }
    }
    match (&edge.edge_id, json) {
        (_, true) => println!(
            "{}",
            serde_json::json!({ "link": {
                "slot": edge.slot, "edge": edge.addr.to_string(), "edge_id": edge.edge_id,
                "transport": transport, "session_id": session_id,
            } })
        ),
        (None, false) => println!("Transport  {}", transport.for_people()),
        (Some(id), false) => println!(
            "Link       {id} at {}, {}",
            edge.addr,
            transport.for_people()
        ),
    }
}

//! `agent` binary: parse flags, set up logging, run the agent until Ctrl-C or SIGTERM.

mod cli;
mod inspect_args;
mod status;

use anyhow::Context;
use clap::Parser;
use cli::{Cli, Command, ConfigCommand, HttpArgs, LogArgs, PolicyCommand, StartArgs};
use sluice_agent::agent_file::{self, Selection};
use sluice_agent::endpoint_spec::{EndpointSpec, ProtocolName, UpstreamSpec, UpstreamUrl};
use sluice_agent::inspect::Inspector;
use sluice_agent::policy_input;
use sluice_agent::{AgentConfig, AgentEvent};
use sluice_policy::dry_run;
use sluice_proto::control::Secret;
use status::stats::{Stats, StatsObserver};
use status::terminal::StatusScreen;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::{mpsc, watch};
use tracing_appender::non_blocking::{NonBlocking, WorkerGuard};

/// jemalloc rather than glibc's malloc: glibc's allocator was about 9 % of the tunnel's CPU
/// under small requests (`benches/results/profile-small-gets.md`).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Http(args) => http(*args).await,
        Command::Start(args) => start(args).await,
        Command::Config(ConfigCommand::Check { config }) => config_check(&config),
        Command::Policy(cmd) => policy(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// How the running agent reports to the user.
enum Output {
    /// Plain lines (JSON with `--log-format json`).
    Lines { json: bool },
    /// The live status screen, fed by these counters.
    Screen(Arc<Stats>),
}

async fn http(args: HttpArgs) -> anyhow::Result<()> {
    let screen = status::wanted(&args.log.log);
    // Log lines on the terminal would tear the screen; a redirected stderr or a file still logs.
    let _log_writer = if screen && args.log.log == "stderr" && std::io::stderr().is_terminal() {
        None
    } else {
        Some(init_logging(&args.log)?)
    };
    let spec = EndpointSpec {
        name: None,
        url: args.url,
        upstream: UpstreamSpec {
            url: UpstreamUrl(args.upstream),
            protocol: Some(ProtocolName(
                args.upstream_opts
                    .upstream_protocol
                    .parse()
                    .map_err(anyhow::Error::msg)?,
            )),
            host_header: args.host_header,
            tls_verify: args.upstream_opts.upstream_tls_verify,
            tls_verify_cas: args.upstream_opts.upstream_tls_verify_cas,
        },
        traffic_policy: None,
        traffic_policy_file: args.policy.traffic_policy_file.clone(),
        shorthand: args.policy.shorthand(),
    };
    // Validated here so a bad upstream or policy is reported before anything goes online.
    let endpoint = spec.into_config(Path::new(""), "flags")?;
    let mut config = AgentConfig::new(args.edge, args.authtoken, endpoint);
    config.edge_ca = args.edge_ca;
    config.upstream_timeout = args.upstream_timeout;
    config.max_concurrent_requests = args.max_concurrent_requests;
    let json = args.log.log_format == "json";
    let output = if screen {
        let stats = Stats::new();
        config
            .observers
            .push(Arc::new(StatsObserver(stats.clone())));
        Output::Screen(stats)
    } else {
        Output::Lines { json }
    };
    let inspector = match args.inspect.config() {
        None => None,
        Some(c) => match Inspector::start(c, &mut config).await {
            Ok(inspector) => Some(inspector),
            // Every default port taken: forwarding matters more than inspecting.
            Err(e) if args.inspect.inspect_addr.is_none() => {
                eprintln!("warning: {e}; running without the inspector");
                None
            }
            Err(e) => return Err(e.into()),
        },
    };
    if let (Some(inspector), Output::Lines { json }) = (&inspector, &output) {
        print_inspector(inspector, *json);
    }
    run_until_signal(config, inspector, output).await
}

async fn start(args: StartArgs) -> anyhow::Result<()> {
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

fn config_check(path: &Path) -> anyhow::Result<()> {
    let config = agent_file::load(path)?.check()?;
    println!(
        "{}: ok ({} endpoints)",
        path.display(),
        config.endpoints.len()
    );
    Ok(())
}

fn policy(cmd: PolicyCommand) -> anyhow::Result<()> {
    match cmd {
        PolicyCommand::Check { file } => {
            let (_, policy) = policy_input::load_file(&file)?;
            let (request, response) = policy.rule_counts();
            println!(
                "{}: ok ({request} request rules, {response} response rules)",
                file.display()
            );
        }
        PolicyCommand::Test {
            file,
            request,
            headers,
            client_ip,
            upstream_status,
        } => {
            let (_, policy) = policy_input::load_file(&file)?;
            let engine = sluice_policy::Engine::new(vec![policy]);
            let mut req = dry_run::DryRunRequest::parse(&request, &headers, client_ip)?;
            req.upstream_status = upstream_status;
            print!("{}", dry_run::run(&engine, &req)?);
        }
    }
    Ok(())
}

async fn run_until_signal(
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
                config.edge.clone(),
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
        if let (Some(inspector), AgentEvent::Online { endpoints, .. }) = (&inspector, &event) {
            inspector.set_online(endpoints);
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

fn print_inspector(inspector: &Inspector, json: bool) {
    let url = format!("http://{}", inspector.addr());
    if json {
        println!("{}", serde_json::json!({ "inspector": url }));
    } else {
        println!("Inspector  {url}");
    }
}

fn print_event(event: &AgentEvent, json: bool) {
    let AgentEvent::Online {
        endpoints,
        reconnected: false,
        ..
    } = event
    else {
        return;
    };
    for (bound, upstream) in endpoints {
        if json {
            println!(
                "{}",
                serde_json::json!({ "url": bound.url, "upstream": upstream })
            );
        } else {
            println!("Forwarding {} -> {}", bound.url, upstream);
        }
    }
}

/// Installs the log subscriber; log lines are written by a background thread until the returned
/// guard is dropped (see [`background`]).
fn init_logging(log: &LogArgs) -> anyhow::Result<WorkerGuard> {
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

//! `agent http`: one endpoint from flags, with the request inspector and, on a terminal, the
//! status screen.

use super::args::HttpArgs;
use super::logging::init_logging;
use super::run::{print_inspector, run_until_signal, Output};
use crate::status;
use crate::status::stats::{Stats, StatsObserver};
use sluice_agent::endpoint_spec::{EndpointSpec, ProtocolName, UpstreamSpec, UpstreamUrl};
use sluice_agent::inspect::Inspector;
use sluice_agent::AgentConfig;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;

/// Runs `agent http` until Ctrl-C or SIGTERM.
pub async fn http(args: HttpArgs) -> anyhow::Result<()> {
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
            protocol: Some(ProtocolName(args.upstream_opts.upstream_protocol.parse()?)),
            host_header: args.host_header,
            tls_verify: args.upstream_opts.upstream_tls_verify,
            tls_verify_cas: args.upstream_opts.upstream_tls_verify_cas,
            proxy_protocol: None,
        },
        traffic_policy: None,
        traffic_policy_file: args.policy.traffic_policy_file.clone(),
        pooling_enabled: args.pooling_enabled,
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

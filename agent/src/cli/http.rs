//! `agent http`: one endpoint from flags, with the request inspector and, on a terminal, the
//! status screen.

use super::args::HttpArgs;
use super::run::{output, run_until_signal, screen_and_logging, start_inspector};
use sluice_agent::endpoint_spec::{EndpointSpec, ProtocolName, UpstreamSpec, UpstreamUrl};
use std::path::Path;

/// Runs `agent http` until Ctrl-C or SIGTERM.
pub async fn http(args: HttpArgs) -> anyhow::Result<()> {
    let (screen, _log_writer) = screen_and_logging(&args.log)?;
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
    let mut config = args.link.config(endpoint)?;
    config.upstream_timeout = args.upstream_timeout;
    config.max_concurrent_requests = args.max_concurrent_requests;
    let output = output(screen, &args.log, &mut config);
    let inspector = start_inspector(&args.inspect, &mut config, &output).await?;
    run_until_signal(config, inspector, output).await
}

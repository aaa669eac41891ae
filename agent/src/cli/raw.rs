//! `agent tcp` and `agent tls`: one endpoint whose connections go to a TCP service byte for
//! byte, on one of the edge's TCP ports or by TLS name on its HTTPS port. The inspector and, on
//! a terminal, the status screen list the connections.

use super::args::RawArgs;
use super::run::{output, run_until_signal, screen_and_logging, start_inspector};
use sluice_agent::endpoint_spec::{EndpointSpec, ProxyProtocolName, UpstreamSpec, UpstreamUrl};
use sluice_agent::sdk::raw_endpoint_url;
use std::path::Path;

/// Runs `agent tcp` (`scheme` "tcp") or `agent tls` ("tls") until Ctrl-C or SIGTERM.
pub async fn raw(args: RawArgs, scheme: &'static str) -> anyhow::Result<()> {
    let (screen, _log_writer) = screen_and_logging(&args.log)?;
    let url =
        raw_endpoint_url(args.url.as_deref(), scheme).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    let proxy_protocol = args
        .proxy_proto
        .as_deref()
        .map(|v| v.parse().map(ProxyProtocolName))
        .transpose()?;
    let spec = EndpointSpec {
        url: Some(url),
        upstream: UpstreamSpec {
            url: UpstreamUrl(args.upstream),
            proxy_protocol,
            ..UpstreamSpec::default()
        },
        traffic_policy_file: args.traffic_policy_file,
        pooling_enabled: args.pooling_enabled,
        ..EndpointSpec::default()
    };
    // Validated here so a bad upstream or policy is reported before anything goes online.
    let endpoint = spec.into_config(Path::new(""), "flags")?;
    let mut config = args.link.config(endpoint)?;
    let output = output(screen, &args.log, &mut config);
    let inspector = start_inspector(&args.inspect, &mut config, &output).await?;
    run_until_signal(config, inspector, output).await
}

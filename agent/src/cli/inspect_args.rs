//! `agent http`, `agent tcp` and `agent tls` flags for the inspector.

use clap::{ArgAction, Args};
use sluice_agent::inspect::{InspectConfig, Limits, DEFAULT_ADDR};
use std::net::SocketAddr;

/// Request inspector (web page and API over the forwarded requests).
#[derive(Debug, Clone, Args)]
pub struct InspectArgs {
    /// Serve the request inspector (`--inspect=false` turns it off).
    #[arg(long, default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub inspect: bool,
    /// Inspector address [default: 127.0.0.1:4040, or the next free port up to 4049]. An
    /// address given here is used exactly; if it is taken the agent stops with an error.
    #[arg(long)]
    pub inspect_addr: Option<SocketAddr>,
    /// Also accept this name in the inspector's Host header (repeatable); localhost,
    /// 127.0.0.1 and ::1 always are.
    #[arg(long)]
    pub inspect_allow_host: Vec<String>,
    /// Most requests the inspector keeps.
    #[arg(long, default_value_t = Limits::default().max_requests)]
    pub inspect_max_requests: usize,
    /// Most bytes the inspector keeps (bodies plus heads), in memory only.
    #[arg(long, default_value_t = Limits::default().max_bytes)]
    pub inspect_max_bytes: usize,
    /// Each request and response body is captured up to this many bytes.
    #[arg(long, default_value_t = Limits::default().body_limit)]
    pub inspect_body_limit: usize,
}

impl InspectArgs {
    /// The inspector's config, or `None` with `--inspect=false`.
    pub fn config(&self) -> Option<InspectConfig> {
        if !self.inspect {
            return None;
        }
        let (addr, fallback_ports) = match self.inspect_addr {
            Some(addr) => (addr, 0),
            None => (DEFAULT_ADDR, InspectConfig::default().fallback_ports),
        };
        Some(InspectConfig {
            addr,
            fallback_ports,
            allow_hosts: self.inspect_allow_host.clone(),
            limits: Limits {
                max_requests: self.inspect_max_requests,
                max_bytes: self.inspect_max_bytes,
                body_limit: self.inspect_body_limit,
            },
        })
    }
}

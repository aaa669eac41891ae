//! The `agent` binary's flags and subcommands (clap derive); `inspect_args.rs` has the inspector's.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// Sluice agent: expose a local app through a Sluice edge.
#[derive(Debug, Parser)]
#[command(name = "agent", version = env!("SLUICE_VERSION"))]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Expose a local HTTP app: `agent http 8080`.
    Http(Box<HttpArgs>),
    /// Expose a local TCP service on one of the edge's ports: `agent tcp 22`.
    Tcp(Box<RawArgs>),
    /// Expose a local TLS service by its name, its own certificate end to end:
    /// `agent tls 8443 --url tls://name.DOMAIN`.
    Tls(Box<RawArgs>),
    /// Start endpoints from a config file over one edge connection: `agent start --all`.
    Start(StartArgs),
    /// Work with agent config files offline.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with traffic-policy files offline.
    #[command(subcommand)]
    Policy(PolicyCommand),
}

/// `agent config …`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a config file (schema, upstreams, policies, CA files) and print every problem.
    Check {
        /// The config file.
        #[arg(long, default_value = "agent.yml")]
        config: PathBuf,
    },
}

/// `agent start` flags.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The config file (see docs/agent-config.md).
    #[arg(long, default_value = "agent.yml")]
    pub config: PathBuf,
    /// Endpoint names to start.
    #[arg(required_unless_present = "all", conflicts_with = "all")]
    pub names: Vec<String>,
    /// Start every endpoint in the file.
    #[arg(long)]
    pub all: bool,
    /// Authtoken; overrides the file's `agent.authtoken`.
    #[arg(long, env = "SLUICE_AUTHTOKEN", hide_env_values = true)]
    pub authtoken: Option<String>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

/// How the agent reaches the upstream.
#[derive(Debug, Clone, Args)]
pub struct UpstreamArgs {
    /// HTTP version spoken to the upstream: http1, or http2 (h2c prior knowledge; gRPC).
    #[arg(long, default_value = "http1", value_parser = ["http1", "http2"])]
    pub upstream_protocol: String,
    /// Verify an https:// upstream's certificate (system roots unless --upstream-tls-verify-cas).
    #[arg(long)]
    pub upstream_tls_verify: bool,
    /// Verify the upstream against the CA certificates in this PEM file (implies verification).
    #[arg(long)]
    pub upstream_tls_verify_cas: Option<PathBuf>,
}

/// `agent policy …`
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Validate a traffic-policy file and print every problem.
    Check {
        /// The policy file (YAML or JSON).
        file: PathBuf,
    },
    /// Evaluate a policy against one request, offline, and print what it would do.
    Test {
        /// The policy file (YAML or JSON).
        file: PathBuf,
        /// Request line, e.g. 'GET /admin?x=1'.
        #[arg(long, default_value = "GET /")]
        request: String,
        /// Request header 'name: value' (repeatable).
        #[arg(short = 'H', long = "header")]
        headers: Vec<String>,
        /// Client IP the policy sees as conn.client_ip.
        #[arg(long, default_value = "127.0.0.1")]
        client_ip: std::net::IpAddr,
        /// Status of the pretend upstream response the response phase runs on.
        #[arg(long, default_value_t = 200)]
        upstream_status: u16,
        /// A value for `secrets.get('VAULT', 'NAME')`, 'VAULT.NAME=VALUE' (repeatable); it
        /// shows as <secret> in the output.
        #[arg(long = "secret", value_name = "VAULT.NAME=VALUE")]
        secrets: Vec<String>,
    },
}

/// Traffic-policy inputs for an endpoint; flags compile to rules placed before the file's.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Traffic-policy file (ngrok's traffic-policy.yml format).
    #[arg(long)]
    pub traffic_policy_file: Option<PathBuf>,
    /// Require HTTP basic auth, `user:password` (repeatable).
    #[arg(long)]
    pub basic_auth: Vec<String>,
    /// Add a request header, 'name: value' (repeatable).
    #[arg(long)]
    pub request_header_add: Vec<String>,
    /// Remove a request header (repeatable).
    #[arg(long)]
    pub request_header_remove: Vec<String>,
    /// Add a response header, 'name: value' (repeatable).
    #[arg(long)]
    pub response_header_add: Vec<String>,
    /// Remove a response header (repeatable).
    #[arg(long)]
    pub response_header_remove: Vec<String>,
    /// Allow only clients in this CIDR (repeatable).
    #[arg(long)]
    pub cidr_allow: Vec<String>,
    /// Refuse clients in this CIDR (repeatable).
    #[arg(long)]
    pub cidr_deny: Vec<String>,
    /// Require signing in with an OAuth provider: google, github, gitlab or microsoft.
    #[arg(long, value_name = "PROVIDER")]
    pub oauth: Option<String>,
    /// The OAuth application's client id (with --oauth).
    #[arg(long, requires = "oauth")]
    pub oauth_client_id: Option<String>,
    /// The OAuth application's client secret (with --oauth; also from SLUICE_OAUTH_CLIENT_SECRET).
    #[arg(
        long,
        requires = "oauth",
        env = "SLUICE_OAUTH_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oauth_client_secret: Option<String>,
    /// An OAuth scope to ask for (repeatable; the provider's defaults otherwise).
    #[arg(long, requires = "oauth")]
    pub oauth_scope: Vec<String>,
    /// Only this email may sign in (repeatable; with --oauth or --oidc).
    #[arg(long)]
    pub oauth_allow_email: Vec<String>,
    /// Only emails at this domain may sign in (repeatable; with --oauth or --oidc).
    #[arg(long)]
    pub oauth_allow_domain: Vec<String>,
    /// Require signing in with this OpenID Connect issuer (its discovery document is used).
    #[arg(long, value_name = "ISSUER_URL", conflicts_with = "oauth")]
    pub oidc: Option<String>,
    /// The client id registered with the issuer (with --oidc).
    #[arg(long, requires = "oidc")]
    pub oidc_client_id: Option<String>,
    /// The client secret (with --oidc; also from SLUICE_OIDC_CLIENT_SECRET).
    #[arg(
        long,
        requires = "oidc",
        env = "SLUICE_OIDC_CLIENT_SECRET",
        hide_env_values = true
    )]
    pub oidc_client_secret: Option<String>,
    /// An OpenID scope to ask for (repeatable; openid, email and profile otherwise).
    #[arg(long, requires = "oidc")]
    pub oidc_scope: Vec<String>,
}

impl PolicyArgs {
    /// The shorthand flags as the policy engine's [`sluice_policy::Shorthand`].
    pub fn shorthand(&self) -> sluice_policy::Shorthand {
        sluice_policy::Shorthand {
            basic_auth: self.basic_auth.clone(),
            request_header_add: self.request_header_add.clone(),
            request_header_remove: self.request_header_remove.clone(),
            response_header_add: self.response_header_add.clone(),
            response_header_remove: self.response_header_remove.clone(),
            cidr_allow: self.cidr_allow.clone(),
            cidr_deny: self.cidr_deny.clone(),
            oauth: self.oauth.clone(),
            oauth_client_id: self.oauth_client_id.clone(),
            oauth_client_secret: self.oauth_client_secret.clone(),
            oauth_scope: self.oauth_scope.clone(),
            oauth_allow_email: self.oauth_allow_email.clone(),
            oauth_allow_domain: self.oauth_allow_domain.clone(),
            oidc: self.oidc.clone(),
            oidc_client_id: self.oidc_client_id.clone(),
            oidc_client_secret: self.oidc_client_secret.clone(),
            oidc_scope: self.oidc_scope.clone(),
        }
    }
}

/// Where logs go and how they look.
#[derive(Debug, Clone, Args)]
pub struct LogArgs {
    /// Log destination: stdout, stderr, or a file path.
    #[arg(long, default_value = "stderr")]
    pub log: String,
    /// Log format: term (human-readable), json or logfmt (one record per line).
    #[arg(long, default_value = "term", value_parser = ["term", "json", "logfmt"])]
    pub log_format: String,
}

/// Which edge the agent dials and with what (`agent http`, `agent tcp`, `agent tls`).
#[derive(Debug, Clone, Args)]
pub struct LinkArgs {
    /// Edge address, HOST:PORT (QUIC on UDP; TLS over TCP on the same port). Repeat it, or
    /// separate addresses with commas, for several edges of a cluster; a name may also resolve
    /// to several.
    #[arg(
        long,
        env = "SLUICE_EDGE",
        default_value = "127.0.0.1:4443",
        value_name = "HOST:PORT[,HOST:PORT…]"
    )]
    pub edge: Vec<String>,
    /// How many links to keep, each to another edge of a cluster (1 to 8); an edge that runs
    /// alone gets one.
    #[arg(long, env = "SLUICE_HA_CONNECTIONS", default_value_t = 2, value_parser = parse_ha_connections)]
    pub ha_connections: usize,
    /// How to reach the edge: auto (QUIC, falling back to TLS over TCP when UDP is blocked,
    /// and back when it works), quic, or tcp.
    #[arg(long, env = "SLUICE_TRANSPORT", value_enum, default_value_t = sluice_agent::TransportChoice::Auto)]
    pub transport: sluice_agent::TransportChoice,
    /// The edge's TLS-over-TCP address, HOST:PORT, when it is not --edge's port.
    #[arg(long, env = "SLUICE_EDGE_TCP")]
    pub edge_tcp: Option<String>,
    /// On TCP under --transport auto, about how often QUIC is tried again (e.g. 30s).
    #[arg(long, env = "SLUICE_QUIC_PROBE_INTERVAL", value_parser = humantime::parse_duration, default_value = "30s")]
    pub quic_probe_interval: std::time::Duration,
    /// Authtoken accepted by the edge.
    #[arg(long, env = "SLUICE_AUTHTOKEN", hide_env_values = true)]
    pub authtoken: String,
    /// Trust this PEM certificate/CA for the edge (e.g. the edge's self-signed tunnel.crt).
    #[arg(long, env = "SLUICE_EDGE_CA")]
    pub edge_ca: Option<PathBuf>,
}

/// `--ha-connections`: 1 to [`sluice_agent::MAX_HA_CONNECTIONS`].
fn parse_ha_connections(text: &str) -> Result<usize, String> {
    let n: u64 = text.parse().map_err(|e| format!("{e}"))?;
    sluice_agent::ha_connections(n).map_err(|e| e.to_string())
}

impl LinkArgs {
    /// An agent config for `endpoint` over this link; refuses an `--edge` that is not
    /// `HOST:PORT`.
    pub fn config(
        self,
        endpoint: sluice_agent::EndpointConfig,
    ) -> anyhow::Result<sluice_agent::AgentConfig> {
        let mut config = sluice_agent::AgentConfig::new(String::new(), self.authtoken, endpoint);
        config
            .set_edges(&self.edge)
            .map_err(|e| anyhow::anyhow!("--edge: {e}"))?;
        config.ha_connections = self.ha_connections;
        config.edge_ca = self.edge_ca;
        config.transport = self.transport;
        config.edge_tcp = self.edge_tcp;
        config.quic_probe_interval = self.quic_probe_interval;
        Ok(config)
    }
}

/// `agent http` flags.
#[derive(Debug, Args)]
pub struct HttpArgs {
    /// Local app: PORT, HOST:PORT, http://HOST[:PORT], https://HOST[:PORT], file:///DIR or
    /// file://RELATIVE-DIR (built-in file server).
    pub upstream: String,
    /// The edge and how to reach it.
    #[command(flatten)]
    pub link: LinkArgs,
    /// Public URL: NAME, NAME.DOMAIN or http://NAME.DOMAIN (random name when absent).
    #[arg(long)]
    pub url: Option<String>,
    /// Host header sent upstream: `rewrite` (the upstream's host) or a literal value.
    #[arg(long)]
    pub host_header: Option<String>,
    /// Share the URL with other agents started with --pooling-enabled too: the edge spreads
    /// requests across them at random (load balancing, restarts without downtime).
    #[arg(long)]
    pub pooling_enabled: bool,
    /// Upstream protocol and TLS verification.
    #[command(flatten)]
    pub upstream_opts: UpstreamArgs,
    /// Time the upstream may take to answer before the client gets a 504 (and may stay silent
    /// inside a response body before the response is cut), e.g. `30s`.
    #[arg(long, default_value = "5m", value_parser = humantime::parse_duration)]
    pub upstream_timeout: Duration,
    /// Most requests (QUIC streams, open websockets included) the edge may have in flight to
    /// this agent at once; beyond it clients get 503 ERR_SLUICE_3008.
    #[arg(long, default_value_t = 1024, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_concurrent_requests: u32,
    /// Traffic policy.
    #[command(flatten)]
    pub policy: PolicyArgs,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Request inspector.
    #[command(flatten)]
    pub inspect: super::inspect_args::InspectArgs,
}

/// `agent tcp` and `agent tls` flags.
#[derive(Debug, Args)]
pub struct RawArgs {
    /// Local service: PORT (on localhost), HOST:PORT or tcp://HOST:PORT.
    pub upstream: String,
    /// The edge and how to reach it.
    #[command(flatten)]
    pub link: LinkArgs,
    /// Public URL: tcp://DOMAIN:PORT for `agent tcp` (a random port of the edge's when
    /// absent), tls://NAME.DOMAIN for `agent tls` (a random name when absent).
    #[arg(long)]
    pub url: Option<String>,
    /// Share the URL with other agents started with --pooling-enabled too: the edge spreads
    /// connections across them at random.
    #[arg(long)]
    pub pooling_enabled: bool,
    /// Write a PROXY protocol header (1 or 2) to the upstream before the client's bytes, so
    /// the service sees the client's address.
    #[arg(
        long,
        visible_alias = "upstream-proxy-protocol",
        value_name = "VERSION"
    )]
    pub proxy_proto: Option<String>,
    /// Traffic-policy file (ngrok's format; on_tcp_connect rules).
    #[arg(long)]
    pub traffic_policy_file: Option<PathBuf>,
    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
    /// Inspector (lists the connections; no bodies, no replay).
    #[command(flatten)]
    pub inspect: super::inspect_args::InspectArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(args: &[&str]) -> Result<HttpArgs, clap::Error> {
        let argv = ["agent", "http", "8080", "--authtoken", "t"]
            .into_iter()
            .chain(args.iter().copied());
        match Cli::try_parse_from(argv)?.command {
            Command::Http(args) => Ok(*args),
            other => panic!("not http: {other:?}"),
        }
    }

    fn endpoint() -> sluice_agent::EndpointConfig {
        sluice_agent::EndpointConfig::new("8080".parse().expect("upstream"))
    }

    #[test]
    fn edge_takes_commas_and_repeats() {
        let args = http(&[
            "--edge",
            "e2.example:4443,e3.example:4443",
            "--edge",
            "e4.example:4443",
        ])
        .expect("parses");
        let config = args.link.config(endpoint()).expect("valid");
        assert_eq!(config.edge, "e2.example:4443");
        assert_eq!(config.more_edges, ["e3.example:4443", "e4.example:4443"]);
        assert_eq!(config.ha_connections, 2);
    }

    #[test]
    fn one_edge_is_as_before() {
        let config = http(&["--edge", "tunnel.example.com:4443"])
            .expect("parses")
            .link
            .config(endpoint())
            .expect("valid");
        assert_eq!(config.edge, "tunnel.example.com:4443");
        assert!(config.more_edges.is_empty());
    }

    #[test]
    fn a_bad_edge_or_ha_connections_is_refused() {
        let bad = http(&["--edge", "e2.example:4443,e3.example"])
            .expect("parses")
            .link
            .config(endpoint())
            .expect_err("no port");
        assert_eq!(
            bad.to_string(),
            "--edge: edge address 'e3.example': expected HOST:PORT"
        );
        assert_eq!(
            http(&["--ha-connections", "1"])
                .expect("1")
                .link
                .ha_connections,
            1
        );
        for n in ["0", "9"] {
            let err = http(&["--ha-connections", n]).expect_err("out of range");
            assert!(
                err.to_string()
                    .contains(&format!("ha_connections must be between 1 and 8 (got {n})")),
                "{err}"
            );
        }
    }
}

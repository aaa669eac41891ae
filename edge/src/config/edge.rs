//! [`EdgeConfig`]: flags over env vars over `edge.yaml` over defaults, merged and validated.

use super::args::EdgeArgs;
use super::cloud::CloudEndpointSpec;
use super::error::ConfigError;
use super::file::{read_file, FileConfig};
use super::operator::OperatorPolicy;
use super::secrets::SecretVault;
use crate::cluster::config::{ClusterConfig, FileCluster};
use crate::events::config::{check_unique, EventDestination};
use crate::facts::config::FactsConfig;
use crate::hostname::Hostname;
use crate::outbound::config::FileOutbound;
use crate::outbound::OutboundConfig;
use crate::tls::config::{CertFiles, HttpsConfig};
use crate::tunnel::ports::PortRange;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Where the QUIC listener's certificate comes from.
#[derive(Debug, Clone)]
pub enum TunnelTls {
    /// PEM files given by the operator.
    Files {
        /// Certificate chain.
        cert: PathBuf,
        /// Private key.
        key: PathBuf,
    },
    /// Self-signed, generated once into the state dir.
    SelfSigned,
}

/// Where agents' TLS-over-TCP links are accepted (the fallback for networks that block UDP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TunnelTcp {
    /// On TCP, at the QUIC listener's address and port number (agents find it without being
    /// told).
    #[default]
    SamePort,
    /// On this address.
    Addr(SocketAddr),
    /// Not at all: agents need UDP.
    Off,
}

impl std::str::FromStr for TunnelTcp {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "same" => Ok(TunnelTcp::SamePort),
            "off" => Ok(TunnelTcp::Off),
            addr => addr.parse().map(TunnelTcp::Addr).map_err(|_| {
                format!("'{addr}' is not an address (IP:PORT), 'same' (the QUIC port) or 'off'")
            }),
        }
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Term,
    /// One JSON object per line.
    Json,
}

/// Which HTTP/1.x server the public listeners run (HTTP/2 is pingora's either way).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum H1Server {
    /// hyper's, each request handed to pingora's proxy (trailers pass both ways).
    #[default]
    Hyper,
    /// pingora's own, which drops HTTP/1.1 trailers; kept to measure the two against each
    /// other (`--h1-server pingora`).
    Pingora,
}

/// Admin tokens shorter than this are refused: the admin API changes credentials, so its token
/// must not be guessable within the failure limit's budget.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Validated edge configuration. Tests build it directly (see [`EdgeConfig::default`]). Its
/// `Debug` shows how many tokens there are, never the tokens.
#[derive(Clone)]
pub struct EdgeConfig {
    /// Public HTTP listener (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// QUIC listener for agents.
    pub tunnel_addr: SocketAddr,
    /// TLS-over-TCP listener for agents whose networks block UDP.
    pub tunnel_tcp: TunnelTcp,
    /// Also take agents' TLS-over-TCP links on the HTTPS listener (by their ALPN), for
    /// networks that allow only port 443. Needs HTTPS.
    pub tunnel_tcp_on_https: bool,
    /// The cluster this edge is part of; `None` stands alone (docs/cluster.md).
    pub cluster: Option<ClusterConfig>,
    /// Metrics listener; `None` disables it.
    pub metrics_addr: Option<SocketAddr>,
    /// The admin API's listener; `None` (the default) disables it.
    pub admin_addr: Option<SocketAddr>,
    /// Accepted admin API bearer tokens (plaintext, only held until hashed at start); required
    /// when `admin_addr` is set.
    pub admin_tokens: Vec<String>,
    /// Base domain.
    pub domain: Hostname,
    /// The edge-wide sign-in host (docs/policy.md); `None`: each endpoint is its own callback.
    pub auth_host: Option<Hostname>,
    /// Accepted authtokens (plaintext, only held until hashed at start).
    pub authtokens: Vec<String>,
    /// Certificate source for the QUIC listener.
    pub tunnel_tls: TunnelTls,
    /// State directory.
    pub state_dir: PathBuf,
    /// Development mode.
    pub dev: bool,
    /// Log format (used by the binary).
    pub log_format: LogFormat,
    /// Grace period for in-flight requests at shutdown.
    pub grace_period: Duration,
    /// How long a request waits for the agent to accept a new stream before 503.
    pub stream_open_timeout: Duration,
    /// How long a new agent connection has to complete its handshake.
    pub handshake_timeout: Duration,
    /// Operator policies by hostname pattern; they run before the agent's.
    pub operator_policies: Vec<OperatorPolicy>,
    /// Endpoints the edge holds itself (`cloud_endpoints:`), live from start.
    pub cloud_endpoints: Vec<CloudEndpointSpec>,
    /// Agent sessions one authtoken may hold at once.
    pub max_agents_per_token: usize,
    /// Ports for `tcp://` endpoints (`tcp_ports`), opened on the HTTP listener's address;
    /// `None` turns TCP endpoints off.
    pub tcp_ports: Option<PortRange>,
    /// Where request events are exported (docs/events.md); empty exports nothing.
    pub event_destinations: Vec<EventDestination>,
    /// The public HTTPS listener, when enabled. Endpoints are https:// by default then.
    pub https: Option<HttpsConfig>,
    /// The public listeners' HTTP/1.x server.
    pub h1_server: H1Server,
    /// What policies may read beyond the request: region, user-agent data, IP databases.
    pub facts: FactsConfig,
    /// Where `secrets.get(vault, name)` reads (`secret_vaults:`, docs/policy.md).
    pub secret_vaults: Vec<SecretVault>,
    /// The default apps of oauth / openid-connect without client credentials (`login_apps:`).
    pub login_apps: sluice_policy::LoginApps,
    /// Where policies' calls (http-request) may go besides public addresses (`outbound:`).
    pub outbound: OutboundConfig,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tunnel_addr: SocketAddr::from(([127, 0, 0, 1], 4443)),
            tunnel_tcp: TunnelTcp::SamePort,
            tunnel_tcp_on_https: false,
            cluster: None,
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
            admin_addr: None,
            admin_tokens: Vec::new(),
            domain: Hostname::parse("localhost").unwrap_or_else(|_| unreachable!()),
            auth_host: None,
            authtokens: Vec::new(),
            tunnel_tls: TunnelTls::SelfSigned,
            state_dir: default_state_dir(),
            dev: false,
            log_format: LogFormat::Term,
            grace_period: Duration::from_secs(5),
            stream_open_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            operator_policies: Vec::new(),
            cloud_endpoints: Vec::new(),
            max_agents_per_token: 100,
            tcp_ports: None,
            event_destinations: Vec::new(),
            https: None,
            h1_server: H1Server::Hyper,
            facts: FactsConfig::default(),
            secret_vaults: Vec::new(),
            login_apps: sluice_policy::LoginApps::default(),
            outbound: OutboundConfig::default(),
        }
    }
}

fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_STATE_HOME").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("sluice/edge");
    }
    match std::env::var_os("HOME").filter(|d| !d.is_empty()) {
        Some(home) => PathBuf::from(home).join(".local/state/sluice/edge"),
        None => PathBuf::from(".sluice/edge"),
    }
}

impl EdgeConfig {
    /// Merges flags/env (already in `args`) over the config file over defaults, and validates.
    pub fn from_args(args: EdgeArgs) -> Result<Self, ConfigError> {
        let mut file = match &args.config {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let base = args
            .config
            .as_deref()
            .and_then(Path::parent)
            .unwrap_or(Path::new("."))
            .to_path_buf();
        let operator_policies = std::mem::take(&mut file.endpoints)
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.resolve(i, &base))
            .collect::<Result<Vec<_>, _>>()?;
        let cloud_endpoints = std::mem::take(&mut file.cloud_endpoints)
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.resolve(i, &base))
            .collect::<Result<Vec<_>, _>>()?;
        let mut event_destinations = std::mem::take(&mut file.event_destinations)
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.resolve(i, &base))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = &args.events_file {
            event_destinations.push(EventDestination::events_file(path));
        }
        check_unique(&event_destinations)?;
        let secret_vaults = std::mem::take(&mut file.secret_vaults)
            .into_iter()
            .map(|(name, v)| v.resolve(name, &base))
            .collect::<Result<Vec<_>, _>>()?;
        let login_apps = std::mem::take(&mut file.login_apps).resolve()?;
        let https = https_config(&args, &mut file, &base)?;
        let cluster = cluster_config(&args, std::mem::take(&mut file.cluster))?;
        let facts = std::mem::take(&mut file.facts).resolve(&base);
        let outbound = if args.outbound_allow.is_empty() {
            std::mem::take(&mut file.outbound)
        } else {
            FileOutbound::from_flags(args.outbound_allow.clone())
        };
        let outbound = outbound.resolve()?;
        let d = EdgeConfig::default();
        let domain = match args.domain.or(file.domain) {
            Some(s) => Hostname::parse(&s)?,
            None => d.domain,
        };
        let auth_host = args
            .auth_host
            .or(file.auth_host)
            .map(|s| auth_host(&s))
            .transpose()?;
        let log_format = match args.log_format.or(file.log_format).as_deref() {
            None | Some("term") => LogFormat::Term,
            Some("json") => LogFormat::Json,
            Some(other) => return Err(ConfigError::LogFormat(other.to_string())),
        };
        let h1_server = match args.h1_server.as_deref() {
            None | Some("hyper") => H1Server::Hyper,
            Some("pingora") => H1Server::Pingora,
            Some(other) => return Err(ConfigError::H1Server(other.to_string())),
        };
        let tunnel_tls = match (
            args.tunnel_cert.or(file.tunnel_cert),
            args.tunnel_key.or(file.tunnel_key),
        ) {
            (Some(cert), Some(key)) => TunnelTls::Files { cert, key },
            (None, None) => TunnelTls::SelfSigned,
            _ => return Err(ConfigError::HalfTls("tunnel")),
        };
        let authtokens = tokens(args.authtokens, file.authtokens);
        let admin_addr = args.admin_addr.or(file.admin_addr);
        let admin_tokens = tokens(args.admin_tokens, file.admin_tokens);
        check_admin(admin_addr, &admin_tokens)?;
        let tcp_ports = args
            .tcp_ports
            .or(file.tcp_ports)
            .map(|r| r.parse::<PortRange>())
            .transpose()
            .map_err(ConfigError::TcpPorts)?;
        let tunnel_tcp = match args.tunnel_tcp_addr.or(file.tunnel_tcp_addr) {
            None => TunnelTcp::SamePort,
            Some(value) => value.parse().map_err(ConfigError::TunnelTcp)?,
        };

        if cluster.is_some() && https.as_ref().is_some_and(|h| h.acme.is_some()) {
            return Err(ConfigError::Cluster(
                "acme is not supported in cluster mode (challenges, certificates and orders \
                 are per edge): give every edge the same certificates with tls_certificates"
                    .into(),
            ));
        }
        let tunnel_tcp_on_https = args.tunnel_tcp_on_https || file.tunnel_tcp_on_https;
        if tunnel_tcp_on_https && https.is_none() {
            return Err(ConfigError::TunnelTcp(
                "tunnel_tcp_on_https needs the HTTPS listener (--https-addr)".into(),
            ));
        }
        let dev = args.dev || file.dev;
        if authtokens.is_empty() && !dev {
            return Err(ConfigError::NoAuthtoken);
        }
        Ok(EdgeConfig {
            http_addr: args.http_addr.or(file.http_addr).unwrap_or(d.http_addr),
            tunnel_addr: args
                .tunnel_addr
                .or(file.tunnel_addr)
                .unwrap_or(d.tunnel_addr),
            tunnel_tcp,
            tunnel_tcp_on_https,
            cluster,
            metrics_addr: args.metrics_addr.or(file.metrics_addr).or(d.metrics_addr),
            admin_addr,
            admin_tokens,
            domain,
            auth_host,
            authtokens,
            tunnel_tls,
            state_dir: args.state_dir.or(file.state_dir).unwrap_or(d.state_dir),
            dev,
            log_format,
            grace_period: args
                .grace_period
                .or(file.grace_period)
                .unwrap_or(d.grace_period),
            operator_policies,
            cloud_endpoints,
            max_agents_per_token: args
                .max_agents_per_token
                .or(file.max_agents_per_token)
                .unwrap_or(d.max_agents_per_token),
            tcp_ports,
            event_destinations,
            https,
            h1_server,
            facts,
            secret_vaults,
            login_apps,
            outbound,
            ..d
        })
    }
}

/// A token list from the flags (or env) when given there, else from the file; blanks dropped.
fn tokens(flags: Vec<String>, file: Vec<String>) -> Vec<String> {
    let chosen = if flags.is_empty() { file } else { flags };
    chosen
        .into_iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect()
}

/// The admin API needs an address and a token together, and tokens long enough not to be
/// guessed; either half alone is refused rather than ignored (like `https_addr`).
fn check_admin(addr: Option<SocketAddr>, tokens: &[String]) -> Result<(), ConfigError> {
    match (addr, tokens.is_empty()) {
        (Some(addr), true) => Err(ConfigError::Admin(format!(
            "admin_addr {addr} is set but no admin token is: pass --admin-token TOKEN (or \
             SLUICE_ADMIN_TOKENS, or admin_tokens in edge.yaml); generate one with \
             `openssl rand -hex 32`"
        ))),
        (None, false) => Err(ConfigError::Admin(
            "admin tokens are set but no admin_addr is: set --admin-addr (e.g. 127.0.0.1:9190) \
             to turn the admin API on"
                .into(),
        )),
        _ => match tokens
            .iter()
            .position(|t| t.chars().count() < MIN_ADMIN_TOKEN_LEN)
        {
            Some(i) => Err(ConfigError::Admin(format!(
                "admin token #{} is shorter than {MIN_ADMIN_TOKEN_LEN} characters; generate \
                 one with `openssl rand -hex 32`",
                i + 1
            ))),
            None => Ok(()),
        },
    }
}

impl fmt::Debug for EdgeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Destructured without `..`: a new field fails to compile until it is shown here (or
        // deliberately hidden, like the tokens).
        let EdgeConfig {
            http_addr,
            tunnel_addr,
            tunnel_tcp,
            tunnel_tcp_on_https,
            cluster,
            metrics_addr,
            admin_addr,
            admin_tokens,
            domain,
            auth_host,
            authtokens,
            tunnel_tls,
            state_dir,
            dev,
            log_format,
            grace_period,
            stream_open_timeout,
            handshake_timeout,
            operator_policies,
            cloud_endpoints,
            max_agents_per_token,
            tcp_ports,
            event_destinations,
            https,
            h1_server,
            facts,
            secret_vaults,
            login_apps,
            outbound,
        } = self;
        f.debug_struct("EdgeConfig")
            .field("http_addr", http_addr)
            .field("tunnel_addr", tunnel_addr)
            .field("tunnel_tcp", tunnel_tcp)
            .field("tunnel_tcp_on_https", tunnel_tcp_on_https)
            .field("cluster", cluster)
            .field("metrics_addr", metrics_addr)
            .field("admin_addr", admin_addr)
            .field("admin_tokens", &Count(admin_tokens.len()))
            .field("domain", domain)
            .field("auth_host", auth_host)
            .field("authtokens", &Count(authtokens.len()))
            .field("tunnel_tls", tunnel_tls)
            .field("state_dir", state_dir)
            .field("dev", dev)
            .field("log_format", log_format)
            .field("grace_period", grace_period)
            .field("stream_open_timeout", stream_open_timeout)
            .field("handshake_timeout", handshake_timeout)
            .field("operator_policies", operator_policies)
            .field("cloud_endpoints", cloud_endpoints)
            .field("max_agents_per_token", max_agents_per_token)
            .field("tcp_ports", tcp_ports)
            .field("event_destinations", event_destinations)
            .field("https", https)
            .field("h1_server", h1_server)
            .field("facts", facts)
            .field("secret_vaults", secret_vaults)
            .field("login_apps", login_apps)
            .field("outbound", outbound)
            .finish()
    }
}

/// How many tokens, for `Debug`: `3 tokens`.
struct Count(usize);

impl fmt::Debug for Count {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} tokens", self.0)
    }
}

/// `auth_host`: one exact hostname (no wildcard, no port, no scheme).
fn auth_host(s: &str) -> Result<Hostname, ConfigError> {
    let host = Hostname::parse(s).map_err(|e| ConfigError::AuthHost(e.to_string()))?;
    if host.is_wildcard() {
        return Err(ConfigError::AuthHost(format!(
            "'{s}' is a wildcard; name one host, e.g. auth.example.com"
        )));
    }
    Ok(host)
}

/// The HTTPS listener from flags and file; relative certificate paths in the file are relative
/// to its folder. Certificates without a listener (or the reverse) are refused, not ignored.
fn https_config(
    args: &EdgeArgs,
    file: &mut FileConfig,
    base: &Path,
) -> Result<Option<HttpsConfig>, ConfigError> {
    let default_cert = match (
        args.tls_cert
            .clone()
            .or(file.tls_cert.take().map(|p| base.join(p))),
        args.tls_key
            .clone()
            .or(file.tls_key.take().map(|p| base.join(p))),
    ) {
        (Some(cert), Some(key)) => Some(CertFiles { cert, key }),
        (None, None) => None,
        _ => return Err(ConfigError::HalfTls("tls")),
    };
    let certificates: Vec<CertFiles> = std::mem::take(&mut file.tls_certificates)
        .into_iter()
        .map(|c| CertFiles {
            cert: base.join(c.cert),
            key: base.join(c.key),
        })
        .collect();
    let redirect_http = args.redirect_http || file.redirect_http;
    let acme = file.acme.take().map(|a| a.resolve(base)).transpose()?;
    let Some(addr) = args.https_addr.or(file.https_addr) else {
        if default_cert.is_some() || !certificates.is_empty() || redirect_http || acme.is_some() {
            return Err(ConfigError::Https(
                "TLS certificates, acme or redirect_http given but no https_addr: set --https-addr"
                    .into(),
            ));
        }
        return Ok(None);
    };
    if default_cert.is_none() && certificates.is_empty() && acme.is_none() {
        return Err(ConfigError::Https(
            "https_addr needs certificates: --tls-cert/--tls-key, tls_certificates or acme".into(),
        ));
    }
    let mut https = HttpsConfig::new(addr);
    https.default_cert = default_cert;
    https.certificates = certificates;
    https.redirect_http = redirect_http;
    https.acme = acme;
    if let Some(every) = file.tls_reload_interval {
        https.reload_interval = every;
    }
    Ok(Some(https))
}

/// The cluster settings: flags over `edge.yaml`'s `cluster:`, checked together, and what rate
/// limits do without the store.
fn cluster_config(
    args: &EdgeArgs,
    file: FileCluster,
) -> Result<Option<ClusterConfig>, ConfigError> {
    let merged = FileCluster {
        store: args.cluster_store.clone().or(file.store),
        edge_id: args.edge_id.clone().or(file.edge_id),
        peer_secret: args.peer_secret.clone().or(file.peer_secret),
        advertise_addr: args.advertise_addr.or(file.advertise_addr),
        rate_limit_fallback: args
            .rate_limit_fallback
            .clone()
            .or(file.rate_limit_fallback),
    };
    merged.check().map_err(ConfigError::Cluster)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::config::RateLimitFallback;
    use clap::Parser;

    fn args(list: &[&str]) -> EdgeArgs {
        EdgeArgs::try_parse_from(std::iter::once("edge").chain(list.iter().copied()))
            .expect("args parse")
    }

    /// A temporary folder holding `edge.yaml` with `yaml`, and the file's path.
    fn edge_yaml(yaml: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("edge.yaml");
        std::fs::write(&path, yaml).expect("write");
        (dir, path)
    }

    /// The config read from `edge.yaml` with `yaml` and `extra` flags.
    fn from_yaml(yaml: &str, extra: &[&str]) -> Result<EdgeConfig, ConfigError> {
        let (_dir, path) = edge_yaml(yaml);
        let mut list = vec!["--config", path.to_str().expect("utf8")];
        list.extend_from_slice(extra);
        EdgeConfig::from_args(args(&list))
    }

    #[test]
    fn cluster_settings_come_from_flags_over_the_file_and_refuse_acme() {
        let yaml = "cluster:\n  store: redis://127.0.0.1:6379\n  edge_id: from-file\n  peer_secret: 0123456789abcdef\n";
        let cfg = from_yaml(yaml, &["--dev", "--edge-id", "from-flag"]).expect("valid");
        let cluster = cfg.cluster.expect("cluster mode");
        assert_eq!(cluster.edge_id, "from-flag");
        assert_eq!(cluster.store, "redis://127.0.0.1:6379");
        assert_eq!(cluster.rate_limit_fallback, RateLimitFallback::Local);
        let fallback = |cfg: EdgeConfig| cfg.cluster.map(|c| c.rate_limit_fallback);
        let deny = format!("{yaml}  rate_limit_fallback: deny\n");
        let cfg = from_yaml(&deny, &["--dev"]).expect("valid");
        assert_eq!(fallback(cfg), Some(RateLimitFallback::Deny));
        let cfg = from_yaml(&deny, &["--dev", "--rate-limit-fallback", "allow"]).expect("valid");
        assert_eq!(fallback(cfg), Some(RateLimitFallback::Allow));
        let bad =
            from_yaml(&deny, &["--dev", "--rate-limit-fallback", "open"]).expect_err("refused");
        assert!(
            bad.to_string()
                .contains("cluster.rate_limit_fallback 'open' must be local, deny or allow"),
            "{bad}"
        );
        let half = from_yaml("cluster:\n  edge_id: lonely\n", &["--dev"]).expect_err("refused");
        assert!(
            half.to_string().contains("cluster.store is missing"),
            "{half}"
        );
        let acme = format!("{yaml}acme:\n  names: [a.example.com]\n");
        let err = from_yaml(&acme, &["--dev", "--https-addr", "127.0.0.1:0"]).expect_err("refused");
        assert!(
            err.to_string()
                .contains("acme is not supported in cluster mode"),
            "{err}"
        );
        assert!(from_yaml("", &["--dev"]).expect("valid").cluster.is_none());
    }

    #[test]
    fn refuses_to_start_without_token_unless_dev() {
        assert!(matches!(
            EdgeConfig::from_args(args(&[])),
            Err(ConfigError::NoAuthtoken)
        ));
        assert!(EdgeConfig::from_args(args(&["--dev"])).is_ok());
    }

    #[test]
    fn admin_api_needs_an_address_and_long_tokens_together() {
        let token = "adm-0123456789abcdef";
        let err = |list: &[&str]| {
            EdgeConfig::from_args(args(list))
                .expect_err("refused")
                .to_string()
        };
        let no_token = err(&["--dev", "--admin-addr", "127.0.0.1:9190"]);
        assert!(no_token.contains("no admin token"), "{no_token}");
        let no_addr = err(&["--dev", "--admin-token", token]);
        assert!(no_addr.contains("no admin_addr"), "{no_addr}");
        let short = err(&[
            "--dev",
            "--admin-addr",
            "127.0.0.1:0",
            "--admin-token",
            "short",
        ]);
        assert!(short.contains("shorter than 16"), "{short}");
        let cfg = EdgeConfig::from_args(args(&[
            "--authtoken",
            "agent-secret-token",
            "--admin-addr",
            "127.0.0.1:9190",
            "--admin-token",
            token,
            "--admin-token",
            "adm-fedcba9876543210",
        ]))
        .expect("cfg");
        assert_eq!(
            cfg.admin_addr,
            Some(SocketAddr::from(([127, 0, 0, 1], 9190)))
        );
        assert_eq!(cfg.admin_tokens.len(), 2);
        let shown = format!("{cfg:?}");
        assert!(shown.contains("admin_tokens: 2 tokens"), "{shown}");
        assert!(shown.contains("authtokens: 1 tokens"), "{shown}");
        for secret in [token, "adm-fedcba9876543210", "agent-secret-token"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(EdgeConfig::from_args(args(&["--dev"]))
            .expect("cfg")
            .admin_addr
            .is_none());
    }

    #[test]
    fn admin_settings_come_from_the_file() {
        let cfg = from_yaml(
            "dev: true\nadmin_addr: 127.0.0.1:9190\nadmin_tokens: [adm-0123456789abcdef]\n",
            &[],
        )
        .expect("cfg");
        assert_eq!(cfg.admin_addr.map(|a| a.port()), Some(9190));
        assert_eq!(cfg.admin_tokens, ["adm-0123456789abcdef"]);
    }

    #[test]
    fn flags_override_file() {
        let cfg = from_yaml(
            "domain: example.com\nhttp_addr: 127.0.0.1:1111\nauthtokens: [a, b]\ngrace_period: 2s\n",
            &["--http-addr", "127.0.0.1:2222"],
        )
        .expect("cfg");
        assert_eq!(cfg.domain.as_str(), "example.com");
        assert_eq!(cfg.http_addr.port(), 2222);
        assert_eq!(cfg.authtokens, ["a", "b"]);
        assert_eq!(cfg.grace_period, Duration::from_secs(2));
    }

    #[test]
    fn facts_paths_resolve_against_the_file() {
        use crate::facts::config::RegexesPath;
        let (dir, path) = edge_yaml(
            "dev: true\nfacts:\n  region: eu-west\n  geoip_city: geo/city.mmdb\n  ip_categories: {office: /etc/office.txt}\n",
        );
        let dir = dir.path();
        let cfg =
            EdgeConfig::from_args(args(&["--config", path.to_str().expect("utf8")])).expect("cfg");
        assert_eq!(cfg.facts.region, "eu-west");
        assert_eq!(cfg.facts.geoip_city, Some(dir.join("geo/city.mmdb")));
        assert_eq!(cfg.facts.geoip_asn, None);
        assert_eq!(
            cfg.facts.ip_categories,
            [("office".to_string(), PathBuf::from("/etc/office.txt"))]
        );
        assert!(matches!(
            cfg.facts.user_agent_regexes,
            RegexesPath::Default(_)
        ));
        std::fs::write(&path, "dev: true\nfacts: {geoip: x}\n").expect("write");
        let err = EdgeConfig::from_args(args(&["--config", path.to_str().expect("utf8")]));
        assert!(err.is_err(), "unknown facts key accepted");
    }

    #[test]
    fn auth_host_is_one_plain_hostname() {
        let cfg = EdgeConfig::from_args(args(&["--dev", "--auth-host", "Auth.Example.com"]))
            .expect("cfg");
        assert_eq!(
            cfg.auth_host.as_ref().map(Hostname::as_str),
            Some("auth.example.com")
        );
        for bad in [
            "*.example.com",
            "auth.example.com:8443",
            "https://auth.example.com",
        ] {
            let err = EdgeConfig::from_args(args(&["--dev", "--auth-host", bad]))
                .expect_err(bad)
                .to_string();
            assert!(err.starts_with("auth_host:"), "{bad}: {err}");
        }
        let none = EdgeConfig::from_args(args(&["--dev"])).expect("cfg");
        assert!(none.auth_host.is_none());
    }

    #[test]
    fn operator_endpoints_load_relative_files() {
        let (dir, path) = edge_yaml(
            "dev: true\nendpoints:\n  - url: '*.example.com'\n    traffic_policy_file: maint.yml\n",
        );
        std::fs::write(
            dir.path().join("maint.yml"),
            "on_http_request:\n  - actions: [{type: deny}]\n",
        )
        .expect("write");
        let cfg =
            EdgeConfig::from_args(args(&["--config", path.to_str().expect("utf8")])).expect("cfg");
        assert_eq!(cfg.operator_policies.len(), 1);
        assert_eq!(cfg.operator_policies[0].pattern.as_str(), "*.example.com");
        let source = cfg.operator_policies[0].source.as_ref().expect("policy");
        assert!(source.text.contains("deny"));
    }

    #[test]
    fn https_needs_certificates_and_certificates_need_https() {
        let err = EdgeConfig::from_args(args(&["--dev", "--https-addr", "127.0.0.1:0"]))
            .expect_err("no certificates");
        assert!(err.to_string().contains("needs certificates"), "{err}");
        let err = EdgeConfig::from_args(args(&[
            "--dev",
            "--tls-cert",
            "a.crt",
            "--tls-key",
            "a.key",
        ]))
        .expect_err("no listener");
        assert!(err.to_string().contains("no https_addr"), "{err}");
        let cfg = EdgeConfig::from_args(args(&[
            "--dev",
            "--https-addr",
            "127.0.0.1:8443",
            "--tls-cert",
            "a.crt",
            "--tls-key",
            "a.key",
            "--redirect-http",
        ]))
        .expect("cfg");
        let https = cfg.https.expect("https");
        assert_eq!(https.addr.port(), 8443);
        assert!(https.redirect_http);
    }

    #[test]
    fn unknown_file_keys_are_errors() {
        let err = from_yaml("domian: example.com\n", &[]).expect_err("typo must fail");
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(err.to_string().contains("edge.yaml"), "{err}");
        assert!(
            cause.as_deref().unwrap_or_default().contains("domian"),
            "{cause:?}"
        );
    }

    #[test]
    fn event_destinations_are_validated_where_they_are() {
        let (_dir, path) = edge_yaml("");
        let load = |yaml: &str| {
            std::fs::write(&path, yaml).expect("write");
            EdgeConfig::from_args(args(&["--dev", "--config", path.to_str().expect("utf8")]))
        };
        let cfg = load(concat!(
            "event_destinations:\n",
            "  - file: {path: events.jsonl, max_bytes: 1000}\n",
            "    filter: 'ev.http.response.status_code >= 500'\n",
            "  - name: collector\n",
            "    http: {url: 'http://127.0.0.1:9/ingest', batch_interval: 250ms}\n",
        ))
        .expect("valid");
        assert_eq!(cfg.event_destinations.len(), 2);
        assert_eq!(cfg.event_destinations[0].name, "file-0");
        assert_eq!(cfg.event_destinations[1].name, "collector");
        let bad = [
            ("event_destinations:\n  - {}\n", "event_destinations[0]: give exactly one of file, http"),
            ("event_destinations:\n  - file: {path: a}\n  - http: {url: 'ftp://x'}\n", "event_destinations[1]: http.url"),
            ("event_destinations:\n  - file: {path: a}\n    filter: 'ev.('\n", "event_destinations[0]: filter"),
            ("event_destinations:\n  - {name: x, file: {path: a}}\n  - {name: x, file: {path: b}}\n", "used twice"),
        ];
        for (yaml, want) in bad {
            let err = load(yaml).expect_err(yaml).to_string();
            assert!(err.contains(want), "{yaml}: {err}");
        }
        let err = load("event_destinations:\n  - file: {path: a, rotate: yes}\n")
            .expect_err("unknown key");
        let cause = std::error::Error::source(&err)
            .map(ToString::to_string)
            .unwrap_or_default();
        assert!(cause.contains("rotate"), "{cause}");
        let cfg = EdgeConfig::from_args(args(&["--dev", "--events-file", "-"])).expect("flag");
        assert_eq!(
            cfg.event_destinations,
            vec![EventDestination::events_file("-")]
        );
    }
}

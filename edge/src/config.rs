//! Edge configuration: command-line flags, `SLUICE_*` env vars and `edge.yaml`, merged and
//! validated into [`EdgeConfig`].
//!
//! Precedence: flag > env var > config file > default.

use crate::acme::config::FileAcme;
use crate::events::config::{check_unique, EventConfigError, EventDestination, FileDestination};
use crate::hostname::{Hostname, HostnameError};
use crate::tls::config::{CertFiles, HttpsConfig};
use clap::Parser;
use serde::Deserialize;
use sluice_proto::control::{PolicyKind, PolicySource};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `edge` command-line flags. Every flag may also come from `edge.yaml` (same name with
/// underscores) and from a `SLUICE_*` environment variable.
#[derive(Debug, Default, Parser)]
#[command(
    name = "edge",
    version,
    about = "Sluice edge: public HTTP in, agents over QUIC"
)]
pub struct EdgeArgs {
    /// YAML config file; flags and env vars override its values.
    #[arg(long, env = "SLUICE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Public HTTP listener [default: 127.0.0.1:8080].
    #[arg(long, env = "SLUICE_HTTP_ADDR")]
    pub http_addr: Option<SocketAddr>,
    /// UDP address of the QUIC listener for agents [default: 127.0.0.1:4443].
    #[arg(long, env = "SLUICE_TUNNEL_ADDR")]
    pub tunnel_addr: Option<SocketAddr>,
    /// Public HTTPS listener (TLS 1.2/1.3, HTTP/2 by ALPN); off when absent. Needs
    /// certificates: `--tls-cert/--tls-key`, `tls_certificates` or `acme` in `edge.yaml`.
    #[arg(long, env = "SLUICE_HTTPS_ADDR")]
    pub https_addr: Option<SocketAddr>,
    /// PEM certificate (chain) for the HTTPS listener, usually `*.DOMAIN`; also served when no
    /// other certificate covers the requested name. Reloaded when the file changes.
    #[arg(long, env = "SLUICE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for `--tls-cert`.
    #[arg(long, env = "SLUICE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Redirect plain-HTTP requests for https endpoints to HTTPS (308) instead of 404.
    #[arg(long, env = "SLUICE_REDIRECT_HTTP")]
    pub redirect_http: bool,
    /// Prometheus metrics listener [default: 127.0.0.1:9090].
    #[arg(long, env = "SLUICE_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,
    /// Base domain for endpoint hostnames [default: localhost].
    #[arg(long, env = "SLUICE_DOMAIN")]
    pub domain: Option<String>,
    /// Edge-wide sign-in host, e.g. `auth.example.com`: oauth / openid-connect sign-ins of
    /// every endpoint run there, so the provider needs one redirect URI
    /// (`https://AUTH_HOST/_sluice/oauth/callback`). Off when absent.
    #[arg(long, env = "SLUICE_AUTH_HOST")]
    pub auth_host: Option<String>,
    /// Accepted agent authtoken (repeatable).
    #[arg(
        long = "authtoken",
        env = "SLUICE_AUTHTOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub authtokens: Vec<String>,
    /// PEM certificate (chain) for the QUIC listener; self-signed when absent.
    #[arg(long, env = "SLUICE_TUNNEL_CERT", requires = "tunnel_key")]
    pub tunnel_cert: Option<PathBuf>,
    /// PEM private key for `--tunnel-cert`.
    #[arg(long, env = "SLUICE_TUNNEL_KEY", requires = "tunnel_cert")]
    pub tunnel_key: Option<PathBuf>,
    /// Directory for generated state (self-signed certificate, dev token, session and QUIC reset keys)
    /// [default: $XDG_STATE_HOME/sluice/edge or ~/.local/state/sluice/edge].
    #[arg(long, env = "SLUICE_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Development mode: generate an authtoken if none is configured.
    #[arg(long, env = "SLUICE_DEV")]
    pub dev: bool,
    /// Log format: term or json [default: term].
    #[arg(long, env = "SLUICE_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// How long shutdown waits for in-flight requests, e.g. `5s` [default: 5s].
    #[arg(long, env = "SLUICE_GRACE_PERIOD", value_parser = humantime::parse_duration)]
    pub grace_period: Option<Duration>,
    /// Agent sessions one authtoken may hold at once [default: 100].
    #[arg(long, env = "SLUICE_MAX_AGENTS_PER_TOKEN")]
    pub max_agents_per_token: Option<usize>,
    /// Write every request's `http_request_complete.v0` event as a JSON line to this file
    /// (`-` for stdout); more destinations go in edge.yaml's `event_destinations`.
    #[arg(long, env = "SLUICE_EVENTS_FILE")]
    pub events_file: Option<String>,
}

/// The `edge.yaml` file. Unknown keys are errors, so a typo cannot silently drop a setting.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    http_addr: Option<SocketAddr>,
    https_addr: Option<SocketAddr>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    #[serde(default)]
    redirect_http: bool,
    #[serde(default)]
    tls_certificates: Vec<CertFiles>,
    #[serde(default, with = "humantime_serde_opt")]
    tls_reload_interval: Option<Duration>,
    acme: Option<FileAcme>,
    tunnel_addr: Option<SocketAddr>,
    metrics_addr: Option<SocketAddr>,
    domain: Option<String>,
    auth_host: Option<String>,
    #[serde(default)]
    authtokens: Vec<String>,
    tunnel_cert: Option<PathBuf>,
    tunnel_key: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    #[serde(default)]
    dev: bool,
    log_format: Option<String>,
    #[serde(default, with = "humantime_serde_opt")]
    grace_period: Option<Duration>,
    max_agents_per_token: Option<usize>,
    #[serde(default)]
    endpoints: Vec<FileEndpoint>,
    #[serde(default)]
    event_destinations: Vec<FileDestination>,
}

/// `endpoints:` entry: an operator policy for a hostname pattern.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEndpoint {
    url: String,
    traffic_policy_file: Option<PathBuf>,
    traffic_policy: Option<String>,
}

/// An operator endpoint (`edge.yaml` `endpoints:`): a hostname pattern, optionally with a
/// traffic policy. Named patterns also become values of the `endpoint` metric label.
#[derive(Debug, Clone)]
pub struct OperatorPolicy {
    /// Exact hostname or wildcard (`*.example.com`).
    pub pattern: Hostname,
    /// The policy document, if the entry has one.
    pub source: Option<PolicySource>,
}

impl FileEndpoint {
    /// Resolves the entry; relative policy paths are relative to the config file's folder.
    fn resolve(self, index: usize, base: &Path) -> Result<OperatorPolicy, ConfigError> {
        let at = |msg: String| ConfigError::Endpoint { index, msg };
        let pattern = Hostname::parse(
            self.url
                .trim_start_matches("https://")
                .trim_start_matches("http://"),
        )
        .map_err(|e| at(e.to_string()))?;
        let source = match (self.traffic_policy_file, self.traffic_policy) {
            (Some(file), None) => {
                let path = base.join(file);
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| at(format!("traffic_policy_file {}: {e}", path.display())))?;
                Some(PolicySource {
                    origin: path.display().to_string(),
                    kind: PolicyKind::Document,
                    text,
                })
            }
            (None, Some(text)) => Some(PolicySource {
                origin: format!("edge.yaml endpoints[{index}].traffic_policy"),
                kind: PolicyKind::Document,
                text,
            }),
            (None, None) => None,
            (Some(_), Some(_)) => {
                return Err(at(
                    "give at most one of traffic_policy_file, traffic_policy".to_string(),
                ))
            }
        };
        Ok(OperatorPolicy { pattern, source })
    }
}

/// `grace_period: 5s`-style durations in edge.yaml.
pub(crate) mod humantime_serde_opt {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    /// Parses an optional humantime duration (`30s`, `1h`).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
            .transpose()
    }
}

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

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Term,
    /// One JSON object per line.
    Json,
}

/// Validated edge configuration. Tests build it directly (see [`EdgeConfig::default`]).
#[derive(Debug, Clone)]
pub struct EdgeConfig {
    /// Public HTTP listener (port 0 picks a free port).
    pub http_addr: SocketAddr,
    /// QUIC listener for agents.
    pub tunnel_addr: SocketAddr,
    /// Metrics listener; `None` disables it.
    pub metrics_addr: Option<SocketAddr>,
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
    /// Agent sessions one authtoken may hold at once.
    pub max_agents_per_token: usize,
    /// Where request events are exported (docs/events.md); empty exports nothing.
    pub event_destinations: Vec<EventDestination>,
    /// The public HTTPS listener, when enabled. Endpoints are https:// by default then.
    pub https: Option<HttpsConfig>,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            http_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tunnel_addr: SocketAddr::from(([127, 0, 0, 1], 4443)),
            metrics_addr: Some(SocketAddr::from(([127, 0, 0, 1], 9090))),
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
            max_agents_per_token: 100,
            event_destinations: Vec::new(),
            https: None,
        }
    }
}

/// Why the configuration is unusable.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("{path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The config file is not valid YAML for this schema.
    #[error("{path}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The YAML error, with line and column.
        source: serde_yaml::Error,
    },
    /// The domain is not a hostname.
    #[error("domain: {0}")]
    Domain(#[from] HostnameError),
    /// `auth_host` is not a plain hostname.
    #[error("auth_host: {0}")]
    AuthHost(String),
    /// Unknown log format.
    #[error("log_format: '{0}' is not one of term, json")]
    LogFormat(String),
    /// No authtoken and not in dev mode.
    #[error("no authtoken configured: pass --authtoken TOKEN (or SLUICE_AUTHTOKENS), or --dev to generate one")]
    NoAuthtoken,
    /// An `endpoints:` entry is unusable.
    #[error("endpoints[{index}]: {msg}")]
    Endpoint {
        /// Index in the list.
        index: usize,
        /// What is wrong.
        msg: String,
    },
    /// Only one of cert/key given in the file.
    #[error("{0}_cert and {0}_key must be given together")]
    HalfTls(&'static str),
    /// Certificates or an HTTPS option without an HTTPS listener, or the reverse.
    #[error("{0}")]
    Https(String),
    /// An `event_destinations:` entry is unusable.
    #[error(transparent)]
    Events(#[from] EventConfigError),
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

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
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
        let mut event_destinations = std::mem::take(&mut file.event_destinations)
            .into_iter()
            .enumerate()
            .map(|(i, e)| e.resolve(i, &base))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(path) = &args.events_file {
            event_destinations.push(EventDestination::events_file(path));
        }
        check_unique(&event_destinations)?;
        let https = https_config(&args, &mut file, &base)?;
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
        let tunnel_tls = match (
            args.tunnel_cert.or(file.tunnel_cert),
            args.tunnel_key.or(file.tunnel_key),
        ) {
            (Some(cert), Some(key)) => TunnelTls::Files { cert, key },
            (None, None) => TunnelTls::SelfSigned,
            _ => return Err(ConfigError::HalfTls("tunnel")),
        };
        let authtokens = if args.authtokens.is_empty() {
            file.authtokens
        } else {
            args.authtokens
        };
        let authtokens: Vec<String> = authtokens
            .into_iter()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .collect();
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
            metrics_addr: args.metrics_addr.or(file.metrics_addr).or(d.metrics_addr),
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
            max_agents_per_token: args
                .max_agents_per_token
                .or(file.max_agents_per_token)
                .unwrap_or(d.max_agents_per_token),
            event_destinations,
            https,
            ..d
        })
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
    let acme = file
        .acme
        .take()
        .map(|a| a.resolve(base))
        .transpose()
        .map_err(ConfigError::Https)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> EdgeArgs {
        EdgeArgs::try_parse_from(std::iter::once("edge").chain(list.iter().copied()))
            .expect("args parse")
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
    fn flags_override_file() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("edge.yaml");
        std::fs::write(
            &path,
            "domain: example.com\nhttp_addr: 127.0.0.1:1111\nauthtokens: [a, b]\ngrace_period: 2s\n",
        )
        .expect("write");
        let p = path.to_str().expect("utf8");
        let cfg = EdgeConfig::from_args(args(&["--config", p, "--http-addr", "127.0.0.1:2222"]))
            .expect("cfg");
        assert_eq!(cfg.domain.as_str(), "example.com");
        assert_eq!(cfg.http_addr.port(), 2222);
        assert_eq!(cfg.authtokens, ["a", "b"]);
        assert_eq!(cfg.grace_period, Duration::from_secs(2));
        std::fs::remove_dir_all(&dir).ok();
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
        let dir = std::env::temp_dir().join(format!("sluice-cfg-op-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::write(
            dir.join("maint.yml"),
            "on_http_request:\n  - actions: [{type: deny}]\n",
        )
        .expect("write");
        let path = dir.join("edge.yaml");
        std::fs::write(
            &path,
            "dev: true\nendpoints:\n  - url: '*.example.com'\n    traffic_policy_file: maint.yml\n",
        )
        .expect("write");
        let cfg =
            EdgeConfig::from_args(args(&["--config", path.to_str().expect("utf8")])).expect("cfg");
        assert_eq!(cfg.operator_policies.len(), 1);
        assert_eq!(cfg.operator_policies[0].pattern.as_str(), "*.example.com");
        let source = cfg.operator_policies[0].source.as_ref().expect("policy");
        assert!(source.text.contains("deny"));
        std::fs::remove_dir_all(&dir).ok();
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
        let dir = std::env::temp_dir().join(format!("sluice-cfg-bad-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("edge.yaml");
        std::fs::write(&path, "domian: example.com\n").expect("write");
        let err = EdgeConfig::from_args(args(&["--config", path.to_str().expect("utf8")]))
            .expect_err("typo must fail");
        let cause = std::error::Error::source(&err).map(ToString::to_string);
        assert!(err.to_string().contains("edge.yaml"), "{err}");
        assert!(
            cause.as_deref().unwrap_or_default().contains("domian"),
            "{cause:?}"
        );
        std::fs::remove_dir_all(&dir).ok();
    }

    #[test]
    fn event_destinations_are_validated_where_they_are() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-ev-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("edge.yaml");
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
        std::fs::remove_dir_all(&dir).ok();
    }
}

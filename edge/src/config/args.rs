//! `edge` command-line flags (and their `SLUICE_*` environment variables).

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// `edge` command-line flags. Every flag may also come from `edge.yaml` (same name with
/// underscores) and from a `SLUICE_*` environment variable.
/// No `Debug`: it holds authtokens and admin tokens in clear.
#[derive(Default, Parser)]
#[command(
    name = "edge",
    version = env!("SLUICE_VERSION"),
    about = "Sluice edge: public HTTP in, agents over QUIC (or TLS over TCP)"
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
    /// TCP address of the TLS listener for agents whose networks block UDP: `IP:PORT`,
    /// `same` (the QUIC listener's address, on TCP) or `off` [default: same].
    #[arg(long, env = "SLUICE_TUNNEL_TCP_ADDR")]
    pub tunnel_tcp_addr: Option<String>,
    /// The cluster store several edges share (docs/cluster.md): `redis://HOST:PORT`
    /// (Redis or Valkey). Without it the edge stands alone.
    #[arg(long, env = "SLUICE_CLUSTER_STORE")]
    pub cluster_store: Option<String>,
    /// This edge's id in the cluster (letters, digits, `.`, `_`, `-`).
    #[arg(long, env = "SLUICE_EDGE_ID")]
    pub edge_id: Option<String>,
    /// The secret every edge of the cluster shares (at least 16 characters).
    #[arg(long, env = "SLUICE_PEER_SECRET", hide_env_values = true)]
    pub peer_secret: Option<String>,
    /// Where the cluster's other edges reach this one.
    #[arg(long, env = "SLUICE_ADVERTISE_ADDR")]
    pub advertise_addr: Option<SocketAddr>,
    /// What rate limits do while the cluster store does not answer: `local` (count on this
    /// edge, the default), `deny` or `allow`.
    #[arg(long, env = "SLUICE_RATE_LIMIT_FALLBACK")]
    pub rate_limit_fallback: Option<String>,
    /// Also take agents' TLS-over-TCP links on the HTTPS listener (told apart from browsers
    /// by their ALPN), for networks that allow only port 443. Needs `--https-addr`.
    #[arg(long, env = "SLUICE_TUNNEL_TCP_ON_HTTPS")]
    pub tunnel_tcp_on_https: bool,
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
    /// The admin API's listener (HTTP, bearer admin tokens; docs/operating.md, "Admin API");
    /// off when absent. Keep it on loopback (e.g. `127.0.0.1:9190`) or behind a TLS proxy.
    #[arg(long, env = "SLUICE_ADMIN_ADDR")]
    pub admin_addr: Option<SocketAddr>,
    /// Accepted admin API token (repeatable; at least 16 characters); needed with
    /// `--admin-addr`.
    #[arg(
        long = "admin-token",
        env = "SLUICE_ADMIN_TOKENS",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub admin_tokens: Vec<String>,
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
    /// Networks policies may call or fetch from besides public addresses (http-request, JWKS,
    /// sign-in providers), comma-separated CIDRs or addresses; replaces edge.yaml's
    /// `outbound.allow`.
    #[arg(long, env = "SLUICE_OUTBOUND_ALLOW", value_delimiter = ',')]
    pub outbound_allow: Vec<String>,
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
    /// Ports for `tcp://` endpoints, `FIRST-LAST` (e.g. `20000-20999`), opened on the HTTP
    /// listener's address; TCP endpoints are off without it.
    #[arg(long, env = "SLUICE_TCP_PORTS")]
    pub tcp_ports: Option<String>,
    /// Agent sessions one authtoken may hold at once [default: 100].
    #[arg(long, env = "SLUICE_MAX_AGENTS_PER_TOKEN")]
    pub max_agents_per_token: Option<usize>,
    /// Write every request's `http_request_complete.v0` event as a JSON line to this file
    /// (`-` for stdout); more destinations go in edge.yaml's `event_destinations`.
    #[arg(long, env = "SLUICE_EVENTS_FILE")]
    pub events_file: Option<String>,
    /// The public listeners' HTTP/1.x server: hyper, or pingora's own (drops HTTP/1.1
    /// trailers; for comparing the two) [default: hyper].
    #[arg(long, env = "SLUICE_H1_SERVER", hide = true)]
    pub h1_server: Option<String>,
}

//! `edge admin …` flags: where the admin API is, the token, the output, and one subcommand per
//! call.

use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Where `edge admin` looks for the admin API when `--url` is not given: the port the docs
/// suggest for `--admin-addr` (the metrics port, 9090, plus 100).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9190";

/// `edge admin`.
#[derive(Args)]
pub struct AdminArgs {
    /// The edge's admin API.
    #[arg(long, env = "SLUICE_ADMIN_URL", default_value = DEFAULT_URL, global = true)]
    pub url: String,
    /// An admin token of that edge (sent as `Authorization: Bearer`).
    #[arg(
        long,
        env = "SLUICE_ADMIN_TOKEN",
        hide_env_values = true,
        global = true
    )]
    pub token: Option<String>,
    /// Print the API's JSON answer instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
    /// What to do.
    #[command(subcommand)]
    pub what: AdminCommand,
}

/// One collection of the API.
#[derive(Subcommand)]
pub enum AdminCommand {
    /// Authtokens: create (the token is shown once), list, update, delete.
    #[command(subcommand)]
    Credentials(CredentialsCommand),
    /// Agent sessions online: list, stop.
    #[command(subcommand)]
    Sessions(SessionsCommand),
    /// Hostnames reserved for a credential.
    #[command(subcommand, name = "reserved-domains")]
    ReservedDomains(ReservedDomainsCommand),
    /// TCP addresses reserved for a credential.
    #[command(subcommand, name = "reserved-addrs")]
    ReservedAddrs(ReservedAddrsCommand),
    /// Endpoints online (agents', internal, cloud); create or delete cloud endpoints.
    #[command(subcommand)]
    Endpoints(EndpointsCommand),
}

/// Free text every created object may carry.
#[derive(Args, Default)]
pub struct Notes {
    /// Free text.
    #[arg(long)]
    pub description: Option<String>,
    /// Free text (often JSON).
    #[arg(long)]
    pub metadata: Option<String>,
}

/// `edge admin credentials`.
#[derive(Subcommand)]
pub enum CredentialsCommand {
    /// Create a credential; its token is printed once.
    Create {
        /// Description and metadata.
        #[command(flatten)]
        notes: Notes,
        /// A `bind:` rule (repeatable), e.g. `bind:ci-*.example.com`; none allows every name.
        #[arg(long = "acl")]
        acl: Vec<String>,
        /// Agent sessions online at once.
        #[arg(long)]
        max_sessions: Option<u32>,
        /// Endpoints online at once.
        #[arg(long)]
        max_endpoints: Option<u32>,
    },
    /// List every credential (edge.yaml's too, read-only).
    List,
    /// Change the fields given; the others stay.
    Update {
        /// The credential's id.
        id: String,
        /// Description and metadata.
        #[command(flatten)]
        notes: Notes,
        /// A `bind:` rule (repeatable), replacing all the old ones.
        #[arg(long = "acl", conflicts_with = "clear_acl")]
        acl: Vec<String>,
        /// Remove every `bind:` rule (allow every name).
        #[arg(long)]
        clear_acl: bool,
        /// Sessions limit, or `none` to clear it.
        #[arg(long, value_parser = limit)]
        max_sessions: Option<Limit>,
        /// Endpoints limit, or `none` to clear it.
        #[arg(long, value_parser = limit)]
        max_endpoints: Option<Limit>,
    },
    /// Delete a credential: its sessions close and its reservations go.
    Delete {
        /// The credential's id.
        id: String,
    },
}

/// A limit to set, or `none`.
#[derive(Clone, Copy, Debug)]
pub struct Limit(pub Option<u32>);

fn limit(s: &str) -> Result<Limit, String> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(Limit(None));
    }
    s.parse()
        .map(|n| Limit(Some(n)))
        .map_err(|e| format!("'{s}': {e}; give a number or none"))
}

/// `edge admin sessions`.
#[derive(Subcommand)]
pub enum SessionsCommand {
    /// List the agent sessions online.
    List,
    /// Stop a session: the agent exits and does not reconnect.
    Stop {
        /// The session's id.
        id: String,
    },
}

/// `edge admin reserved-domains`.
#[derive(Subcommand)]
pub enum ReservedDomainsCommand {
    /// Reserve a hostname for a credential.
    Create {
        /// The hostname (`name.DOMAIN`, or just `name`).
        domain: String,
        /// The owning credential's id.
        #[arg(long)]
        credential: String,
        /// Description and metadata.
        #[command(flatten)]
        notes: Notes,
    },
    /// List the reserved hostnames.
    List,
    /// Free a reserved hostname.
    Delete {
        /// The reservation's id.
        id: String,
    },
}

/// `edge admin reserved-addrs`.
#[derive(Subcommand)]
pub enum ReservedAddrsCommand {
    /// Reserve a TCP address (`DOMAIN:PORT` or `PORT`; a free port when absent).
    Create {
        /// The address.
        addr: Option<String>,
        /// The owning credential's id.
        #[arg(long)]
        credential: String,
        /// Description and metadata.
        #[command(flatten)]
        notes: Notes,
    },
    /// List the reserved TCP addresses.
    List,
    /// Free a reserved TCP address.
    Delete {
        /// The reservation's id.
        id: String,
    },
}

/// `edge admin endpoints`.
#[derive(Subcommand)]
pub enum EndpointsCommand {
    /// List the endpoints online.
    List,
    /// Create a cloud endpoint (the edge answers it with its traffic policy).
    Create {
        /// Its URL, scheme included (`https://name.DOMAIN`).
        url: String,
        /// The traffic policy, YAML or JSON.
        #[arg(
            long,
            conflicts_with = "traffic_policy_file",
            required_unless_present = "traffic_policy_file"
        )]
        traffic_policy: Option<String>,
        /// A file holding the traffic policy.
        #[arg(long)]
        traffic_policy_file: Option<PathBuf>,
        /// Share the URL with other members.
        #[arg(long)]
        pooling_enabled: bool,
        /// Whose internal endpoints its `forward-internal` reaches.
        #[arg(long)]
        credential: Option<String>,
        /// Description and metadata.
        #[command(flatten)]
        notes: Notes,
    },
    /// Delete a cloud endpoint created through the API.
    Delete {
        /// The endpoint's id.
        id: String,
    },
}

//! `agent.yml`: several endpoints on one edge connection (`agent start --config`), close to
//! ngrok's agent config v3. The schema and its messages are in `docs/agent-config.md`.
//!
//! Reading a file: `${VAR}` references are replaced from the environment (`$${` keeps a
//! literal `${`), the YAML is parsed with every value checked in place, so errors carry
//! `FILE:LINE:COLUMN`, then each endpoint is converted by [`EndpointSpec::into_config`].

use super::agent::{self, AgentConfig, HaConnectionsError, TransportChoice};
use super::endpoint_spec::EndpointSpec;
use crate::forward::handler;
use serde::Deserialize;
use sluice_proto::control::Secret;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every problem found in a config file, one located line each.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct ConfigError(pub Vec<String>);

impl ConfigError {
    fn one(line: String) -> Self {
        ConfigError(vec![line])
    }
}

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentFile {
    /// Schema version; `3` when given (the only one).
    #[serde(default)]
    pub version: Option<Version>,
    /// Connection settings.
    #[serde(default)]
    pub agent: AgentSection,
    /// Endpoints, each with a unique `name`.
    pub endpoints: Vec<EndpointSpec>,
}

/// `version: 3`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u8")]
pub struct Version;

/// A `version:` other than 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unsupported version {0} (this agent reads version 3)")]
pub struct UnsupportedVersion(pub u8);

impl TryFrom<u8> for Version {
    type Error = UnsupportedVersion;

    fn try_from(v: u8) -> Result<Self, Self::Error> {
        if v == 3 {
            Ok(Version)
        } else {
            Err(UnsupportedVersion(v))
        }
    }
}

/// The `agent:` section.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentSection {
    /// Authtoken; usually `${SLUICE_AUTHTOKEN}`. `--authtoken` overrides it.
    #[serde(default)]
    pub authtoken: Option<Secret>,
    /// Edge QUIC address, `HOST:PORT` (ngrok's key name).
    #[serde(default)]
    pub connect_url: Option<String>,
    /// Several edges' addresses (or names that resolve to several), instead of `connect_url`.
    #[serde(default)]
    pub connect_urls: Option<Vec<String>>,
    /// How many links to keep, each to another edge of a cluster (default 2, 1 to 8).
    #[serde(default)]
    pub ha_connections: Option<HaConnections>,
    /// PEM certificate or CA trusted for the edge.
    #[serde(default)]
    pub edge_ca: Option<PathBuf>,
    /// `auto` (default), `quic` or `tcp`.
    #[serde(default)]
    pub transport: Option<TransportChoice>,
    /// The edge's TLS-over-TCP address when it is not `connect_url`'s port.
    #[serde(default)]
    pub connect_url_tcp: Option<String>,
    /// Under `transport: auto` on TCP, about how often QUIC is tried again (default `30s`).
    #[serde(default)]
    pub quic_probe_interval: Option<HumanDuration>,
    /// How long an upstream may take to answer, e.g. `30s` (default `5m`).
    #[serde(default)]
    pub upstream_timeout: Option<HumanDuration>,
    /// Most requests the edge may have in flight to this agent (default 1024).
    #[serde(default)]
    pub max_concurrent_requests: Option<std::num::NonZeroU32>,
}

/// `ha_connections: N`, checked to be 1 to [`agent::MAX_HA_CONNECTIONS`] where it stands.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "u64")]
pub struct HaConnections(pub usize);

impl TryFrom<u64> for HaConnections {
    type Error = HaConnectionsError;

    fn try_from(n: u64) -> Result<Self, Self::Error> {
        agent::ha_connections(n).map(HaConnections)
    }
}

/// A duration written as `30s`, `5m`, `1h 30m`.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(try_from = "String")]
pub struct HumanDuration(pub Duration);

/// A duration `humantime` cannot read.
#[derive(Debug, thiserror::Error)]
#[error("invalid duration '{text}': {reason}")]
pub struct InvalidDuration {
    /// The text as written.
    pub text: String,
    /// Why it was refused.
    pub reason: humantime::DurationError,
}

impl TryFrom<String> for HumanDuration {
    type Error = InvalidDuration;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        match humantime::parse_duration(&text) {
            Ok(d) => Ok(HumanDuration(d)),
            Err(reason) => Err(InvalidDuration { text, reason }),
        }
    }
}

/// Which endpoints `agent start` brings online.
#[derive(Debug, Clone)]
pub enum Selection {
    /// Every endpoint in the file.
    All,
    /// These, by name.
    Names(Vec<String>),
}

/// A parsed file with where it came from.
#[derive(Debug)]
pub struct LoadedFile {
    /// The path as given, for messages.
    pub shown: String,
    /// Directory relative paths in the file are resolved against.
    pub base: PathBuf,
    /// The content.
    pub file: AgentFile,
}

/// Replaces `${VAR}` from `env`; unknown names are errors located in `shown`.
pub fn expand_env(
    text: &str,
    shown: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<String, ConfigError> {
    let mut out = String::with_capacity(text.len());
    let mut problems = Vec::new();
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find('$') {
            out.push_str(&rest[..at]);
            let tail = &rest[at..];
            if let Some(after) = tail.strip_prefix("$${") {
                out.push_str("${");
                rest = after;
            } else if let Some(after) = tail.strip_prefix("${") {
                let col = line.len() - tail.len() + 1;
                let Some(end) = after.find('}') else {
                    problems.push(format!("{shown}:{}:{col}: unterminated ${{", n + 1));
                    out.push_str(tail);
                    rest = "";
                    continue;
                };
                let name = &after[..end];
                let valid = !name.is_empty()
                    && !name.starts_with(|c: char| c.is_ascii_digit())
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
                match env(name) {
                    Some(value) if valid => out.push_str(&value),
                    _ if !valid => problems.push(format!(
                        "{shown}:{}:{col}: '${{{name}}}' is not a valid variable name",
                        n + 1
                    )),
                    _ => problems.push(format!(
                        "{shown}:{}:{col}: environment variable {name} is not set",
                        n + 1
                    )),
                }
                rest = &after[end + 1..];
            } else {
                out.push('$');
                rest = &tail[1..];
            }
        }
        out.push_str(rest);
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(ConfigError(problems))
    }
}

/// Parses `text` (already env-expanded); names must be present and unique.
pub fn parse(text: &str, shown: &str) -> Result<AgentFile, ConfigError> {
    let file: AgentFile = serde_yaml::from_str(text).map_err(|e| {
        let msg = e.to_string();
        // serde_yaml appends " at line L column C"; put the location up front instead.
        let msg = msg.split(" at line ").next().unwrap_or(&msg).to_string();
        match e.location() {
            Some(l) => ConfigError::one(format!("{shown}:{}:{}: {msg}", l.line(), l.column())),
            None => ConfigError::one(format!("{shown}: {msg}")),
        }
    })?;
    let mut problems = Vec::new();
    let mut seen = HashSet::new();
    if file.endpoints.is_empty() {
        problems.push(format!(
            "{shown}: endpoints: at least one endpoint is needed"
        ));
    }
    for (i, ep) in file.endpoints.iter().enumerate() {
        match &ep.name {
            None => problems.push(format!("{shown}: endpoints[{i}]: missing field `name`")),
            Some(name) if !seen.insert(name.as_str()) => problems.push(format!(
                "{shown}: endpoints[{i}]: duplicate endpoint name '{name}'"
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        Ok(file)
    } else {
        Err(ConfigError(problems))
    }
}

/// Reads, expands and parses a config file.
pub fn load(path: &Path) -> Result<LoadedFile, ConfigError> {
    let shown = path.display().to_string();
    let raw =
        std::fs::read_to_string(path).map_err(|e| ConfigError::one(format!("{shown}: {e}")))?;
    let text = expand_env(&raw, &shown, |name| std::env::var(name).ok())?;
    let file = parse(&text, &shown)?;
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
        .to_path_buf();
    Ok(LoadedFile { shown, base, file })
}

impl LoadedFile {
    /// The agent config for the selected endpoints, in file order. `authtoken` (from
    /// `--authtoken`) wins over the file's. Every problem is reported together.
    pub fn agent_config(
        &self,
        selection: &Selection,
        authtoken: Option<Secret>,
    ) -> Result<AgentConfig, ConfigError> {
        let shown = &self.shown;
        let mut problems = Vec::new();
        if let Selection::Names(names) = selection {
            for name in names {
                if !self
                    .file
                    .endpoints
                    .iter()
                    .any(|e| e.name.as_ref() == Some(name))
                {
                    problems.push(format!("{shown}: no endpoint named '{name}'"));
                }
            }
        }
        let mut endpoints = Vec::new();
        for spec in &self.file.endpoints {
            let name = spec.name.clone().unwrap_or_default();
            let wanted = match selection {
                Selection::All => true,
                Selection::Names(names) => names.contains(&name),
            };
            if !wanted {
                continue;
            }
            let origin = format!("{shown}: endpoint '{name}'");
            match spec.clone().into_config(&self.base, &origin) {
                Ok(ep) => endpoints.push(ep),
                Err(e) => problems.push(prefixed(&origin, &e.to_string())),
            }
        }
        let agent = &self.file.agent;
        let token = authtoken.or_else(|| agent.authtoken.clone());
        if token.is_none() {
            problems.push(format!(
                "{shown}: agent.authtoken: no authtoken (set it here, e.g. ${{SLUICE_AUTHTOKEN}}, or pass --authtoken)"
            ));
        }
        let edges = match (&agent.connect_url, &agent.connect_urls) {
            (Some(_), Some(_)) => {
                problems.push(format!(
                    "{shown}: agent.connect_urls: give connect_url or connect_urls, not both"
                ));
                Vec::new()
            }
            (None, Some(list)) => agent::edge_list(list).unwrap_or_else(|e| {
                problems.push(format!("{shown}: agent.connect_urls: {e}"));
                Vec::new()
            }),
            (Some(one), None) => vec![one.clone()],
            (None, None) => vec!["127.0.0.1:4443".to_string()],
        };
        if !problems.is_empty() {
            return Err(ConfigError(problems));
        }
        let mut endpoints = endpoints.into_iter();
        let first = endpoints
            .next()
            .ok_or_else(|| ConfigError::one(format!("{shown}: no endpoint selected")))?;
        let mut edges = edges.into_iter();
        let edge = edges.next().unwrap_or_else(|| "127.0.0.1:4443".to_string());
        let mut config = AgentConfig::new(edge, String::new(), first);
        config.more_edges = edges.collect();
        if let Some(n) = agent.ha_connections {
            config.ha_connections = n.0;
        }
        config.authtoken = token.unwrap_or(Secret(String::new()));
        config.endpoints.extend(endpoints);
        config.edge_ca = agent.edge_ca.as_ref().map(|p| self.base.join(p));
        if let Some(t) = agent.upstream_timeout {
            config.upstream_timeout = t.0;
        }
        if let Some(n) = agent.max_concurrent_requests {
            config.max_concurrent_requests = n.get();
        }
        if let Some(transport) = agent.transport {
            config.transport = transport;
        }
        config.edge_tcp = agent.connect_url_tcp.clone();
        if let Some(interval) = agent.quic_probe_interval {
            config.quic_probe_interval = interval.0;
        }
        Ok(config)
    }

    /// What `agent config check` does: converts every endpoint and sets up every upstream
    /// (CA files read, `file://` directories found), without connecting anywhere.
    pub fn check(&self) -> Result<AgentConfig, ConfigError> {
        let config = self.agent_config(&Selection::All, Some(Secret("check".into())))?;
        handler::routes(&config).map_err(|e| ConfigError::one(format!("{}: {e}", self.shown)))?;
        Ok(config)
    }
}

/// Prefixes each line of a multi-line message that does not already name the file.
fn prefixed(origin: &str, message: &str) -> String {
    message
        .lines()
        .map(|l| {
            if l.starts_with(origin) {
                l.to_string()
            } else {
                format!("{origin}: {l}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(agent: &str) -> LoadedFile {
        let text = format!("agent:\n  authtoken: t\n{agent}endpoints:\n  - name: web\n    upstream: {{url: 8080}}\n");
        LoadedFile {
            shown: "a.yml".into(),
            base: PathBuf::from("."),
            file: parse(&text, "a.yml").expect("parses"),
        }
    }

    #[test]
    fn connect_urls_give_several_edges_and_exclude_connect_url() {
        let config =
            file("  connect_urls: [e2.example:4443, 'e3.example:4443']\n  ha_connections: 3\n")
                .agent_config(&Selection::All, None)
                .expect("valid");
        assert_eq!(config.edge, "e2.example:4443");
        assert_eq!(config.more_edges, ["e3.example:4443"]);
        assert_eq!(config.ha_connections, 3);
        let both = file("  connect_url: e1.example:4443\n  connect_urls: [e2.example:4443]\n")
            .agent_config(&Selection::All, None)
            .expect_err("both");
        assert_eq!(
            both.to_string(),
            "a.yml: agent.connect_urls: give connect_url or connect_urls, not both"
        );
        let bad = file("  connect_urls: [e2.example]\n")
            .agent_config(&Selection::All, None)
            .expect_err("no port");
        assert_eq!(
            bad.to_string(),
            "a.yml: agent.connect_urls: edge address 'e2.example': expected HOST:PORT"
        );
        let default = file("").agent_config(&Selection::All, None).expect("valid");
        assert_eq!(default.ha_connections, agent::DEFAULT_HA_CONNECTIONS);
        assert!(default.more_edges.is_empty());
    }

    #[test]
    fn ha_connections_out_of_range_is_located() {
        for n in ["0", "9"] {
            let text = format!("agent:\n  authtoken: t\n  ha_connections: {n}\nendpoints:\n  - name: web\n    upstream: {{url: 8080}}\n");
            let err = parse(&text, "a.yml").expect_err("out of range").to_string();
            assert_eq!(
                err,
                format!("a.yml:2:3: agent: ha_connections must be between 1 and 8 (got {n})")
            );
        }
    }

    #[test]
    fn env_references_expand_and_unknown_ones_are_located() {
        let env = |n: &str| (n == "TOKEN").then(|| "s3cret".to_string());
        assert_eq!(
            expand_env("a: ${TOKEN}\nb: $${TOKEN} $5\n", "f.yml", env).expect("expands"),
            "a: s3cret\nb: ${TOKEN} $5\n"
        );
        let err = expand_env("a: 1\nb: x${NOPE}\n", "f.yml", env).expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "f.yml:2:5: environment variable NOPE is not set"
        );
    }
}

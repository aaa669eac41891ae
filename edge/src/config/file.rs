//! The `edge.yaml` file as written: raw serde structs, resolved against the file's folder.

use super::cloud::CloudEndpointSpec;
use super::error::ConfigError;
use super::operator::OperatorPolicy;
use super::secrets::{FileLoginApps, FileVault};
use crate::acme::config::FileAcme;
use crate::events::config::FileDestination;
use crate::facts::config::FileFacts;
use crate::hostname::Hostname;
use crate::outbound::config::FileOutbound;
use crate::tls::config::CertFiles;
use serde::Deserialize;
use sluice_proto::control::{PolicyKind, PolicySource, Secret};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The `edge.yaml` file. Unknown keys are errors, so a typo cannot silently drop a setting.
/// No `Debug`: it holds authtokens and admin tokens in clear.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    pub(crate) http_addr: Option<SocketAddr>,
    pub(crate) https_addr: Option<SocketAddr>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    #[serde(default)]
    pub(crate) redirect_http: bool,
    #[serde(default)]
    pub(crate) tls_certificates: Vec<CertFiles>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    pub(crate) tls_reload_interval: Option<Duration>,
    pub(crate) acme: Option<FileAcme>,
    pub(crate) tunnel_addr: Option<SocketAddr>,
    pub(crate) tunnel_tcp_addr: Option<String>,
    #[serde(default)]
    pub(crate) cluster: crate::cluster::config::FileCluster,
    #[serde(default)]
    pub(crate) tunnel_tcp_on_https: bool,
    pub(crate) metrics_addr: Option<SocketAddr>,
    pub(crate) admin_addr: Option<SocketAddr>,
    #[serde(default)]
    pub(crate) admin_tokens: Vec<String>,
    pub(crate) domain: Option<String>,
    pub(crate) auth_host: Option<String>,
    #[serde(default)]
    pub(crate) authtokens: Vec<String>,
    pub(crate) tunnel_cert: Option<PathBuf>,
    pub(crate) tunnel_key: Option<PathBuf>,
    pub(crate) state_dir: Option<PathBuf>,
    #[serde(default)]
    pub(crate) dev: bool,
    pub(crate) log_format: Option<String>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    pub(crate) grace_period: Option<Duration>,
    pub(crate) max_agents_per_token: Option<usize>,
    #[serde(default, deserialize_with = "crate::serde_util::text_opt")]
    pub(crate) tcp_ports: Option<String>,
    #[serde(default)]
    pub(crate) endpoints: Vec<FileEndpoint>,
    #[serde(default)]
    pub(crate) cloud_endpoints: Vec<FileCloudEndpoint>,
    #[serde(default)]
    pub(crate) event_destinations: Vec<FileDestination>,
    /// What policies may read beyond the request (docs/configuration.md).
    #[serde(default)]
    pub(crate) facts: FileFacts,
    #[serde(default)]
    pub(crate) secret_vaults: std::collections::BTreeMap<String, FileVault>,
    #[serde(default)]
    pub(crate) login_apps: FileLoginApps,
    /// Networks policies' calls may reach besides public addresses.
    #[serde(default)]
    pub(crate) outbound: FileOutbound,
}

/// `endpoints:` entry: an operator policy for a hostname pattern.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileEndpoint {
    url: String,
    traffic_policy_file: Option<PathBuf>,
    traffic_policy: Option<String>,
}

impl FileEndpoint {
    /// Resolves the entry; relative policy paths are relative to the config file's folder.
    pub(crate) fn resolve(self, index: usize, base: &Path) -> Result<OperatorPolicy, ConfigError> {
        let at = |msg: String| ConfigError::Endpoint {
            section: "endpoints",
            index,
            msg,
        };
        let pattern = Hostname::parse(
            self.url
                .trim_start_matches("https://")
                .trim_start_matches("http://"),
        )
        .map_err(|e| at(e.to_string()))?;
        let origin = format!("edge.yaml endpoints[{index}].traffic_policy");
        let source = policy_source(self.traffic_policy_file, self.traffic_policy, base, origin)
            .map_err(at)?;
        Ok(OperatorPolicy { pattern, source })
    }
}

/// `cloud_endpoints:` entry: an endpoint the edge holds itself, with a policy and no agent.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileCloudEndpoint {
    url: String,
    traffic_policy_file: Option<PathBuf>,
    traffic_policy: Option<String>,
    #[serde(default)]
    pooling_enabled: bool,
    authtoken: Option<Secret>,
}

impl FileCloudEndpoint {
    /// Resolves the entry: the URL must name its scheme (as ngrok's cloud endpoints must), and
    /// the policy is required.
    pub(crate) fn resolve(
        self,
        index: usize,
        base: &Path,
    ) -> Result<CloudEndpointSpec, ConfigError> {
        let at = |msg: String| ConfigError::Endpoint {
            section: "cloud_endpoints",
            index,
            msg,
        };
        if !self.url.contains("://") {
            return Err(at(format!(
                "url '{}': a cloud endpoint's URL names its scheme (https://… or http://…)",
                self.url
            )));
        }
        let origin = format!("edge.yaml cloud_endpoints[{index}].traffic_policy");
        let policy = policy_source(self.traffic_policy_file, self.traffic_policy, base, origin)
            .map_err(at)?
            .ok_or_else(|| {
                at(
                    "a cloud endpoint needs traffic_policy or traffic_policy_file: it has no \
                    agent, so its policy answers every request"
                        .to_string(),
                )
            })?;
        Ok(CloudEndpointSpec {
            origin: format!("edge.yaml cloud_endpoints[{index}]"),
            url: self.url,
            policy,
            pooling_enabled: self.pooling_enabled,
            authtoken: self.authtoken,
        })
    }
}

/// The policy document of an entry: from its file (relative to `base`) or inline (labelled
/// `origin`), or none; giving both is an error.
fn policy_source(
    file: Option<PathBuf>,
    text: Option<String>,
    base: &Path,
    origin: String,
) -> Result<Option<PolicySource>, String> {
    match (file, text) {
        (Some(file), None) => {
            let path = base.join(file);
            let text = std::fs::read_to_string(&path)
                .map_err(|e| format!("traffic_policy_file {}: {e}", path.display()))?;
            Ok(Some(PolicySource {
                origin: path.display().to_string(),
                kind: PolicyKind::Document,
                text,
            }))
        }
        (None, Some(text)) => Ok(Some(PolicySource {
            origin,
            kind: PolicyKind::Document,
            text,
        })),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => {
            Err("give at most one of traffic_policy_file, traffic_policy".to_string())
        }
    }
}

/// Reads and parses `edge.yaml`; errors name the file (and line and column).
pub(crate) fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_yaml::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source,
    })
}

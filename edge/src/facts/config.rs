//! `facts:` in edge.yaml, as written and resolved against the file's folder.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where Debian's `uap-core` package puts the user-agent regexes.
pub const DEFAULT_REGEXES: &str = "/usr/share/uap-core/regexes.yaml";

/// The `facts:` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileFacts {
    region: Option<String>,
    user_agent_regexes: Option<PathBuf>,
    geoip_city: Option<PathBuf>,
    geoip_asn: Option<PathBuf>,
    #[serde(default)]
    ip_categories: BTreeMap<String, PathBuf>,
}

/// Where the user-agent regexes come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegexesPath {
    /// Set in edge.yaml: it must load.
    Given(PathBuf),
    /// The default: used when present, else `req.user_agent.*` fields are refused at load.
    Default(PathBuf),
}

/// The facts the edge loads at start (docs/configuration.md, `facts:`).
#[derive(Debug, Clone)]
pub struct FactsConfig {
    /// `conn.server_region`; empty means sluice-policy's default, `local`.
    pub region: String,
    /// uap-core's `regexes.yaml`.
    pub user_agent_regexes: RegexesPath,
    /// A MaxMind-format city or country database (GeoLite2-City/Country, DB-IP Lite).
    pub geoip_city: Option<PathBuf>,
    /// A MaxMind-format ASN database (GeoLite2-ASN, DB-IP ASN Lite).
    pub geoip_asn: Option<PathBuf>,
    /// Category name → file of CIDRs, in name order.
    pub ip_categories: Vec<(String, PathBuf)>,
}

impl Default for FactsConfig {
    fn default() -> Self {
        Self {
            region: String::new(),
            user_agent_regexes: RegexesPath::Default(PathBuf::from(DEFAULT_REGEXES)),
            geoip_city: None,
            geoip_asn: None,
            ip_categories: Vec::new(),
        }
    }
}

impl FileFacts {
    /// Resolves relative paths against `base`, the config file's folder.
    pub(crate) fn resolve(self, base: &Path) -> FactsConfig {
        let at = |p: PathBuf| base.join(p);
        FactsConfig {
            region: self.region.unwrap_or_default(),
            user_agent_regexes: self.user_agent_regexes.map_or_else(
                || FactsConfig::default().user_agent_regexes,
                |p| RegexesPath::Given(at(p)),
            ),
            geoip_city: self.geoip_city.map(at),
            geoip_asn: self.geoip_asn.map(at),
            ip_categories: self
                .ip_categories
                .into_iter()
                .map(|(name, p)| (name, at(p)))
                .collect(),
        }
    }
}

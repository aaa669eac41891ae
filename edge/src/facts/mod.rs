//! The facts the edge knows beyond a request (`facts:` in edge.yaml): its region, uap-core's
//! user-agent regexes, MaxMind-format IP databases and the operator's IP category lists, all
//! read once at start into one [`EdgeFacts`] shared by every endpoint's engine.

pub(crate) mod categories;
pub mod config;
mod mmdb;

use crate::facts::categories::{Categories, CategoryError};
use crate::facts::config::{FactsConfig, RegexesPath};
use crate::facts::mmdb::{DbKind, Intel, MmdbError};
use sluice_policy::{EdgeFacts, UserAgentDataError, UserAgentParser};
use std::path::PathBuf;
use std::sync::Arc;

/// Why the facts could not be loaded at start.
#[derive(Debug, thiserror::Error)]
pub enum FactsError {
    /// The user-agent regexes file could not be read.
    #[error("facts.user_agent_regexes: {path}")]
    ReadRegexes {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The user-agent regexes file is not uap-core's.
    #[error("facts.user_agent_regexes: {path}: {source}")]
    Regexes {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        source: UserAgentDataError,
    },
    /// An IP database is unusable.
    #[error(transparent)]
    Mmdb(#[from] MmdbError),
    /// A category list is unusable.
    #[error(transparent)]
    Category(#[from] CategoryError),
}

/// Reads every file `config` names; any unusable one stops the start.
pub fn load(config: &FactsConfig) -> Result<Arc<EdgeFacts>, FactsError> {
    let user_agents = match &config.user_agent_regexes {
        RegexesPath::Given(path) => Some(regexes(path)?),
        RegexesPath::Default(path) if path.exists() => Some(regexes(path)?),
        RegexesPath::Default(_) => None,
    };
    let city = config
        .geoip_city
        .as_deref()
        .map(|p| mmdb::open(p, DbKind::City))
        .transpose()?;
    let asn = config
        .geoip_asn
        .as_deref()
        .map(|p| mmdb::open(p, DbKind::Asn))
        .transpose()?;
    let categories = Categories::load(&config.ip_categories)?;
    let intel = Intel::new(city, asn, categories);
    Ok(Arc::new(EdgeFacts {
        region: config.region.clone(),
        user_agents: user_agents.map(Arc::new),
        ip: intel.map(|i| Arc::new(i) as _),
    }))
}

fn regexes(path: &std::path::Path) -> Result<UserAgentParser, FactsError> {
    let text = std::fs::read_to_string(path).map_err(|source| FactsError::ReadRegexes {
        path: path.to_path_buf(),
        source,
    })?;
    UserAgentParser::from_yaml(&text).map_err(|source| FactsError::Regexes {
        path: path.to_path_buf(),
        source,
    })
}

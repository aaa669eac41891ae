//! The `acme:` block of `edge.yaml`: which CA, which names, on-demand rules and renewal timing.

use crate::hostname::{Hostname, HostnameError};
use serde::Deserialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `acme:` as written in `edge.yaml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAcme {
    directory: Option<String>,
    #[serde(default)]
    contact: Vec<String>,
    ca_root: Option<PathBuf>,
    #[serde(default)]
    names: Vec<String>,
    on_demand: Option<FileOnDemand>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    renew_before: Option<Duration>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    check_interval: Option<Duration>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    retry_min: Option<Duration>,
    #[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]
    retry_max: Option<Duration>,
}

/// `acme.on_demand:` as written in `edge.yaml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileOnDemand {
    allow: Vec<String>,
    max_per_hour: Option<u32>,
}

/// Let's Encrypt's production directory, the default CA.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";

/// Validated ACME settings.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The CA's directory URL.
    pub directory: String,
    /// Account contacts (`mailto:…`).
    pub contact: Vec<String>,
    /// Trust only this PEM root for the CA's own HTTPS (private CAs, tests); the system's
    /// roots when absent.
    pub ca_root: Option<PathBuf>,
    /// Names obtained at start and kept renewed (no wildcards: HTTP-01 cannot prove them).
    pub names: Vec<Hostname>,
    /// On-demand issuance for names first seen in a TLS handshake; off when `None`.
    pub on_demand: Option<OnDemandConfig>,
    /// Renew this long before expiry at most; a third of the lifetime when that is shorter.
    pub renew_before: Duration,
    /// How often expiry is looked at when nothing else wakes the client.
    pub check_interval: Duration,
    /// First retry delay after a failure; doubles per failure up to `retry_max`.
    pub retry_min: Duration,
    /// Longest retry delay.
    pub retry_max: Duration,
}

/// Which names may get a certificate on demand, and how many per hour.
#[derive(Debug, Clone)]
pub struct OnDemandConfig {
    /// Exact names or wildcard patterns (`*.tunnel.example.com` covers any depth below).
    pub allow: Vec<Hostname>,
    /// New on-demand orders per rolling hour.
    pub max_per_hour: u32,
}

impl AcmeConfig {
    /// Settings for `directory` with the defaults: renew 30 days before expiry, look every
    /// hour, retry after 1 minute doubling to 6 hours.
    pub fn new(directory: impl Into<String>) -> Self {
        Self {
            directory: directory.into(),
            contact: Vec::new(),
            ca_root: None,
            names: Vec::new(),
            on_demand: None,
            renew_before: Duration::from_secs(30 * 86400),
            check_interval: Duration::from_secs(3600),
            retry_min: Duration::from_secs(60),
            retry_max: Duration::from_secs(6 * 3600),
        }
    }
}

/// Why the `acme:` block is unusable; the message names the setting.
///
/// The inner [`HostnameError`]s are part of the message, so they are not also reported as
/// [`source`](std::error::Error::source): `{:#}` chains would print them twice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AcmeConfigError {
    /// An `acme.names` entry is not a hostname.
    #[error("acme.names[{index}]: {error}")]
    Name {
        /// Index in the list.
        index: usize,
        /// Why the name was refused.
        error: HostnameError,
    },
    /// An `acme.names` entry is a wildcard, which HTTP-01 cannot validate.
    #[error(
        "acme.names[{index}]: '{name}' is a wildcard, which HTTP-01 cannot validate; \
         list the names, or allow them with acme.on_demand.allow"
    )]
    WildcardName {
        /// Index in the list.
        index: usize,
        /// The name as written.
        name: String,
    },
    /// An `acme.on_demand.allow` entry is neither a hostname nor a wildcard pattern.
    #[error("acme.on_demand.allow[{index}]: {error}")]
    AllowPattern {
        /// Index in the list.
        index: usize,
        /// Why the pattern was refused.
        error: HostnameError,
    },
    /// `acme.on_demand.allow` is empty.
    #[error("acme.on_demand.allow: list at least one name or pattern")]
    EmptyAllow,
    /// Neither `acme.names` nor `acme.on_demand` is given.
    #[error("acme: give names, on_demand, or both")]
    NothingToDo,
}

impl FileAcme {
    /// Validates the block; `base` is `edge.yaml`'s folder for a relative `ca_root`.
    pub fn resolve(self, base: &Path) -> Result<AcmeConfig, AcmeConfigError> {
        let mut c = AcmeConfig::new(self.directory.unwrap_or_else(|| LETS_ENCRYPT.to_string()));
        c.contact = self.contact;
        c.ca_root = self.ca_root.map(|p| base.join(p));
        c.names = self
            .names
            .iter()
            .enumerate()
            .map(|(index, n)| {
                let host =
                    Hostname::parse(n).map_err(|error| AcmeConfigError::Name { index, error })?;
                if host.is_wildcard() {
                    return Err(AcmeConfigError::WildcardName {
                        index,
                        name: n.clone(),
                    });
                }
                Ok(host)
            })
            .collect::<Result<_, _>>()?;
        if let Some(od) = self.on_demand {
            let allow = od
                .allow
                .iter()
                .enumerate()
                .map(|(index, p)| {
                    Hostname::parse(p)
                        .map_err(|error| AcmeConfigError::AllowPattern { index, error })
                })
                .collect::<Result<Vec<_>, _>>()?;
            if allow.is_empty() {
                return Err(AcmeConfigError::EmptyAllow);
            }
            c.on_demand = Some(OnDemandConfig {
                allow,
                max_per_hour: od.max_per_hour.unwrap_or(10),
            });
        }
        if c.names.is_empty() && c.on_demand.is_none() {
            return Err(AcmeConfigError::NothingToDo);
        }
        let d = AcmeConfig::new("");
        c.renew_before = self.renew_before.unwrap_or(d.renew_before);
        c.check_interval = self.check_interval.unwrap_or(d.check_interval);
        c.retry_min = self.retry_min.unwrap_or(d.retry_min);
        c.retry_max = self.retry_max.unwrap_or(d.retry_max).max(c.retry_min);
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<AcmeConfig, AcmeConfigError> {
        serde_yaml::from_str::<FileAcme>(yaml)
            .expect("valid acme block")
            .resolve(Path::new("/etc/sluice"))
    }

    fn message(yaml: &str) -> String {
        parse(yaml).expect_err("refused").to_string()
    }

    #[test]
    fn defaults_and_validation() {
        let c = parse("names: [a.example.com]\nca_root: ca.pem\n").expect("ok");
        assert_eq!(c.directory, LETS_ENCRYPT);
        assert_eq!(c.ca_root, Some(PathBuf::from("/etc/sluice/ca.pem")));
        assert_eq!(c.renew_before, Duration::from_secs(30 * 86400));
        let err = parse("names: ['*.example.com']").expect_err("wildcard");
        assert!(err.to_string().contains("HTTP-01"), "{err}");
        let err = parse("directory: https://x/dir").expect_err("nothing to do");
        assert_eq!(err, AcmeConfigError::NothingToDo);
        let c = parse("on_demand: {allow: ['*.example.com']}").expect("ok");
        assert_eq!(c.on_demand.expect("od").max_per_hour, 10);
    }

    #[test]
    fn error_messages() {
        assert_eq!(
            message("names: [ok.example.com, 'bad name']"),
            "acme.names[1]: 'bad name' is not a valid hostname"
        );
        assert_eq!(
            message("names: ['*.Example.com']"),
            "acme.names[0]: '*.Example.com' is a wildcard, which HTTP-01 cannot validate; \
             list the names, or allow them with acme.on_demand.allow"
        );
        assert_eq!(
            message("on_demand: {allow: ['a..b']}"),
            "acme.on_demand.allow[0]: 'a..b' is not a valid hostname"
        );
        assert_eq!(
            message("on_demand: {allow: []}"),
            "acme.on_demand.allow: list at least one name or pattern"
        );
        assert_eq!(
            message("contact: []"),
            "acme: give names, on_demand, or both"
        );
    }
}

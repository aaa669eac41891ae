//! `outbound:` in edge.yaml: the networks beyond the public internet that policies may call.

use ipnet::IpNet;
use serde::Deserialize;

/// The `outbound:` section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileOutbound {
    #[serde(default)]
    allow: Vec<String>,
}

/// An `outbound.allow` entry that is not a network.
#[derive(Debug, thiserror::Error)]
#[error("outbound.allow[{index}]: {msg}")]
pub struct OutboundConfigError {
    /// Index in the list.
    pub index: usize,
    /// What is wrong.
    pub msg: String,
}

/// Where policies' calls may go besides public addresses (docs/configuration.md, `outbound:`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundConfig {
    /// Networks a call may reach although they are loopback, private, link-local or otherwise
    /// not public (`10.20.0.0/16`, `127.0.0.1/32`).
    pub allow: Vec<IpNet>,
}

impl FileOutbound {
    /// The section as `--outbound-allow` gives it.
    pub(crate) fn from_flags(allow: Vec<String>) -> Self {
        Self { allow }
    }

    /// Parses the networks; a bad one is an error naming its place.
    pub(crate) fn resolve(self) -> Result<OutboundConfig, OutboundConfigError> {
        let allow = self
            .allow
            .iter()
            .enumerate()
            .map(|(i, text)| parse_net(text).map_err(|msg| OutboundConfigError { index: i, msg }))
            .collect::<Result<_, _>>()?;
        Ok(OutboundConfig { allow })
    }
}

/// A CIDR, or a bare address as its own /32 or /128.
fn parse_net(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{text}` is not a network (CIDR such as 10.0.0.0/8) or an address"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_bare_addresses_parse_and_bad_ones_are_named() {
        let ok = FileOutbound {
            allow: vec!["10.0.0.0/8".into(), "::1".into()],
        };
        let c = ok.resolve().expect("valid");
        assert_eq!(c.allow[1], "::1/128".parse::<IpNet>().expect("net"));
        let bad = FileOutbound {
            allow: vec!["10.0.0.0/8".into(), "intranet".into()],
        };
        let e = bad.resolve().expect_err("refused").to_string();
        assert!(e.starts_with("outbound.allow[1]: `intranet`"), "{e}");
    }
}

//! What the edge knows about a request beyond the request itself: its region, a user-agent
//! parser, and what its IP databases say about the client address (`conn.geo.*`,
//! `conn.client_ip.{geo,as,categories}`).
//!
//! The edge builds one [`EdgeFacts`] at start and gives it to every engine
//! ([`Engine::with_edge_facts`](crate::Engine::with_edge_facts)); a policy reading a fact the
//! edge cannot supply is refused when it loads ([`Policy::parse_with`](crate::Policy::parse_with) with a [`LoadEnv`](crate::LoadEnv) carrying them).
//! Each fact is looked up at most once per request, and only when an expression reads it.

use crate::user_agent::{UserAgentFacts, UserAgentParser};
use std::net::IpAddr;
use std::sync::{Arc, OnceLock};

/// `conn.server_region` when the edge names none.
pub const DEFAULT_REGION: &str = "local";

/// One place as an IP database locates an address. Unknown parts are empty.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Location {
    /// City name (English).
    pub city: String,
    /// Continent name (English).
    pub continent: String,
    /// Country name (English).
    pub country: String,
    /// ISO 3166-1 alpha-2 country code.
    pub country_code: String,
    /// Whether the country is in the European Union.
    pub is_eu: bool,
    /// Latitude in degrees, as text (ngrok's type).
    pub latitude: String,
    /// Longitude in degrees, as text.
    pub longitude: String,
    /// Metro (DMA) code, US only.
    pub metro_code: String,
    /// Postal code.
    pub postal_code: String,
    /// Accuracy radius in kilometres, as text.
    pub radius: String,
    /// First subdivision (state, region) name.
    pub subdivision: String,
    /// IANA time zone.
    pub timezone: String,
}

/// What a city or country database says about an address.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Geo {
    /// Where the address is used (`conn.geo.*`, `conn.client_ip.geo.location.*`).
    pub location: Location,
    /// Where the network is registered (`conn.client_ip.geo.registered_location.*`).
    pub registered: Location,
}

/// The autonomous system an address belongs to (`conn.client_ip.as.*`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AsInfo {
    /// AS number.
    pub number: u32,
    /// The organization holding it.
    pub organization: String,
}

/// The edge's IP databases. Implemented by the edge (MaxMind-format files, category lists).
pub trait IpIntel: Send + Sync {
    /// Which lookups below have data behind them.
    fn supplies(&self) -> IpSupplies;
    /// The city/country database's answer; `None` when it has no entry.
    fn geo(&self, ip: IpAddr) -> Option<Geo>;
    /// The ASN database's answer; `None` when it has no entry.
    fn asn(&self, ip: IpAddr) -> Option<AsInfo>;
    /// The operator's categories holding the address, sorted.
    fn categories(&self, ip: IpAddr) -> Vec<String>;
}

/// Which [`IpIntel`] lookups have data behind them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IpSupplies {
    /// A city or country database.
    pub geo: bool,
    /// An ASN database.
    pub asn: bool,
    /// Category lists.
    pub categories: bool,
}

/// Which groups of variables an edge can answer; a policy naming another is refused at load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Supplies {
    /// IP databases.
    pub ip: IpSupplies,
    /// A user-agent parser.
    pub user_agent: bool,
}

impl Default for Supplies {
    fn default() -> Self {
        Self::ALL
    }
}

impl Supplies {
    /// Everything: for checks that cannot know the edge (the agent's own validation).
    pub const ALL: Self = Self {
        ip: IpSupplies {
            geo: true,
            asn: true,
            categories: true,
        },
        user_agent: true,
    };

    /// The edge.yaml setting a variable needs, when this edge lacks it; `None` when the
    /// variable needs nothing or the edge has it.
    pub(crate) fn missing(&self, var: &str) -> Option<&'static str> {
        let under = |p: &str| var == p || var.starts_with(&format!("{p}."));
        let (has, setting) = if var.starts_with("req.user_agent.") {
            (self.user_agent, "facts.user_agent_regexes")
        } else if under("conn.geo") || under("conn.client_ip.geo") {
            (self.ip.geo, "facts.geoip_city")
        } else if under("conn.client_ip.as") {
            (self.ip.asn, "facts.geoip_asn")
        } else if under("conn.client_ip.categories") {
            (self.ip.categories, "facts.ip_categories")
        } else {
            return None;
        };
        (!has).then_some(setting)
    }
}

/// Everything an edge knows beyond a request, shared by its engines.
#[derive(Default)]
pub struct EdgeFacts {
    /// `conn.server_region`; empty means [`DEFAULT_REGION`].
    pub region: String,
    /// Parses `User-Agent` for `req.user_agent.*`.
    pub user_agents: Option<Arc<UserAgentParser>>,
    /// The IP databases.
    pub ip: Option<Arc<dyn IpIntel>>,
}

impl EdgeFacts {
    /// What these facts can answer.
    pub fn supplies(&self) -> Supplies {
        Supplies {
            ip: self.ip.as_ref().map(|i| i.supplies()).unwrap_or_default(),
            user_agent: self.user_agents.is_some(),
        }
    }

    /// `conn.server_region`.
    pub(crate) fn region(&self) -> &str {
        if self.region.is_empty() {
            DEFAULT_REGION
        } else {
            &self.region
        }
    }
}

/// One request's facts, each looked up on first read and kept for the rest of the request.
#[derive(Default)]
pub(crate) struct FactCache {
    pub edge: Option<Arc<EdgeFacts>>,
    user_agent: OnceLock<UserAgentFacts>,
    geo: OnceLock<Geo>,
    asn: OnceLock<AsInfo>,
    categories: OnceLock<Vec<String>>,
}

impl FactCache {
    /// `conn.server_region`.
    pub fn region(&self) -> &str {
        self.edge
            .as_deref()
            .map_or(DEFAULT_REGION, EdgeFacts::region)
    }

    /// The parsed `User-Agent` (`header` is read only the first time).
    pub fn user_agent(&self, header: impl FnOnce() -> String) -> &UserAgentFacts {
        self.user_agent.get_or_init(|| {
            let parser = self.edge.as_deref().and_then(|e| e.user_agents.as_deref());
            parser.map(|p| p.parse(&header())).unwrap_or_default()
        })
    }

    /// The client address's location.
    pub fn geo(&self, ip: IpAddr) -> &Geo {
        self.geo
            .get_or_init(|| self.intel().and_then(|i| i.geo(ip)).unwrap_or_default())
    }

    /// The client address's autonomous system.
    pub fn asn(&self, ip: IpAddr) -> &AsInfo {
        self.asn
            .get_or_init(|| self.intel().and_then(|i| i.asn(ip)).unwrap_or_default())
    }

    /// The client address's categories.
    pub fn categories(&self, ip: IpAddr) -> &[String] {
        self.categories
            .get_or_init(|| self.intel().map(|i| i.categories(ip)).unwrap_or_default())
    }

    fn intel(&self) -> Option<&dyn IpIntel> {
        self.edge.as_deref().and_then(|e| e.ip.as_deref())
    }
}

#[cfg(test)]
mod tests;

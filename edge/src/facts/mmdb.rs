//! MaxMind-format databases (GeoLite2-City/Country/ASN, DB-IP Lite) read with `maxminddb`,
//! and the [`IpIntel`] the engines ask.

use crate::facts::categories::Categories;
use maxminddb::{geoip2, Reader};
use sluice_policy::{AsInfo, Geo, IpIntel, IpSupplies, Location};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// Which database a setting expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbKind {
    /// `facts.geoip_city`: a city or country database.
    City,
    /// `facts.geoip_asn`.
    Asn,
}

impl DbKind {
    fn setting(self) -> &'static str {
        match self {
            DbKind::City => "facts.geoip_city",
            DbKind::Asn => "facts.geoip_asn",
        }
    }

    /// Whether a database of `database_type` (its metadata) serves this setting.
    fn accepts(self, database_type: &str) -> bool {
        match self {
            DbKind::City => database_type.contains("City") || database_type.contains("Country"),
            DbKind::Asn => database_type.contains("ASN"),
        }
    }
}

/// Why a database is unusable.
#[derive(Debug, thiserror::Error)]
pub enum MmdbError {
    /// Not readable as a MaxMind DB file.
    #[error("{setting}: {}: {source}", path.display())]
    Open {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The reader's error.
        source: maxminddb::MaxMindDbError,
    },
    /// A database of the wrong kind (an ASN file given as the city database).
    #[error("{setting}: {}: a `{database_type}` database; expected {expected}", path.display())]
    Kind {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// Its metadata's type.
        database_type: String,
        /// What the setting takes.
        expected: &'static str,
    },
}

/// Opens `path` (read into memory) and checks it is the kind the setting takes.
pub(crate) fn open(path: &Path, kind: DbKind) -> Result<Reader<Vec<u8>>, MmdbError> {
    let reader = Reader::open_readfile(path).map_err(|source| MmdbError::Open {
        setting: kind.setting(),
        path: path.to_path_buf(),
        source,
    })?;
    let database_type = &reader.metadata().database_type;
    if !kind.accepts(database_type) {
        return Err(MmdbError::Kind {
            setting: kind.setting(),
            path: path.to_path_buf(),
            database_type: database_type.clone(),
            expected: match kind {
                DbKind::City => "a City or Country database",
                DbKind::Asn => "an ASN database",
            },
        });
    }
    Ok(reader)
}

/// The edge's IP data: whichever databases and lists are configured.
pub(crate) struct Intel {
    city: Option<Reader<Vec<u8>>>,
    asn: Option<Reader<Vec<u8>>>,
    categories: Categories,
}

impl Intel {
    /// `None` when nothing is configured.
    pub fn new(
        city: Option<Reader<Vec<u8>>>,
        asn: Option<Reader<Vec<u8>>>,
        categories: Categories,
    ) -> Option<Self> {
        let any = city.is_some() || asn.is_some() || !categories.is_empty();
        any.then_some(Self {
            city,
            asn,
            categories,
        })
    }
}

impl IpIntel for Intel {
    fn supplies(&self) -> IpSupplies {
        IpSupplies {
            geo: self.city.is_some(),
            asn: self.asn.is_some(),
            categories: !self.categories.is_empty(),
        }
    }

    fn geo(&self, ip: IpAddr) -> Option<Geo> {
        let found = self.city.as_ref()?.lookup(ip).ok()?;
        let city: geoip2::City = found.decode().ok()??;
        Some(geo(&city))
    }

    fn asn(&self, ip: IpAddr) -> Option<AsInfo> {
        let found = self.asn.as_ref()?.lookup(ip).ok()?;
        let asn: geoip2::Asn = found.decode().ok()??;
        Some(AsInfo {
            number: asn.autonomous_system_number.unwrap_or_default(),
            organization: asn
                .autonomous_system_organization
                .unwrap_or_default()
                .to_string(),
        })
    }

    fn categories(&self, ip: IpAddr) -> Vec<String> {
        self.categories.of(ip)
    }
}

/// A City (or Country: the same layout with fewer fields) record as the policy variables.
fn geo(r: &geoip2::City) -> Geo {
    let text = |s: Option<&str>| s.unwrap_or_default().to_string();
    let num = |n: Option<String>| n.unwrap_or_default();
    let country = |c: &geoip2::country::Country| Location {
        country: text(c.names.english),
        country_code: text(c.iso_code),
        is_eu: c.is_in_european_union.unwrap_or(false),
        ..Location::default()
    };
    let location = Location {
        city: text(r.city.names.english),
        continent: text(r.continent.names.english),
        latitude: num(r.location.latitude.map(|x| x.to_string())),
        longitude: num(r.location.longitude.map(|x| x.to_string())),
        metro_code: num(r.location.metro_code.map(|x| x.to_string())),
        postal_code: text(r.postal.code),
        radius: num(r.location.accuracy_radius.map(|x| x.to_string())),
        subdivision: text(r.subdivisions.first().and_then(|s| s.names.english)),
        timezone: text(r.location.time_zone),
        ..country(&r.country)
    };
    Geo {
        location,
        registered: country(&r.registered_country),
    }
}

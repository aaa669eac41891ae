//! Serde helpers shared by the config file's sections.

use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// An optional humantime duration (`30s`, `1h`) in edge.yaml, for
/// `#[serde(default, deserialize_with = "crate::serde_util::humantime_opt")]`.
pub(crate) fn humantime_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    Option::<String>::deserialize(d)?
        .map(|s| humantime::parse_duration(&s).map_err(serde::de::Error::custom))
        .transpose()
}

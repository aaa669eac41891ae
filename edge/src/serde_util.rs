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

/// An optional scalar read as text, so that `20000` and `20000-20999` both reach the
/// setting's own parser, for `#[serde(default, deserialize_with = "crate::serde_util::text_opt")]`.
pub(crate) fn text_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scalar {
        Number(u64),
        Text(String),
    }
    Ok(Option::<Scalar>::deserialize(d)?.map(|s| match s {
        Scalar::Number(n) => n.to_string(),
        Scalar::Text(t) => t,
    }))
}

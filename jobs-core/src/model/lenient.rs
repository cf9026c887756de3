//! Tolerant integer decoding: a JSON number or a string holding one.

use serde::de::{self, Visitor};
use std::fmt;

struct LenientI64;

impl Visitor<'_> for LenientI64 {
    type Value = Option<i64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        i64::try_from(v)
            .map(Some)
            .map_err(|_| E::custom("integer out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        v.trim()
            .parse()
            .map(Some)
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

pub(super) mod integer {
    use serde::{Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(v: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(v) => s.serialize_i64(*v),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        d.deserialize_any(super::LenientI64)
    }
}

/// Seconds since the epoch; values above 10^12 are taken as milliseconds (some AWS
/// documentation examples show them) and converted to seconds.
pub(super) mod timestamp {
    use serde::Deserializer;

    pub(crate) use super::integer::serialize;

    const MILLIS_THRESHOLD: i64 = 1_000_000_000_000;

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        let value = d.deserialize_any(super::LenientI64)?;
        Ok(value.map(|t| if t > MILLIS_THRESHOLD { t / 1000 } else { t }))
    }
}

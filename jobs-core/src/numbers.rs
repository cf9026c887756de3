//! The numbers of the wire, as small newtypes whose decoding is tolerant in one place: a JSON
//! integer or a string holding one (AWS's own examples and its C library send
//! `"expectedVersion":"1"`), and for timestamps, seconds or milliseconds.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Timestamps above this are taken as milliseconds (some AWS documentation examples show
/// 13-digit values); the wire unit is seconds.
const MILLIS_THRESHOLD: i64 = 1_000_000_000_000;

macro_rules! wire_number {
    ($(#[$doc:meta])* $name:ident, $decode:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// Wraps a value.
            pub const fn new(value: i64) -> Self {
                Self(value)
            }

            /// The value.
            pub const fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(value: i64) -> Self {
                Self(value)
            }
        }

        impl PartialEq<i64> for $name {
            fn eq(&self, other: &i64) -> bool {
                self.0 == *other
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}", self.0)
            }
        }

        /// Encodes as a JSON integer.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_i64(self.0)
            }
        }

        /// Decodes a JSON integer or a string holding one.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let decode: fn(i64) -> i64 = $decode;
                deserializer.deserialize_any(LenientI64).map(|v| Self(decode(v)))
            }
        }
    };
}

wire_number!(
    /// The version of a job execution (`versionNumber`, `expectedVersion`), incremented by each
    /// update of the device.
    Version,
    |v| v
);

wire_number!(
    /// Which execution of a job on a thing (`executionNumber`): 1 for the first, counted per
    /// (thing, job).
    ExecutionNumber,
    |v| v
);

wire_number!(
    /// A time in whole seconds since the Unix epoch, the unit of every Jobs timestamp. Values
    /// above 10^12 are read as milliseconds and converted.
    Timestamp,
    |v| if v > MILLIS_THRESHOLD { v / 1000 } else { v }
);

struct LenientI64;

impl Visitor<'_> for LenientI64 {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string holding one")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        Ok(v)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v).map_err(|_| E::custom("integer out of range"))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        v.trim()
            .parse()
            .map_err(|_| E::invalid_value(de::Unexpected::Str(v), &self))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_decode_from_integers_and_numeric_strings_and_encode_as_integers() {
        assert_eq!(
            serde_json::from_str::<Version>("3").unwrap(),
            Version::new(3)
        );
        assert_eq!(
            serde_json::from_str::<Version>("\"1\"").unwrap(),
            Version::new(1)
        );
        assert!(serde_json::from_str::<Version>("\"1.0.1\"").is_err());
        assert!(serde_json::from_str::<Version>("1.5").is_err());
        assert_eq!(serde_json::to_string(&Version::new(7)).unwrap(), "7");
        assert_eq!(
            serde_json::from_str::<Option<ExecutionNumber>>("null").unwrap(),
            None
        );
    }

    #[test]
    fn millisecond_timestamps_are_read_as_seconds() {
        assert_eq!(
            serde_json::from_str::<Timestamp>("1489096425069").unwrap(),
            Timestamp::new(1_489_096_425)
        );
        assert_eq!(
            serde_json::from_str::<Timestamp>("1517016948").unwrap(),
            Timestamp::new(1_517_016_948)
        );
    }
}

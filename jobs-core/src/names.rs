//! Validated identifiers and request fields. Everything that ends up in a topic or a request is
//! checked here, before anything is published: a thing name like `x/+/#` can never reach a topic.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::{InvalidInput, NameError};

const THING_NAME_MAX: usize = 128;
const JOB_ID_MAX: usize = 64;
const DETAIL_KEY_MAX: usize = 128;
const DETAIL_VALUE_MAX: usize = 1024;
const CLIENT_TOKEN_MAX: usize = 64;
const STEP_TIMEOUT_MAX: i64 = 10_080;

/// The job level `$next` of a Describe topic, which the service resolves to the next pending
/// execution (replies come back on the `$next` topics).
pub const NEXT_JOB: &str = "$next";

fn check_name(name: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > max {
        return Err(NameError::TooLong {
            len: name.len(),
            max,
        });
    }
    match name.char_indices().find(|&(_, c)| !allowed(c)) {
        Some((position, character)) => Err(NameError::InvalidCharacter {
            character,
            position,
        }),
        None => Ok(()),
    }
}

fn is_job_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_thing_name_char(c: char) -> bool {
    is_job_id_char(c) || c == ':'
}

macro_rules! validated_name {
    ($(#[$doc:meta])* $name:ident, $check:expr, $variant:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validates `value` and wraps it.
            ///
            /// # Errors
            #[doc = concat!("[`InvalidInput::", stringify!($variant), "`] when `value` breaks the rule above.")]
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidInput> {
                let value = value.into();
                match $check(&value) {
                    Ok(()) => Ok(Self(value)),
                    Err(reason) => Err(InvalidInput::$variant { value, reason }),
                }
            }

            /// The name as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<&str> for $name {
            type Error = InvalidInput;
            fn try_from(value: &str) -> Result<Self, InvalidInput> {
                Self::new(value)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Self::new(value).map_err(serde::de::Error::custom)
            }
        }
    };
}

validated_name!(
    /// An AWS IoT thing name: 1–128 characters of `[a-zA-Z0-9:_-]`, case-sensitive.
    ThingName,
    |v: &str| check_name(v, THING_NAME_MAX, is_thing_name_char),
    ThingName
);

validated_name!(
    /// A job ID: 1–64 characters of `[a-zA-Z0-9_-]`. `$next` is not a job ID; Describe of the
    /// next pending execution is [`Jobs::describe_next`](crate::Jobs::describe_next).
    JobId,
    |v: &str| check_name(v, JOB_ID_MAX, is_job_id_char),
    JobId
);

/// Checks a client token: 1–64 bytes of printable ASCII (the Jobs limit is undocumented; 64 is
/// the documented Shadow limit and the AWS C Jobs library's check). The client's own tokens
/// always pass; this is for simulators and ports.
///
/// # Errors
/// What is wrong with the token.
pub fn check_client_token(token: &str) -> Result<(), NameError> {
    check_name(token, CLIENT_TOKEN_MAX, |c| c.is_ascii_graphic())
}

/// `statusDetails`: string keys (1–128 of `[a-zA-Z0-9:_-]`) mapped to string values (1–1024
/// characters, no control characters), validated on insertion.
///
/// AWS documents no limit on the number of pairs for the device API; none is imposed here beyond
/// the 128 KB payload limit checked when a request is encoded.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct StatusDetails(BTreeMap<String, String>);

impl StatusDetails {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a pair after validating both halves, replacing any earlier value of `key`.
    ///
    /// # Errors
    /// [`InvalidInput::StatusDetailKey`] or [`InvalidInput::StatusDetailValue`].
    pub fn insert(
        &mut self,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<&mut Self, InvalidInput> {
        let (key, value) = (key.into(), value.into());
        if let Err(reason) = check_name(&key, DETAIL_KEY_MAX, is_thing_name_char) {
            return Err(InvalidInput::StatusDetailKey { key, reason });
        }
        if let Err(reason) = check_name(&value, DETAIL_VALUE_MAX, |c| !c.is_control()) {
            return Err(InvalidInput::StatusDetailValue { key, reason });
        }
        self.0.insert(key, value);
        Ok(self)
    }

    /// Builds a map from pairs, validating each.
    ///
    /// # Errors
    /// As for [`insert`](Self::insert), for the first invalid pair.
    pub fn from_pairs<K, V>(pairs: impl IntoIterator<Item = (K, V)>) -> Result<Self, InvalidInput>
    where
        K: Into<String>,
        V: Into<String>,
    {
        let mut details = Self::new();
        for (key, value) in pairs {
            details.insert(key, value)?;
        }
        Ok(details)
    }

    /// The value of `key`, if set.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// Iterates over the pairs in key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of pairs.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there are no pairs.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Decoding is tolerant: the service's own view of an execution is taken as it comes, since a
/// device cannot correct it. Only requests are validated.
impl<'de> Deserialize<'de> for StatusDetails {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self)
    }
}

/// A step timeout for StartNext or Update (`stepTimeoutInMinutes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StepTimeout(i64);

impl StepTimeout {
    /// A step timer of `minutes`, 1–10080 (7 days).
    ///
    /// # Errors
    /// [`InvalidInput::StepTimeout`] outside that range.
    pub fn minutes(minutes: i64) -> Result<Self, InvalidInput> {
        if (1..=STEP_TIMEOUT_MAX).contains(&minutes) {
            Ok(Self(minutes))
        } else {
            Err(InvalidInput::StepTimeout { minutes })
        }
    }

    /// Cancels the current step timer (`-1`); valid for Update only.
    pub const CANCEL: Self = Self(-1);

    /// The wire value in minutes (`-1` for [`CANCEL`](Self::CANCEL)).
    pub fn as_minutes(self) -> i64 {
        self.0
    }

    /// True for [`CANCEL`](Self::CANCEL).
    pub fn is_cancel(self) -> bool {
        self.0 == -1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ascii_byte_is_classified_like_the_c_library_for_thing_names() {
        for byte in 1u8..=127 {
            let c = char::from(byte);
            let expected = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':');
            assert_eq!(
                ThingName::new(c.to_string()).is_ok(),
                expected,
                "byte {byte}"
            );
        }
    }

    #[test]
    fn every_ascii_byte_is_classified_by_the_documented_pattern_for_job_ids() {
        for byte in 1u8..=127 {
            let c = char::from(byte);
            let expected = c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
            assert_eq!(JobId::new(c.to_string()).is_ok(), expected, "byte {byte}");
        }
    }

    #[test]
    fn name_lengths_are_checked_at_the_limits() {
        assert!(ThingName::new("a".repeat(128)).is_ok());
        assert!(matches!(
            ThingName::new("a".repeat(129)),
            Err(InvalidInput::ThingName {
                reason: NameError::TooLong { len: 129, max: 128 },
                ..
            })
        ));
        assert!(JobId::new("a".repeat(64)).is_ok());
        assert!(JobId::new("a".repeat(65)).is_err());
        assert!(matches!(
            ThingName::new(""),
            Err(InvalidInput::ThingName {
                reason: NameError::Empty,
                ..
            })
        ));
        assert!(JobId::new("").is_err());
    }

    #[test]
    fn next_is_not_a_job_id() {
        assert!(matches!(
            JobId::new("$next"),
            Err(InvalidInput::JobId {
                reason: NameError::InvalidCharacter {
                    character: '$',
                    position: 0
                },
                ..
            })
        ));
    }

    #[test]
    fn topic_wildcards_in_a_thing_name_are_refused() {
        for bad in ["x/+/#", "x/y", "+", "#", "a b", "Ü"] {
            assert!(ThingName::new(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn status_detail_keys_and_values_are_validated() {
        let mut details = StatusDetails::new();
        assert!(details.insert("phase:1", "downloading 40 %").is_ok());
        assert!(matches!(
            details.insert("bad key", "v"),
            Err(InvalidInput::StatusDetailKey { .. })
        ));
        assert!(matches!(
            details.insert("k", ""),
            Err(InvalidInput::StatusDetailValue {
                reason: NameError::Empty,
                ..
            })
        ));
        assert!(matches!(
            details.insert("k", "line\nbreak"),
            Err(InvalidInput::StatusDetailValue { .. })
        ));
        assert!(details.insert("k", "x".repeat(1024)).is_ok());
        assert!(details.insert("k", "x".repeat(1025)).is_err());
        assert!(details.insert("k".repeat(128), "v").is_ok());
        assert!(details.insert("k".repeat(129), "v").is_err());
        assert_eq!(details.len(), 3);
    }

    #[test]
    fn step_timeouts_outside_one_minute_to_seven_days_are_refused() {
        assert!(StepTimeout::minutes(0).is_err());
        assert!(StepTimeout::minutes(1).is_ok());
        assert!(StepTimeout::minutes(10_080).is_ok());
        assert!(StepTimeout::minutes(10_081).is_err());
        assert!(StepTimeout::minutes(-1).is_err());
        assert_eq!(StepTimeout::CANCEL.as_minutes(), -1);
    }

    #[test]
    fn client_tokens_are_printable_ascii_up_to_64_bytes() {
        assert!(check_client_token("k3x9-0001").is_ok());
        assert!(check_client_token(&"t".repeat(64)).is_ok());
        assert!(check_client_token(&"t".repeat(65)).is_err());
        assert!(check_client_token("with space").is_err());
        assert!(check_client_token("").is_err());
    }
}

//! Validated identifiers and request fields. Everything that ends up in a topic or a request is
//! checked here, before anything is published: a thing name like `x/+/#` can never reach a topic.

use std::borrow::Borrow;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

use crate::error::InvalidInput;
use crate::validate;

/// The job level `$next` of a Describe topic, which the service resolves to the next pending
/// execution (replies come back on the `$next` topics).
pub const NEXT_JOB: &str = "$next";

const STEP_TIMEOUT_MAX: i64 = 10_080;

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
    validate::thing_name,
    ThingName
);

validated_name!(
    /// A job ID: 1–64 characters of `[a-zA-Z0-9_-]`. `$next` is not a job ID; Describe of the
    /// next pending execution is [`Jobs::describe_next`](crate::Jobs::describe_next).
    JobId,
    validate::job_id,
    JobId
);

/// `statusDetails`: string keys (1–128 of `[a-zA-Z0-9:_-]`) mapped to string values (1–1024
/// characters, none of Unicode category Other), validated on insertion with the rules of
/// [`validate`](crate::validate).
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
        check_pair(&key, &value)?;
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

    /// Checks every pair again. Details decoded from a reply are taken as the service sent them;
    /// the client calls this before it publishes any, so nothing invalid is ever sent.
    ///
    /// # Errors
    /// As for [`insert`](Self::insert), for the first invalid pair.
    pub fn validate(&self) -> Result<(), InvalidInput> {
        self.0
            .iter()
            .try_for_each(|(key, value)| check_pair(key, value))
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

fn check_pair(key: &str, value: &str) -> Result<(), InvalidInput> {
    validate::status_detail_key(key).map_err(|reason| InvalidInput::StatusDetailKey {
        key: key.to_owned(),
        reason,
    })?;
    validate::status_detail_value(value).map_err(|reason| InvalidInput::StatusDetailValue {
        key: key.to_owned(),
        reason,
    })
}

/// Decoding is tolerant: the service's own view of an execution is taken as it comes, since a
/// device cannot correct it; [`StatusDetails::validate`] runs before anything is published.
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
    use crate::error::NameError;

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
}

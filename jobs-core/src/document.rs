//! [`Document`]: a job document, kept raw, that always parses.

use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::error::{DecodeError, Error};

/// A job document, kept as the raw JSON text the service sent.
///
/// Parsing is left to the caller ([`parse`](Self::parse), [`to_value`](Self::to_value)): a 32 KB
/// document costs several times more to turn into a `serde_json::Value` than to carry raw.
/// `Debug` shows only the length, because documents often carry pre-signed URLs and secrets.
///
/// **Every `Document` parses**: it is checked when it is made or received — JSON nested at
/// most 128 levels deep, numbers within `f64` range — so [`to_value`](Self::to_value) cannot
/// fail. A reply carrying a document that breaks this rule fails its call with
/// [`Error::Decode`].
#[derive(Clone, Serialize)]
#[serde(transparent)]
pub struct Document(Box<RawValue>);

impl Document {
    /// Wraps JSON text after checking that it is one valid JSON value that parses (see above).
    ///
    /// # Errors
    /// The parser's error otherwise.
    pub fn from_json(json: impl Into<String>) -> Result<Self, serde_json::Error> {
        Self::checked(RawValue::from_string(json.into())?)
    }

    /// Serialises a value into a document.
    ///
    /// # Errors
    /// The serialiser's error (for example a map with non-string keys), or the parser's when
    /// the result nests deeper than 128 levels.
    pub fn from_serialize<T: Serialize + ?Sized>(value: &T) -> Result<Self, serde_json::Error> {
        Self::checked(serde_json::value::to_raw_value(value)?)
    }

    fn checked(raw: Box<RawValue>) -> Result<Self, serde_json::Error> {
        serde_json::from_str::<Parses>(raw.get())?;
        Ok(Self(raw))
    }

    /// The raw JSON text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// Parses the document into any deserialisable type.
    ///
    /// # Errors
    /// [`Error::Document`] when the document does not fit `T`; its message names the field.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_str(self.0.get())
            .map_err(|error| Error::Document(DecodeError::json(error)))
    }

    /// Parses the document into a `serde_json::Value`. Never fails: every `Document` was
    /// checked to parse when it was made or received.
    pub fn to_value(&self) -> serde_json::Value {
        serde_json::from_str(self.0.get()).unwrap_or(serde_json::Value::Null)
    }
}

impl<'de> Deserialize<'de> for Document {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = Box::<RawValue>::deserialize(deserializer)?;
        Self::checked(raw).map_err(de::Error::custom)
    }
}

/// Deserialises any JSON value without building it, checking what building a
/// `serde_json::Value` checks: nesting (the parser's recursion limit) and number range.
struct Parses;

impl<'de> Deserialize<'de> for Parses {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ParsesVisitor)
    }
}

struct ParsesVisitor;

impl<'de> Visitor<'de> for ParsesVisitor {
    type Value = Parses;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Parses, E> {
        if value.is_finite() {
            Ok(Parses)
        } else {
            Err(E::custom("number out of range"))
        }
    }

    fn visit_str<E: de::Error>(self, _: &str) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_unit<E: de::Error>(self) -> Result<Parses, E> {
        Ok(Parses)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Parses, A::Error> {
        while seq.next_element::<Parses>()?.is_some() {}
        Ok(Parses)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Parses, A::Error> {
        while map.next_key::<de::IgnoredAny>()?.is_some() {
            map.next_value::<Parses>()?;
        }
        Ok(Parses)
    }
}

impl PartialEq for Document {
    fn eq(&self, other: &Self) -> bool {
        self.0.get() == other.0.get()
    }
}

impl Eq for Document {}

impl fmt::Debug for Document {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Document({} bytes)", self.0.get().len())
    }
}

//! [`Document`]: a job document, kept raw, that always parses.

use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use crate::error::{DecodeError, Error};

mod scan;

/// A job document, kept as the raw JSON text the service sent.
///
/// Parsing is left to the caller ([`parse`](Self::parse), [`to_value`](Self::to_value)): a 32 KB
/// document costs several times more to turn into a `serde_json::Value` than to carry raw.
/// `Debug` shows only the length, because documents often carry pre-signed URLs and secrets.
///
/// **Every `Document` parses**: it is checked when it is made or received, and accepted
/// exactly when `serde_json::from_str::<serde_json::Value>` accepts the text — JSON nested at
/// most 128 levels deep, numbers within `f64` range, no `\u` escape of a lone UTF-16
/// surrogate — so [`to_value`](Self::to_value) cannot fail and returns exactly that value. A
/// reply carrying a document that breaks this rule fails its call with [`Error::Decode`]. The
/// check is one vectorised pass over the bytes; only a text it cannot clear (nesting over 100
/// levels, an exponent that does not parse, a very long number, a surrogate escape that is not
/// half of a pair) goes through the parser's own check, which then decides.
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
        if scan::needs_full_check(raw.get()) {
            serde_json::from_str::<Parses>(raw.get())?;
        }
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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    /// The promise: a `Document` is made exactly when the text parses into a `Value`.
    fn agrees_with_value(json: &str) {
        let value = serde_json::from_str::<serde_json::Value>(json);
        let document = Document::from_json(json);
        assert_eq!(
            document.is_ok(),
            value.is_ok(),
            "{}: document {document:?}, value {value:?}",
            &json[..json.len().min(80)]
        );
        if let (Err(document), Err(value)) = (document, value) {
            assert_eq!(document.to_string(), value.to_string());
        }
    }

    fn nested(depth: usize, open: &str, close: &str, inner: &str) -> String {
        format!("{}{inner}{}", open.repeat(depth), close.repeat(depth))
    }

    #[test]
    fn nesting_is_refused_exactly_where_the_parser_refuses_it() {
        for depth in 95..135 {
            agrees_with_value(&nested(depth, "[", "]", "1"));
            agrees_with_value(&nested(depth, r#"{"a":"#, "}", "null"));
            agrees_with_value(&nested(depth, r#"[{"k":"#, "}]", "true"));
        }
    }

    #[test]
    fn numbers_are_refused_exactly_where_the_parser_refuses_them() {
        let long_integer = |digits: usize| format!("1{}", "0".repeat(digits - 1));
        for number in [
            "0",
            "-0",
            "1e308",
            "1.7976931348623157e308",
            "1.8e308",
            "1e309",
            "-1e400",
            "1e-400",
            "0.1e310",
            "1E400",
            "123.456e-7",
            "-0.0e+0",
        ] {
            agrees_with_value(number);
            agrees_with_value(&format!(r#"{{"n":[{number},2]}}"#));
        }
        for digits in [290, 299, 300, 301, 308, 309, 310, 400] {
            agrees_with_value(&long_integer(digits));
            agrees_with_value(&format!("[{}.5]", long_integer(digits)));
        }
    }

    #[test]
    fn brackets_and_numbers_inside_strings_are_text() {
        let deep = "[".repeat(200);
        for (json, parses) in [
            (format!(r#""{deep}""#), true),
            (format!(r#"{{"{deep}":"1e400"}}"#), true),
            (r#"["a\"[[[", "\\", "\u005b1e400"]"#.to_owned(), true),
            // The key is `k\`: the string ends at the quote after the escaped backslash, so
            // the number that follows is a number.
            (r#"{"k\\":"[","n":1e400}"#.to_owned(), false),
            // An escaped quote does not end a string; the deep array after it is an array.
            (format!(r#"["\"", {}]"#, nested(200, "[", "]", "0")), false),
        ] {
            assert_eq!(Document::from_json(json.as_str()).is_ok(), parses, "{json}");
            agrees_with_value(&json);
        }
    }

    #[test]
    fn surrogate_escapes_are_refused_exactly_where_the_parser_refuses_them() {
        for escape in [
            r"\ud800",
            r"\uDBFF",
            r"\udc00",
            r"\uDFFF",
            r"\ud800\ud800",
            r"\udc00\ud800",
            r"\ud800x",
            r"\ud800\u0041",
            r"\ud800\n",
            r"\ud83d\ude00",
            r"\uD83D\uDE00",
            r"\ud7ff",
            r"\ue000",
            r"\\ud800",
            r"a\\\ud800",
            r"\u00e9\ud800\udc00",
        ] {
            agrees_with_value(&format!(r#"{{"s":"{escape}"}}"#));
            agrees_with_value(&format!(r#"["{escape}", 1]"#));
            agrees_with_value(&format!(r#"{{"{escape}":1}}"#));
        }
        assert!(Document::from_json(r#"{"s":"\ud800"}"#).is_err());
        let emoji = Document::from_json(r#"{"s":"\ud83d\ude00"}"#).unwrap();
        assert_eq!(emoji.to_value()["s"], "\u{1F600}");
    }

    /// A tiny deterministic generator for the mutation tests (here and in `scan`).
    pub(super) struct Lcg(pub(super) u64);

    impl Lcg {
        pub(super) fn below(&mut self, n: usize) -> usize {
            self.0 = self
                .0
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (self.0 >> 33) as usize % n
        }

        pub(super) fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
            from[self.below(from.len())]
        }
    }

    #[test]
    fn mutated_documents_are_accepted_exactly_when_serde_json_accepts_them() {
        let seeds = [
            r#"{"operation":"install","url":"https://x/y","steps":[1,2.5,-3e2,{"a":null}]}"#,
            r#"["\u0041\n", {"k\"":true}, 12345678901234567890, "\ud83d\ude00"]"#,
            r#"{"deep":[[[[{"x":[1,[2,[3]]]}]]]],"s":"a\\b"}"#,
        ];
        let pieces = [
            r"\ud800",
            r"\udc00",
            r"\u0041",
            r"\ud83d",
            r"\ude00",
            r"\\",
            r"\",
            "\"",
            "[",
            "]",
            "{",
            "}",
            ",",
            ":",
            "1e400",
            "-1e-400",
            "9",
            "0.5",
            "e",
            "1E308",
            "null",
            " ",
            "é",
            "[[[[[[[[[[",
            "]]]]]]]]]]",
        ];
        let mut rng = Lcg(7);
        let (mut accepted, mut refused) = (0, 0);
        for round in 0..20_000 {
            let seed = seeds[round % seeds.len()];
            let mut text = seed.to_owned();
            for _ in 0..1 + rng.below(3) {
                let piece = pieces[rng.below(pieces.len())];
                let mut at = rng.below(text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                if rng.below(2) == 0 {
                    text.insert_str(at, piece);
                } else {
                    let mut end = (at + piece.len()).min(text.len());
                    while !text.is_char_boundary(end) {
                        end += 1;
                    }
                    text.replace_range(at..end, piece);
                }
            }
            let value = serde_json::from_str::<serde_json::Value>(&text);
            let document = Document::from_json(text.as_str());
            assert_eq!(document.is_ok(), value.is_ok(), "{text}");
            if let (Ok(document), Ok(value)) = (document, value) {
                assert_eq!(document.to_value(), value, "{text}");
                accepted += 1;
            } else {
                refused += 1;
            }
        }
        // Both verdicts are exercised.
        assert!(
            accepted > 1_000 && refused > 1_000,
            "{accepted} / {refused}"
        );
    }

    #[test]
    fn a_received_document_is_checked_as_a_made_one() {
        let deep = nested(200, "[", "]", "0");
        let reply = format!(r#"{{"document":{deep}}}"#);
        #[derive(Deserialize)]
        struct Reply {
            #[allow(dead_code, reason = "only decoding is tested")]
            document: Document,
        }
        assert!(serde_json::from_str::<Reply>(&reply).is_err());
        assert!(serde_json::from_str::<Reply>(r#"{"document":{"n":1.5e3}}"#).is_ok());
    }
}

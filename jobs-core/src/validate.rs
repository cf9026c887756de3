//! The AWS IoT rules for identifiers and text fields, in one place: the client checks every
//! value with them before publishing, and the `jobs-mock` simulator judges requests with the
//! same functions, so a test against the simulator refuses what AWS would refuse.
//!
//! Lengths count characters (Unicode scalar values), as AWS's patterns do: a status detail
//! value of 1024 × "é" (2048 bytes) is valid. "No `\p{C}`" refuses the whole Unicode category
//! *Other*: controls (Cc), format characters (Cf: U+00AD, U+200B, U+FEFF, …), private use (Co)
//! and unassigned code points (Cn), as of the Unicode version of the `unicode-general-category`
//! crate (surrogates, Cs, cannot occur in a Rust string).

use unicode_general_category::{GeneralCategory, get_general_category};

use crate::error::NameError;

/// Longest thing name, in characters.
pub const THING_NAME_MAX: usize = 128;
/// Longest job ID, in characters.
pub const JOB_ID_MAX: usize = 64;
/// Longest `statusDetails` key, in characters.
pub const STATUS_DETAIL_KEY_MAX: usize = 128;
/// Longest `statusDetails` value, in characters.
pub const STATUS_DETAIL_VALUE_MAX: usize = 1024;
/// Longest client token, in bytes (all printable ASCII).
pub const CLIENT_TOKEN_MAX: usize = 64;

/// A thing name: 1–128 characters of `[a-zA-Z0-9:_-]`, case-sensitive.
///
/// # Errors
/// What is wrong with `name`.
pub fn thing_name(name: &str) -> Result<(), NameError> {
    pattern(name, THING_NAME_MAX, is_thing_name_char)
}

/// A job ID: 1–64 characters of `[a-zA-Z0-9_-]`.
///
/// # Errors
/// What is wrong with `id`.
pub fn job_id(id: &str) -> Result<(), NameError> {
    pattern(id, JOB_ID_MAX, is_job_id_char)
}

/// A `statusDetails` key: 1–128 characters of `[a-zA-Z0-9:_-]`.
///
/// # Errors
/// What is wrong with `key`.
pub fn status_detail_key(key: &str) -> Result<(), NameError> {
    pattern(key, STATUS_DETAIL_KEY_MAX, is_thing_name_char)
}

/// A `statusDetails` value: 1–1024 characters, none of Unicode category Other (`[^\p{C}]+`).
///
/// # Errors
/// What is wrong with `value`.
pub fn status_detail_value(value: &str) -> Result<(), NameError> {
    text(value, STATUS_DETAIL_VALUE_MAX)
}

/// A client token: 1–64 bytes of printable ASCII. AWS documents no limit for Jobs; 64 is the
/// documented Shadow limit and the AWS C Jobs library's check (protocol reference §8.1).
///
/// # Errors
/// What is wrong with `token`.
pub fn client_token(token: &str) -> Result<(), NameError> {
    pattern(token, CLIENT_TOKEN_MAX, |c| c.is_ascii_graphic())
}

/// Free text of the AWS pattern `[^\p{C}]+` with at most `max` characters (status detail
/// values; in the control plane a job's `description` or a cancel's `comment`).
///
/// # Errors
/// What is wrong with `value`.
pub fn text(value: &str, max: usize) -> Result<(), NameError> {
    pattern(value, max, |c| !is_other(c))
}

/// True for a character of Unicode category Other (`\p{C}`): Cc, Cf, Co, Cn (and Cs).
pub fn is_other(c: char) -> bool {
    matches!(
        get_general_category(c),
        GeneralCategory::Control
            | GeneralCategory::Format
            | GeneralCategory::PrivateUse
            | GeneralCategory::Unassigned
            | GeneralCategory::Surrogate
    )
}

fn is_job_id_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

fn is_thing_name_char(c: char) -> bool {
    is_job_id_char(c) || c == ':'
}

/// Non-empty, at most `max` characters, every one `allowed`.
fn pattern(value: &str, max: usize, allowed: impl Fn(char) -> bool) -> Result<(), NameError> {
    if value.is_empty() {
        return Err(NameError::Empty);
    }
    let mut count = 0;
    for (position, character) in value.char_indices() {
        if !allowed(character) {
            return Err(NameError::InvalidCharacter {
                character,
                position,
            });
        }
        count += 1;
    }
    if count > max {
        return Err(NameError::TooLong { len: count, max });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_ascii_byte_is_classified_like_the_c_library_for_thing_names() {
        for byte in 1u8..=127 {
            let c = char::from(byte);
            let expected = c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | ':');
            assert_eq!(thing_name(&c.to_string()).is_ok(), expected, "byte {byte}");
        }
    }

    #[test]
    fn every_ascii_byte_is_classified_by_the_documented_pattern_for_job_ids() {
        for byte in 1u8..=127 {
            let c = char::from(byte);
            let expected = c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
            assert_eq!(job_id(&c.to_string()).is_ok(), expected, "byte {byte}");
        }
    }

    #[test]
    fn lengths_count_characters_not_bytes() {
        assert_eq!(status_detail_value(&"é".repeat(1024)), Ok(()));
        assert_eq!(
            status_detail_value(&"é".repeat(1025)),
            Err(NameError::TooLong {
                len: 1025,
                max: 1024
            })
        );
        assert_eq!(thing_name(&"a".repeat(128)), Ok(()));
        assert_eq!(
            thing_name(&"a".repeat(129)),
            Err(NameError::TooLong { len: 129, max: 128 })
        );
    }

    #[test]
    fn every_kind_of_other_character_is_refused_in_text() {
        for (c, name) in [
            ('\u{7}', "Cc"),
            ('\n', "Cc"),
            ('\u{AD}', "Cf soft hyphen"),
            ('\u{200B}', "Cf zero-width space"),
            ('\u{FEFF}', "Cf byte order mark"),
            ('\u{E000}', "Co private use"),
            ('\u{10FFFF}', "Cn unassigned"),
        ] {
            let value = format!("ok{c}");
            assert_eq!(
                status_detail_value(&value),
                Err(NameError::InvalidCharacter {
                    character: c,
                    position: 2
                }),
                "{name}"
            );
        }
        for fine in ["downloading 40 %", "é", "日本語", "emoji 🚀", "tab-free"] {
            assert_eq!(status_detail_value(fine), Ok(()), "{fine}");
        }
    }

    #[test]
    fn client_tokens_are_printable_ascii_up_to_64_bytes() {
        assert_eq!(client_token("k3x9-0001"), Ok(()));
        assert_eq!(client_token(&"t".repeat(64)), Ok(()));
        assert!(client_token(&"t".repeat(65)).is_err());
        assert!(client_token("with space").is_err());
        assert_eq!(client_token(""), Err(NameError::Empty));
    }
}

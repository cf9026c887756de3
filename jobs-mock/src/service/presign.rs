//! Pre-signed download URLs: the `${aws:iot:s3-presigned-url:…}` and
//! `${aws:iot:s3-presigned-url-v2:…}` placeholders of job documents, and the URLs that replace
//! them, signed with HMAC-SHA256 under a per-run key and served by `jobs-service`.
//!
//! # The URL scheme
//! A placeholder naming `BUCKET/KEY` (as `https://s3.REGION.amazonaws.com/BUCKET/KEY`,
//! `https://s3.amazonaws.com/BUCKET/KEY` or `BUCKET/KEY`) becomes
//!
//! ```text
//! {base}/BUCKET/KEY?Expires=SECONDS&Signature=HEX
//! ```
//!
//! where `base` is the service's file base URL (`http://ADDRESS/jobs-service/files` under
//! `jobs-service --http ADDRESS`), `KEY` is percent-encoded except for `/` and
//! `A-Za-z0-9-._~`, `Expires` is the expiry on the service's clock (seconds since the epoch:
//! now + `expiresInSec`), and `Signature` is the lowercase hex HMAC-SHA256, under the
//! service's key, of `GET\n/BUCKET/KEY\nSECONDS` (the path in that same canonical encoding).
//! The query names are those of S3's older query-string authentication; the signature is not
//! AWS's (no credentials exist here).
//!
//! Guarantees: a URL is valid for GET only, until `Expires` on the service's clock (so under
//! `--time-scale N` it lasts `expiresInSec / N` real seconds); changing any part of the path
//! or `Expires` invalidates it; the key is drawn for each service (two runs never accept each
//! other's URLs), from the standard library's randomly seeded hasher — unpredictable enough for
//! a local emulator, not a secret to protect anything real.

use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hmac::{Hmac, KeyInit, Mac};
use jobs_core::Document;
use sha2::Sha256;

/// The placeholder prefixes AWS's docs show, the newer first.
const PREFIXES: [&str; 2] = [
    "${aws:iot:s3-presigned-url-v2:",
    "${aws:iot:s3-presigned-url:",
];

/// Longest S3 key, in bytes (S3's limit).
const KEY_MAX: usize = 1024;

/// An object named by a placeholder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectName {
    /// The bucket: 3–63 of `a-z0-9.-`, starting and ending with a letter or digit (S3's rule).
    pub bucket: String,
    /// The key: 1–1024 bytes; no empty, `.` or `..` segment (our rule, so that a key maps to
    /// a file under the store's directory).
    pub key: String,
}

impl ObjectName {
    /// Checks a bucket and key.
    ///
    /// # Errors
    /// What is wrong, for a person.
    pub fn new(bucket: &str, key: &str) -> Result<Self, String> {
        let bucket_ok = (3..=63).contains(&bucket.len())
            && bucket
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && bucket.starts_with(|c: char| c.is_ascii_alphanumeric())
            && bucket.ends_with(|c: char| c.is_ascii_alphanumeric());
        if !bucket_ok {
            return Err(format!(
                "bucket {bucket:?} is not an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')"
            ));
        }
        let segments_ok = key
            .split('/')
            .all(|s| !s.is_empty() && s != "." && s != "..");
        if key.is_empty() || key.len() > KEY_MAX || !segments_ok || key.contains('\0') {
            return Err(format!(
                "key {key:?} must be 1 to {KEY_MAX} bytes without empty, '.' or '..' segments"
            ));
        }
        Ok(Self {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
        })
    }

    /// `/BUCKET/KEY`, percent-encoded canonically (what is signed, and the URL's path).
    pub fn canonical_path(&self) -> String {
        format!("/{}/{}", self.bucket, encode_key(&self.key))
    }
}

/// Percent-encodes everything but `A-Za-z0-9-._~` and `/`.
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for byte in key.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// One placeholder in a document's JSON text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Placeholder {
    /// Byte range of `${…}` in the text.
    start: usize,
    end: usize,
    object: ObjectName,
}

/// Finds every placeholder of `text`. The URL part must be plain (no JSON escapes, quotes or
/// spaces) and name `https://s3.REGION.amazonaws.com/BUCKET/KEY`,
/// `https://s3.amazonaws.com/BUCKET/KEY` or `BUCKET/KEY`.
fn find(text: &str) -> Result<Vec<Placeholder>, String> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some((start, prefix)) = PREFIXES
        .iter()
        .filter_map(|p| text.get(from..)?.find(p).map(|i| (from + i, *p)))
        .min_by_key(|(i, _)| *i)
    {
        let body_start = start + prefix.len();
        let close = text
            .get(body_start..)
            .and_then(|rest| rest.find('}'))
            .ok_or_else(|| format!("placeholder at byte {start} has no closing '}}'"))?;
        let end = body_start + close + 1;
        let url = text.get(body_start..end - 1).unwrap_or_default();
        if url.contains(['"', '\\', ' ', '{']) {
            return Err(format!(
                "placeholder {:?} must name its URL without quotes, escapes or spaces",
                text.get(start..end).unwrap_or_default()
            ));
        }
        found.push(Placeholder {
            start,
            end,
            object: parse_url(url)?,
        });
        from = end;
    }
    Ok(found)
}

/// The object a placeholder's URL part names.
fn parse_url(url: &str) -> Result<ObjectName, String> {
    let path = match url.strip_prefix("https://") {
        None => url,
        Some(rest) => {
            let (host, path) = rest
                .split_once('/')
                .ok_or_else(|| format!("{url:?} names no bucket and key"))?;
            let s3_host = host == "s3.amazonaws.com"
                || host
                    .strip_prefix("s3.")
                    .and_then(|h| h.strip_suffix(".amazonaws.com"))
                    .is_some_and(|region| {
                        !region.is_empty()
                            && region
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
                    });
            if !s3_host {
                return Err(format!(
                    "{url:?}: the host must be s3.amazonaws.com or s3.REGION.amazonaws.com"
                ));
            }
            path
        }
    };
    let (bucket, key) = path
        .split_once('/')
        .ok_or_else(|| format!("{url:?} names no bucket and key (BUCKET/KEY)"))?;
    ObjectName::new(bucket, key)
}

/// Whether `document` has pre-signed URL placeholders; an error names a malformed one.
///
/// # Errors
/// A placeholder that cannot be read, for a person.
pub(crate) fn has_placeholders(document: &Document) -> Result<bool, String> {
    find(document.as_json()).map(|found| !found.is_empty())
}

/// Signs URLs for the objects of job documents, and checks them when they come back.
#[derive(Clone)]
pub struct UrlSigner {
    key: [u8; 32],
    base: Option<String>,
}

impl std::fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UrlSigner")
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

impl Default for UrlSigner {
    fn default() -> Self {
        Self::new()
    }
}

impl UrlSigner {
    /// A signer with a fresh key and no base URL (placeholders are left as they are).
    pub fn new() -> Self {
        static SALT: AtomicU64 = AtomicU64::new(0);
        let salt = SALT.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let mut key = [0u8; 32];
        for (i, chunk) in key.chunks_mut(8).enumerate() {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(salt);
            hasher.write_u128(nanos);
            hasher.write_usize(i);
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        Self { key, base: None }
    }

    /// The base URL the placeholders' URLs start with (such as
    /// `http://127.0.0.1:8080/jobs-service/files`, no trailing `/`), or `None`.
    pub fn base(&self) -> Option<&str> {
        self.base.as_deref()
    }

    /// Sets the base URL; `None` leaves placeholders as they are.
    pub fn set_base(&mut self, base: Option<String>) {
        self.base = base.map(|b| b.trim_end_matches('/').to_owned());
    }

    fn mac(&self, path: &str, expires: i64) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"GET\n");
        mac.update(path.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The signature of a GET of `object` until `expires` (seconds since the epoch).
    pub fn signature(&self, object: &ObjectName, expires: i64) -> String {
        let bytes = self
            .mac(&object.canonical_path(), expires)
            .finalize()
            .into_bytes();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The URL of `object` valid until `expires`, if a base URL is set.
    pub fn url(&self, object: &ObjectName, expires: i64) -> Option<String> {
        let base = self.base.as_deref()?;
        Some(format!(
            "{base}{}?Expires={expires}&Signature={}",
            object.canonical_path(),
            self.signature(object, expires)
        ))
    }

    /// Whether `signature` (hex) signs a GET of `object` until `expires`, compared in
    /// constant time.
    pub fn verify(&self, object: &ObjectName, expires: i64, signature: &str) -> bool {
        let Some(bytes) = decode_hex(signature) else {
            return false;
        };
        self.mac(&object.canonical_path(), expires)
            .verify_slice(&bytes)
            .is_ok()
    }

    /// `document` with every placeholder replaced by a URL valid until `expires`; the
    /// document itself when there is no base URL or nothing to replace.
    pub(crate) fn substitute(&self, document: &Document, expires: i64) -> Document {
        if self.base.is_none() {
            return document.clone();
        }
        let text = document.as_json();
        let Ok(found) = find(text) else {
            return document.clone();
        };
        if found.is_empty() {
            return document.clone();
        }
        let mut out = String::with_capacity(text.len());
        let mut at = 0;
        for placeholder in &found {
            out.push_str(text.get(at..placeholder.start).unwrap_or_default());
            out.push_str(&self.url(&placeholder.object, expires).unwrap_or_default());
            at = placeholder.end;
        }
        out.push_str(text.get(at..).unwrap_or_default());
        // The URL has no character JSON strings must escape, so the text stays valid JSON.
        Document::from_json(out).unwrap_or_else(|error| {
            log::error!("a substituted document is not JSON ({error}); sending it unchanged");
            document.clone()
        })
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(bucket: &str, key: &str) -> ObjectName {
        ObjectName::new(bucket, key).unwrap()
    }

    #[test]
    fn the_three_spellings_of_a_placeholder_name_the_same_object() {
        for text in [
            r#"{"url":"${aws:iot:s3-presigned-url:https://s3.eu-west-1.amazonaws.com/fw-bucket/v2/app.bin}"}"#,
            r#"{"url":"${aws:iot:s3-presigned-url-v2:https://s3.amazonaws.com/fw-bucket/v2/app.bin}"}"#,
            r#"{"url":"${aws:iot:s3-presigned-url:fw-bucket/v2/app.bin}"}"#,
        ] {
            let found = find(text).unwrap();
            assert_eq!(found.len(), 1, "{text}");
            assert_eq!(found[0].object, object("fw-bucket", "v2/app.bin"));
        }
        assert!(
            find(r#"{"a":"${aws:iot:parameter:x}"}"#)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn malformed_placeholders_are_refused_with_a_reason() {
        for text in [
            r#"{"u":"${aws:iot:s3-presigned-url:fw-bucket/app.bin"}"#,
            r#"{"u":"${aws:iot:s3-presigned-url:https://example.com/fw-bucket/a}"}"#,
            r#"{"u":"${aws:iot:s3-presigned-url:Bad_Bucket/a}"}"#,
            r#"{"u":"${aws:iot:s3-presigned-url:fw-bucket/../etc/passwd}"}"#,
            r#"{"u":"${aws:iot:s3-presigned-url:fw-bucket}"}"#,
            r#"{"u":"${aws:iot:s3-presigned-url:fw-bucket/a\"b}"}"#,
        ] {
            assert!(find(text).is_err(), "{text}");
        }
    }

    #[test]
    fn urls_verify_until_changed_in_any_part() {
        let mut signer = UrlSigner::new();
        let fw = object("fw-bucket", "v2/app image.bin");
        assert_eq!(signer.url(&fw, 100), None, "no base, no URL");
        signer.set_base(Some("http://127.0.0.1:8080/jobs-service/files/".into()));
        let url = signer.url(&fw, 100).unwrap();
        let signature = signer.signature(&fw, 100);
        assert_eq!(
            url,
            format!(
                "http://127.0.0.1:8080/jobs-service/files/fw-bucket/v2/app%20image.bin\
                 ?Expires=100&Signature={signature}"
            )
        );
        assert!(signer.verify(&fw, 100, &signature));
        assert!(!signer.verify(&fw, 101, &signature));
        assert!(!signer.verify(&object("fw-bucket", "v2/app.bin"), 100, &signature));
        assert!(!signer.verify(&fw, 100, &signature[1..]));
        assert!(!signer.verify(&fw, 100, "zz"));
        assert!(
            !UrlSigner::new().verify(&fw, 100, &signature),
            "another run's key"
        );
    }

    #[test]
    fn substitution_replaces_only_the_placeholders_and_keeps_valid_json() {
        let mut signer = UrlSigner::new();
        let document = Document::from_json(
            r#"{"operation":"install","files":["${aws:iot:s3-presigned-url-v2:fw-bucket/a.bin}","${aws:iot:s3-presigned-url:fw-bucket/b.bin}"],"size":3}"#,
        )
        .unwrap();
        assert_eq!(signer.substitute(&document, 50), document);
        signer.set_base(Some("http://h:1/f".into()));
        let value = signer.substitute(&document, 50).to_value();
        let a = object("fw-bucket", "a.bin");
        assert_eq!(
            value["files"][0],
            format!(
                "http://h:1/f/fw-bucket/a.bin?Expires=50&Signature={}",
                signer.signature(&a, 50)
            )
        );
        assert!(
            value["files"][1]
                .as_str()
                .unwrap()
                .starts_with("http://h:1/f/fw-bucket/b.bin?")
        );
        assert_eq!(value["size"], 3);
    }
}

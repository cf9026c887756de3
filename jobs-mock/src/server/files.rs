//! The object store `jobs-service` serves pre-signed downloads from, over the same HTTP
//! server as the AWS IoT API, under [`FILES_PREFIX`]:
//!
//! - `GET /jobs-service/files/BUCKET/KEY?Expires=…&Signature=…` — a URL that replaced a
//!   `${aws:iot:s3-presigned-url…}` placeholder (scheme:
//!   [`presign`](crate::service::presign)). 200 with the object, or with
//!   `Range: bytes=N-`, `bytes=N-M` or `bytes=-N` 206 with `Content-Range` (a range that
//!   starts past the end: 416 `InvalidRange`; a header that is not one such range is ignored
//!   and the whole object sent, our choice). Errors are S3's, with an XML body
//!   `<Error><Code>…</Code><Message>…</Message>…</Error>`: 403 `AccessDenied` "Request has
//!   expired" once `Expires` has passed on the service's clock, 403 `SignatureDoesNotMatch`
//!   for a changed path, expiry or signature (checked first), 403 `AccessDenied` without
//!   `Expires` and `Signature`, 404 `NoSuchBucket` / `NoSuchKey`, 503 `SlowDown` beyond 64
//!   transfers at once.
//! - `PUT /jobs-service/files/BUCKET/KEY` with the object as body: stores it (the emulator's
//!   own, unsigned, like `/jobs-service/reset`); the bucket is created if needed. 200.
//!
//! Objects are files `DIR/BUCKET/KEY` under `jobs-service --files DIR` (put there by hand, by
//! PUT, or by [`Files::put`]); without `--files` nothing is stored and every GET is
//! `NoSuchBucket`. Each transfer runs on a thread of its own, so a download never holds up the
//! API.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::service::Clock;
use crate::service::presign::{ObjectName, UrlSigner};

/// The path prefix of the object store on the HTTP server.
pub const FILES_PREFIX: &str = "/jobs-service/files";

/// The most transfers (GET or PUT) served at once.
pub const MAX_TRANSFERS: usize = 64;

/// A response of the object store.
pub struct FileReply {
    /// The HTTP status.
    pub status: u16,
    /// Headers (name, value).
    pub headers: Vec<(&'static str, String)>,
    /// The body.
    pub body: Body,
}

impl std::fmt::Debug for FileReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileReply")
            .field("status", &self.status)
            .field("headers", &self.headers)
            .finish_non_exhaustive()
    }
}

/// The body of a [`FileReply`].
#[derive(Debug)]
#[non_exhaustive]
pub enum Body {
    /// Bytes in memory (errors, PUT replies).
    Bytes(Vec<u8>),
    /// `len` bytes of an open file, from its current position.
    File {
        /// The file, positioned at the first byte to send.
        file: File,
        /// How many bytes to send.
        len: u64,
    },
}

impl Body {
    /// The body as a reader and its length.
    pub fn into_reader(self) -> (Box<dyn Read + Send>, u64) {
        match self {
            Self::Bytes(bytes) => {
                let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
                (Box::new(io::Cursor::new(bytes)), len)
            }
            Self::File { file, len } => (Box::new(file.take(len)), len),
        }
    }
}

/// The object store and the checks of pre-signed URLs.
#[derive(Debug)]
pub struct Files {
    root: Option<PathBuf>,
    signer: UrlSigner,
    clock: Clock,
    active: AtomicUsize,
    requests: AtomicU64,
}

/// Releases a transfer slot when dropped.
#[derive(Debug)]
pub struct Slot<'a>(&'a AtomicUsize);

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Files {
    /// A store under `root` (none: nothing stored), checking URLs with `signer` against
    /// `clock` (the service's).
    pub fn new(root: Option<PathBuf>, signer: UrlSigner, clock: Clock) -> Self {
        Self {
            root,
            signer,
            clock,
            active: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
        }
    }

    /// The directory objects are stored in, if any.
    pub fn root(&self) -> Option<&Path> {
        self.root.as_deref()
    }

    /// Takes a transfer slot, or `None` when [`MAX_TRANSFERS`] are running.
    pub fn slot(&self) -> Option<Slot<'_>> {
        let previous = self.active.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(&self.active);
        (previous < MAX_TRANSFERS).then_some(slot)
    }

    /// Stores `data` as `object` (replacing it), creating the bucket if needed; returns its
    /// size. The object appears whole or not at all (written beside it, then renamed).
    ///
    /// # Errors
    /// No `--files` directory ([`io::ErrorKind::NotFound`]), or the file system's error.
    pub fn put(&self, object: &ObjectName, mut data: impl Read) -> io::Result<u64> {
        let path = self.path(object).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                "jobs-service stores no files (no --files DIR)",
            )
        })?;
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let n = self.requests.fetch_add(1, Ordering::Relaxed);
        let partial = path.with_file_name(format!(
            ".{}.upload-{}-{n}",
            path.file_name()
                .and_then(|f| f.to_str())
                .unwrap_or("object"),
            std::process::id()
        ));
        let written = (|| {
            let mut file = File::create(&partial)?;
            let size = io::copy(&mut data, &mut file)?;
            file.flush()?;
            std::fs::rename(&partial, &path)?;
            Ok(size)
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&partial);
        }
        written
    }

    fn path(&self, object: &ObjectName) -> Option<PathBuf> {
        let mut path = self.root.as_ref()?.join(&object.bucket);
        for segment in object.key.split('/') {
            path.push(segment);
        }
        Some(path)
    }

    /// Answers `GET` (with `range`, the `Range` header) or `PUT` (reading the body from
    /// `body`) of `url` (path and query, starting with [`FILES_PREFIX`]).
    pub fn handle(
        &self,
        method: &str,
        url: &str,
        range: Option<&str>,
        body: &mut dyn Read,
    ) -> FileReply {
        let (path, query) = url.split_once('?').unwrap_or((url, ""));
        let Some(object) = path
            .strip_prefix(FILES_PREFIX)
            .and_then(|rest| rest.strip_prefix('/'))
            .and_then(|rest| rest.split_once('/'))
        else {
            return self.error(
                400,
                "InvalidArgument",
                "the path names no bucket and key",
                "",
            );
        };
        let (bucket, key) = (percent_decode(object.0), percent_decode(object.1));
        let object = match ObjectName::new(&bucket, &key) {
            Ok(object) => object,
            Err(reason) => return self.error(400, "InvalidArgument", &reason, ""),
        };
        match method {
            "GET" => self.get(&object, query, range),
            "PUT" => self.upload(&object, body),
            _ => self.error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you \
                 provided (URLs are signed for GET).",
                "",
            ),
        }
    }

    fn upload(&self, object: &ObjectName, body: &mut dyn Read) -> FileReply {
        match self.put(object, body) {
            Ok(size) => FileReply {
                status: 200,
                headers: vec![("ETag", format!("\"{size}\""))],
                body: Body::Bytes(Vec::new()),
            },
            Err(error) if error.kind() == io::ErrorKind::NotFound && self.root.is_none() => {
                self.no_store(object)
            }
            Err(error) => self.error(500, "InternalError", &error.to_string(), ""),
        }
    }

    fn no_store(&self, object: &ObjectName) -> FileReply {
        self.error(
            404,
            "NoSuchBucket",
            "The specified bucket does not exist (jobs-service stores no files: start it with \
             --files DIR).",
            &format!("<BucketName>{}</BucketName>", xml_escape(&object.bucket)),
        )
    }

    fn get(&self, object: &ObjectName, query: &str, range: Option<&str>) -> FileReply {
        let mut expires = None;
        let mut signature = None;
        for pair in query.split('&') {
            match pair.split_once('=') {
                Some(("Expires", value)) => expires = value.parse::<i64>().ok(),
                Some(("Signature", value)) => signature = Some(value),
                _ => {}
            }
        }
        let (Some(expires), Some(signature)) = (expires, signature) else {
            return self.error(
                403,
                "AccessDenied",
                "Query-string authentication requires the Signature and Expires parameters",
                "",
            );
        };
        if !self.signer.verify(object, expires, signature) {
            return self.error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
                "",
            );
        }
        let now_ms = self.clock.now_millis();
        if now_ms >= expires.saturating_mul(1000) {
            return self.error(
                403,
                "AccessDenied",
                "Request has expired",
                &format!(
                    "<Expires>{}</Expires><ServerTime>{}</ServerTime>",
                    iso8601(expires),
                    iso8601(now_ms.div_euclid(1000))
                ),
            );
        }
        let Some(path) = self.path(object) else {
            return self.no_store(object);
        };
        let bucket_exists = self
            .root
            .as_ref()
            .is_some_and(|root| root.join(&object.bucket).is_dir());
        if !bucket_exists {
            return self.no_store(object);
        }
        let opened = File::open(&path).and_then(|file| {
            let meta = file.metadata()?;
            if meta.is_file() {
                Ok((file, meta.len()))
            } else {
                Err(io::Error::new(io::ErrorKind::NotFound, "not a file"))
            }
        });
        let (mut file, size) = match opened {
            Ok(opened) => opened,
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                return self.error(
                    404,
                    "NoSuchKey",
                    "The specified key does not exist.",
                    &format!("<Key>{}</Key>", xml_escape(&object.key)),
                );
            }
            Err(error) => return self.error(500, "InternalError", &error.to_string(), ""),
        };
        let mut headers = vec![
            ("Content-Type", "application/octet-stream".to_owned()),
            ("Accept-Ranges", "bytes".to_owned()),
        ];
        let (status, start, len) = match range.and_then(|r| parse_range(r, size)) {
            None => (200, 0, size),
            Some(Err(())) => {
                headers.push(("Content-Range", format!("bytes */{size}")));
                let mut reply = self.error(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                    &format!(
                        "<RangeRequested>{}</RangeRequested>",
                        xml_escape(range.unwrap_or(""))
                    ),
                );
                reply.headers.extend(headers);
                return reply;
            }
            Some(Ok((start, end))) => {
                headers.push(("Content-Range", format!("bytes {start}-{end}/{size}")));
                (206, start, end - start + 1)
            }
        };
        if let Err(error) = file.seek(SeekFrom::Start(start)) {
            return self.error(500, "InternalError", &error.to_string(), "");
        }
        FileReply {
            status,
            headers,
            body: Body::File { file, len },
        }
    }

    /// An S3-shaped error: status, `Content-Type: application/xml`, and
    /// `<Error><Code/><Message/>{extra}<RequestId/><HostId/></Error>`.
    pub fn error(&self, status: u16, code: &str, message: &str, extra: &str) -> FileReply {
        let id = self.requests.fetch_add(1, Ordering::Relaxed);
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{}</Message>{extra}<RequestId>{id:016X}</RequestId>\
             <HostId>jobs-service</HostId></Error>",
            xml_escape(message)
        );
        FileReply {
            status,
            headers: vec![("Content-Type", "application/xml".to_owned())],
            body: Body::Bytes(body.into_bytes()),
        }
    }
}

/// A single byte range of an object of `size` bytes: `Some(Ok((first, last)))`, inclusive;
/// `Some(Err(()))` when it starts past the end; `None` when the header is not one range
/// (then ignored).
fn parse_range(header: &str, size: u64) -> Option<Result<(u64, u64), ()>> {
    let spec = header.trim().strip_prefix("bytes=")?;
    if spec.contains(',') {
        return None;
    }
    let (first, last) = spec.split_once('-')?;
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let suffix: u64 = last.parse().ok()?;
        if suffix == 0 || size == 0 {
            return Some(Err(()));
        }
        return Some(Ok((size.saturating_sub(suffix), size - 1)));
    }
    let first: u64 = first.parse().ok()?;
    let last = if last.is_empty() {
        None
    } else {
        Some(last.parse::<u64>().ok()?)
    };
    if last.is_some_and(|l| l < first) {
        return None;
    }
    if first >= size {
        return Some(Err(()));
    }
    Some(Ok((first, last.map_or(size - 1, |l| l.min(size - 1)))))
}

/// Decodes `%XX` escapes; a malformed escape is kept as it is.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

/// `2025-06-15T15:06:40Z` for seconds since the epoch (proleptic Gregorian, UTC).
fn iso8601(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let secs = seconds.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_the_three_single_forms() {
        assert_eq!(parse_range("bytes=10-", 100), Some(Ok((10, 99))));
        assert_eq!(parse_range("bytes=10-19", 100), Some(Ok((10, 19))));
        assert_eq!(parse_range("bytes=10-500", 100), Some(Ok((10, 99))));
        assert_eq!(parse_range("bytes=-30", 100), Some(Ok((70, 99))));
        assert_eq!(parse_range("bytes=-300", 100), Some(Ok((0, 99))));
        assert_eq!(parse_range("bytes=100-", 100), Some(Err(())));
        assert_eq!(parse_range("bytes=-0", 100), Some(Err(())));
        for ignored in [
            "bytes=1-2,5-6",
            "items=1-2",
            "bytes=5-1",
            "bytes=x-",
            "bytes=-",
        ] {
            assert_eq!(parse_range(ignored, 100), None, "{ignored}");
        }
    }

    #[test]
    fn timestamps_print_as_utc() {
        assert_eq!(iso8601(1_750_000_000), "2025-06-15T15:06:40Z");
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
    }
}

//! The runner's download step (feature `download`): [`Context::download`] fetches a file over
//! HTTP(S) — typically a firmware image behind a pre-signed S3 URL in the job document —
//! resuming after a cut, verifying its SHA-256 before it is moved into place, reporting
//! progress, and honouring the cancellation, the stop and its own time limit.
//!
//! # Threads
//! Each HTTP request runs on a thread of its own, which hands the body over in chunks of at
//! most 64 KiB through a small bounded channel; the handler's thread writes them to the
//! partial file and, while it waits for the next one, looks at the cancellation, the stop and
//! the time limit every 50 ms (`WATCH`), so a server that stalls never holds up noticing
//! them. A request the download no longer waits for ends on its own thread within 10 s
//! (`SEGMENT`).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use log::{debug, info, warn};
use sha2::{Digest, Sha256};

use super::context::Context;
use crate::{Describe, StatusDetails};

/// The longest one HTTP request may take, from resolving the host to the end of its body
/// (ureq's global timeout of the call): a longer download continues with a new request from
/// where it got, and a request the download stopped waiting for ends within this.
const SEGMENT: Duration = Duration::from_secs(10);

/// How often the handler's thread looks at the cancellation, the stop and the time limit
/// while it waits for the next chunk of the body.
const WATCH: Duration = Duration::from_millis(50);

/// The most bytes one chunk of the body carries from the request's thread.
const CHUNK: usize = 64 * 1024;

/// How many chunks may wait in the channel between the two threads.
const CHUNKS_IN_FLIGHT: usize = 4;

/// The download gives up at this request in a row that brought no byte.
const ATTEMPTS_WITHOUT_PROGRESS: u32 = 5;

/// How many times an expired URL (HTTP 403) is replaced by a fresh one from the job document.
const FRESH_URLS: u32 = 3;

/// What [`Context::download`] fetches, and how.
#[derive(Debug, Clone)]
#[must_use]
pub struct Download {
    url: String,
    destination: PathBuf,
    sha256: [u8; 32],
    url_pointer: Option<String>,
    progress_every: Duration,
    timeout: Option<Duration>,
}

impl Download {
    /// Fetches `url` into `destination`, which must end up holding bytes whose SHA-256 is
    /// `sha256` (64 hexadecimal digits).
    ///
    /// # Errors
    /// [`DownloadError::InvalidSha256`] when `sha256` is not 64 hexadecimal digits.
    pub fn new(
        url: impl Into<String>,
        destination: impl Into<PathBuf>,
        sha256: &str,
    ) -> Result<Self, DownloadError> {
        Ok(Self {
            url: url.into(),
            destination: destination.into(),
            sha256: parse_sha256(sha256)?,
            url_pointer: None,
            progress_every: Duration::from_secs(5),
            timeout: None,
        })
    }

    /// Where the URL is in the job document, as a JSON pointer (`/firmware/url`). When the
    /// server answers 403 (a pre-signed URL that expired), the execution is described again
    /// and the download continues from the fresh URL found there (AWS IoT pre-signs URLs each
    /// time a device receives the document). Defaults to none: a 403 ends the download.
    pub fn url_in_document(mut self, pointer: &str) -> Self {
        self.url_pointer = Some(pointer.to_owned());
        self
    }

    /// How often progress is reported (an IN_PROGRESS update with `downloadPercent` and
    /// `downloadedBytes`). Defaults to every 5 s; `Duration::MAX` reports none.
    pub fn progress_every(mut self, every: Duration) -> Self {
        self.progress_every = every;
        self
    }

    /// The longest the whole download may take. Defaults to none (the cancellation and the
    /// stop still end it).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }

    /// Where the partial download is kept: the destination with `.part` appended.
    pub fn partial_path(&self) -> PathBuf {
        let mut name = self.destination.clone().into_os_string();
        name.push(".part");
        PathBuf::from(name)
    }
}

/// A finished download.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Downloaded {
    /// The file, verified and in place.
    pub path: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The bytes a partial download held when this one started (0: from scratch).
    pub resumed_from: u64,
    /// How many expired URLs were replaced by fresh ones.
    pub fresh_urls: u32,
}

/// Why [`Context::download`] failed. Nothing is ever left at the destination but a verified
/// file; a partial download is kept beside it (see [`Download::partial_path`]) except after a
/// hash mismatch.
#[derive(Debug)]
#[non_exhaustive]
pub enum DownloadError {
    /// The expected SHA-256 is not 64 hexadecimal digits.
    InvalidSha256(String),
    /// The server answered with this HTTP status (not 200, 206 or 403, or 403 with no fresh URL
    /// to be had).
    Http {
        /// The status code.
        status: u16,
    },
    /// The URL could not be fetched (DNS, connection, TLS, a cut that repeated), or the job
    /// document had no fresh URL at the pointer.
    Network(Box<dyn std::error::Error + Send + Sync>),
    /// Reading or writing a local file failed.
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
    /// The downloaded bytes do not have the expected SHA-256; the partial file was removed.
    Sha256Mismatch {
        /// The expected digest, in hex.
        expected: String,
        /// The digest of what was downloaded, in hex.
        actual: String,
    },
    /// The service ended the execution (canceled, removed, timed out).
    Canceled,
    /// The runner is stopping.
    Stopping,
    /// The download's own time limit passed.
    TimedOut,
}

impl fmt::Display for DownloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidSha256(value) => {
                write!(
                    f,
                    "invalid SHA-256 {value:?}: expected 64 hexadecimal digits"
                )
            }
            Self::Http { status } => write!(f, "the server answered HTTP {status}"),
            Self::Network(source) => write!(f, "the download failed: {source}"),
            Self::Io { path, source } => write!(f, "{}: {source}", path.display()),
            Self::Sha256Mismatch { expected, actual } => {
                write!(f, "SHA-256 mismatch: expected {expected}, got {actual}")
            }
            Self::Canceled => f.write_str("the execution was ended by the service"),
            Self::Stopping => f.write_str("the runner is stopping"),
            Self::TimedOut => f.write_str("the download took longer than its time limit"),
        }
    }
}

impl std::error::Error for DownloadError {}

fn parse_sha256(hex: &str) -> Result<[u8; 32], DownloadError> {
    let invalid = || DownloadError::InvalidSha256(hex.to_owned());
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return Err(invalid());
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(bytes.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).map_err(|_| invalid())?;
        *byte = u8::from_str_radix(text, 16).map_err(|_| invalid())?;
    }
    Ok(digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What one request got.
enum Attempt {
    /// The whole file is in the partial file.
    Complete,
    /// The body stopped early (a cut, the segment's time): resume.
    Cut { progressed: bool, error: String },
    /// 403: the URL expired.
    Expired,
}

impl Context {
    /// Downloads `download`'s URL into its destination, blocking this handler's thread.
    ///
    /// - **Resumes**: bytes already in the partial file (from a cut, or an earlier run before a
    ///   reboot) are kept, and the rest is asked for with `Range: bytes=N-`; a server that
    ///   ignores the range (200) restarts the file. One request lasts at most 10 s, from
    ///   resolving the host to the end of its body; a request cut before the end (connection
    ///   lost or refused, server gone, HTTP 5xx, those 10 s over: a stall, or a slow link) is
    ///   followed by the next one from where it got, after a pause of 0.2 s that doubles with
    ///   each request in a row that brought no byte, up to 3.2 s; the fifth such request in a
    ///   row ends the download with [`DownloadError::Network`].
    /// - **Verifies**: the file is moved into place only once its SHA-256 matches; on a mismatch
    ///   the partial file is removed and nothing is left at the destination.
    /// - **Fresh URLs**: with [`Download::url_in_document`], a 403 (expired pre-signed URL)
    ///   describes the execution again and continues from the URL in the new document, up to
    ///   3 times in one call.
    /// - **Reports progress** at most every [`Download::progress_every`] (best effort).
    /// - **Stops promptly** when the service ends the execution ([`DownloadError::Canceled`]),
    ///   the runner stops ([`DownloadError::Stopping`]) or the time limit passes
    ///   ([`DownloadError::TimedOut`]): the handler's thread looks every 50 ms, whatever the
    ///   server does (a request the download no longer waits for ends on a thread of its own
    ///   within its 10 s); measured: `download` returned at most 51 ms after
    ///   [`StopHandle::stop`](crate::runner::StopHandle::stop), over 20 runs of the stop test
    ///   (`tests/download.rs`) on a shared 2-core machine. Not while a progress update or the
    ///   describe for a fresh URL is in flight (each bounded by the [`Jobs`](crate::Jobs)
    ///   timeout), nor during the final SHA-256 pass over the file. The partial file is kept
    ///   for a later resume. Once the execution ended or the runner stops, nothing more is
    ///   written to the partial file and nothing is moved into place or removed, even by a
    ///   read or a verification under way then: the handler may be abandoned, and a later run
    ///   of the execution (a runner that resumes it) owns the file.
    ///
    /// After [`DownloadError::Stopping`], an outcome the handler returns is still reported
    /// (the runner reports outcomes until its stop grace ends): a handler that wants the
    /// execution resumed at the next start, from the partial file, returns none until the
    /// runner abandons it, which leaves the execution IN_PROGRESS (see
    /// [`Runner`](crate::runner::Runner), "Stop").
    ///
    /// # Errors
    /// See [`DownloadError`].
    pub fn download(&self, download: &Download) -> Result<Downloaded, DownloadError> {
        let deadline = download.timeout.and_then(|t| Instant::now().checked_add(t));
        let partial = download.partial_path();
        let resumed_from = fs::metadata(&partial).map_or(0, |m| m.len());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(SEGMENT))
            .build()
            .into();
        let mut url = download.url.clone();
        let mut fresh_urls = 0;
        let mut failures = 0;
        let mut last_report = Instant::now();
        loop {
            self.check(deadline)?;
            match self.attempt(&agent, &url, download, &partial, deadline, &mut last_report)? {
                Attempt::Complete => break,
                Attempt::Expired => {
                    let Some(pointer) = &download.url_pointer else {
                        return Err(DownloadError::Http { status: 403 });
                    };
                    if fresh_urls == FRESH_URLS {
                        return Err(DownloadError::Http { status: 403 });
                    }
                    url = self.fresh_url(pointer)?;
                    fresh_urls += 1;
                    info!(
                        "{}: the download URL expired; continuing from a fresh one",
                        self.job_id()
                    );
                }
                Attempt::Cut { progressed, error } => {
                    failures = if progressed { 0 } else { failures + 1 };
                    if failures >= ATTEMPTS_WITHOUT_PROGRESS {
                        return Err(DownloadError::Network(error.into()));
                    }
                    debug!("{}: download cut ({error}); resuming", self.job_id());
                    let mut pause = Duration::from_millis(200).saturating_mul(1 << failures.min(4));
                    if let Some(at) = deadline {
                        pause = pause.min(at.saturating_duration_since(Instant::now()));
                    }
                    self.cancellation().wait_timeout(pause);
                }
            }
        }
        let bytes = fs::metadata(&partial).map_or(0, |m| m.len());
        let actual = sha256_of(&partial)?;
        // Stopped or ended while verifying: a later run of the execution may own the partial
        // file by now (this handler is abandoned), so it is neither removed nor moved.
        self.check_ended()?;
        if actual != download.sha256 {
            let _ = fs::remove_file(&partial);
            warn!(
                "{}: the download's SHA-256 does not match; removed it",
                self.job_id()
            );
            return Err(DownloadError::Sha256Mismatch {
                expected: hex(&download.sha256),
                actual: hex(&actual),
            });
        }
        fs::rename(&partial, &download.destination).map_err(|source| DownloadError::Io {
            path: download.destination.clone(),
            source,
        })?;
        info!("{}: downloaded and verified {bytes} bytes", self.job_id());
        Ok(Downloaded {
            path: download.destination.clone(),
            bytes,
            resumed_from,
            fresh_urls,
        })
    }

    /// Ends the download when the execution was ended, the runner stops or time is up.
    fn check(&self, deadline: Option<Instant>) -> Result<(), DownloadError> {
        self.check_ended()?;
        if deadline.is_some_and(|at| Instant::now() >= at) {
            return Err(DownloadError::TimedOut);
        }
        Ok(())
    }

    /// Ends the download when the execution was ended or the runner stops.
    fn check_ended(&self) -> Result<(), DownloadError> {
        if self.is_canceled() {
            return Err(DownloadError::Canceled);
        }
        if self.is_stopping() {
            return Err(DownloadError::Stopping);
        }
        Ok(())
    }

    /// One HTTP request: from where the partial file ends to the end, appended to it. The
    /// request runs on a thread of its own ([`fetch`]); this thread writes what it hands over
    /// and watches the signals meanwhile.
    fn attempt(
        &self,
        agent: &ureq::Agent,
        url: &str,
        download: &Download,
        partial: &Path,
        deadline: Option<Instant>,
        last_report: &mut Instant,
    ) -> Result<Attempt, DownloadError> {
        let io = |source| DownloadError::Io {
            path: partial.to_owned(),
            source,
        };
        let offset = fs::metadata(partial).map_or(0, |m| m.len());
        let (sender, fetched) = crossbeam_channel::bounded(CHUNKS_IN_FLIGHT);
        let (agent, request_url) = (agent.clone(), url.to_owned());
        thread::Builder::new()
            .name("jobs-download".to_owned())
            .spawn(move || fetch(&agent, &request_url, offset, &sender))
            .map_err(|error| DownloadError::Network(Box::new(error)))?;
        let cut = |error: String, progressed| Attempt::Cut { progressed, error };
        let (status, content_range, content_length) = match self.next(&fetched, deadline)? {
            Fetched::Head {
                status,
                content_range,
                content_length,
            } => (status, content_range, content_length),
            Fetched::Failed(error) => return Ok(cut(error, false)),
            Fetched::Chunk(_) | Fetched::End => {
                return Ok(cut("a body without a response".to_owned(), false));
            }
        };
        // The answer may have taken a while: a stop meanwhile means hands off the partial file
        // (a 200 would truncate it).
        self.check(deadline)?;
        let total = match status {
            206 => match content_range.as_deref().and_then(parse_content_range) {
                Some((start, total)) if start == offset => total,
                _ => {
                    // A range we did not ask for: start over.
                    File::create(partial).map_err(io)?;
                    return Ok(cut("unexpected Content-Range".to_owned(), false));
                }
            },
            200 => {
                if offset > 0 {
                    debug!(
                        "{}: the server ignored the range; restarting",
                        self.job_id()
                    );
                }
                File::create(partial).map_err(io)?;
                content_length.and_then(|v| v.parse().ok())
            }
            // The partial file already holds everything.
            416 if offset > 0 => return Ok(Attempt::Complete),
            403 => return Ok(Attempt::Expired),
            500..=599 => return Ok(cut(format!("HTTP {status}"), false)),
            _ => return Err(DownloadError::Http { status }),
        };
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(partial)
            .map_err(io)?;
        let mut written = fs::metadata(partial).map_or(0, |m| m.len());
        let start = written;
        loop {
            let chunk = match self.next(&fetched, deadline) {
                Ok(Fetched::Chunk(chunk)) => chunk,
                Ok(Fetched::End) => break,
                Ok(Fetched::Failed(error)) => {
                    file.flush().map_err(io)?;
                    return Ok(cut(error, written > start));
                }
                Ok(Fetched::Head { .. }) => {
                    return Ok(cut("a second response".to_owned(), written > start));
                }
                Err(error) => {
                    // What was written stays for a later resume.
                    file.flush().map_err(io)?;
                    return Err(error);
                }
            };
            // The chunk may have come while the runner stopped: then a later run of the
            // execution may own the partial file, and nothing more is written.
            self.check_ended()?;
            file.write_all(&chunk).map_err(io)?;
            written += u64::try_from(chunk.len()).unwrap_or(0);
            if last_report.elapsed() >= download.progress_every {
                *last_report = Instant::now();
                self.report_progress(written, total);
            }
        }
        file.flush().map_err(io)?;
        if total.is_some_and(|total| written < total) {
            return Ok(cut(
                format!("the body ended at {written} of {total:?} bytes"),
                written > start,
            ));
        }
        Ok(Attempt::Complete)
    }

    /// The next thing the request's thread hands over, waiting while the download may go on;
    /// a thread that ended without a word counts as a failed request.
    fn next(
        &self,
        fetched: &Receiver<Fetched>,
        deadline: Option<Instant>,
    ) -> Result<Fetched, DownloadError> {
        loop {
            self.check(deadline)?;
            match fetched.recv_timeout(WATCH) {
                Ok(message) => return Ok(message),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Ok(Fetched::Failed("the request ended early".to_owned()));
                }
            }
        }
    }

    fn report_progress(&self, written: u64, total: Option<u64>) {
        let mut pairs = vec![("downloadedBytes".to_owned(), written.to_string())];
        if let Some(total) = total.filter(|total| *total > 0) {
            let percent = written.saturating_mul(100) / total;
            pairs.push(("downloadPercent".to_owned(), percent.to_string()));
        }
        if let Ok(details) = StatusDetails::from_pairs(pairs)
            && let Err(error) = self.progress(details)
        {
            debug!(
                "{}: reporting download progress failed: {error}",
                self.job_id()
            );
        }
    }

    /// Describes the execution again and reads the URL at `pointer` in its fresh document.
    fn fresh_url(&self, pointer: &str) -> Result<String, DownloadError> {
        let mut job = self.job_handle();
        let mut describe = Describe::new();
        if let Some(number) = self.execution_number() {
            describe = describe.execution_number(number);
        }
        job.describe_with(describe)
            .map_err(|error| DownloadError::Network(Box::new(error)))?;
        let url = job
            .document()
            .map(crate::Document::to_value)
            .and_then(|document| {
                document
                    .pointer(pointer)
                    .and_then(|v| v.as_str())
                    .map(str::to_owned)
            });
        url.ok_or_else(|| {
            DownloadError::Network(format!("the job document has no URL at {pointer}").into())
        })
    }
}

/// What the request's thread hands over, in order: the head, then chunks of the body, then
/// the end; or a failure at any point.
enum Fetched {
    Head {
        status: u16,
        content_range: Option<String>,
        content_length: Option<String>,
    },
    Chunk(Vec<u8>),
    End,
    Failed(String),
}

/// Runs one request on its own thread, asking for the bytes from `offset` on, and hands what
/// it gets to `out`; it ends when the body ends, fails or times out ([`SEGMENT`]), or as soon
/// as nobody listens any more.
fn fetch(agent: &ureq::Agent, url: &str, offset: u64, out: &Sender<Fetched>) {
    let mut request = agent.get(url);
    if offset > 0 {
        request = request.header("Range", format!("bytes={offset}-"));
    }
    let mut response = match request.call() {
        Ok(response) => response,
        Err(error) => {
            let _ = out.send(Fetched::Failed(error.to_string()));
            return;
        }
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let head = Fetched::Head {
        status,
        content_range: header("content-range"),
        content_length: header("content-length"),
    };
    if out.send(head).is_err() || !matches!(status, 200 | 206) {
        return;
    }
    let mut body = response.body_mut().as_reader();
    loop {
        let mut chunk = vec![0u8; CHUNK];
        let message = match body.read(&mut chunk) {
            Ok(0) => Fetched::End,
            Ok(read) => {
                chunk.truncate(read);
                Fetched::Chunk(chunk)
            }
            Err(error) => Fetched::Failed(error.to_string()),
        };
        let last = !matches!(message, Fetched::Chunk(_));
        if out.send(message).is_err() || last {
            return;
        }
    }
}

/// `bytes START-END/TOTAL` → (START, TOTAL if known).
fn parse_content_range(value: &str) -> Option<(u64, Option<u64>)> {
    let range = value.strip_prefix("bytes ")?;
    let (span, total) = range.split_once('/')?;
    let (start, _end) = span.split_once('-')?;
    Some((start.trim().parse().ok()?, total.trim().parse().ok()))
}

fn sha256_of(path: &Path) -> Result<[u8; 32], DownloadError> {
    let io = |source| DownloadError::Io {
        path: path.to_owned(),
        source,
    };
    let mut file = File::open(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let read = file.read(&mut buffer).map_err(io)?;
        if read == 0 {
            break;
        }
        hasher.update(buffer.get(..read).unwrap_or_default());
    }
    Ok(hasher.finalize().into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha256_is_64_hexadecimal_digits() {
        let digest = parse_sha256(&"ab".repeat(32)).unwrap_or([0; 32]);
        assert_eq!(digest, [0xab; 32]);
        assert_eq!(hex(&digest), "ab".repeat(32));
        for bad in ["", "ab", &"zz".repeat(32), &"é".repeat(32)] {
            assert!(
                matches!(parse_sha256(bad), Err(DownloadError::InvalidSha256(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn content_ranges_are_read_with_or_without_a_total() {
        assert_eq!(
            parse_content_range("bytes 100-199/1000"),
            Some((100, Some(1000)))
        );
        assert_eq!(parse_content_range("bytes 100-199/*"), Some((100, None)));
        assert_eq!(parse_content_range("items 1-2/3"), None);
    }
}

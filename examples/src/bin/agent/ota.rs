//! `install-firmware`: an over-the-air update.
//!
//! The document: `{"operation": "install-firmware", "version": "3.0.0", "url": URL,
//! "sha256": HEX}`, where on AWS (and on `jobs-service`) `URL` is written as a placeholder,
//! `${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY}`, which the service
//! replaces by a pre-signed URL each time the device receives the document.
//!
//! The steps, and what survives a reboot (everything under `--state-dir`, in `firmware/`):
//! 1. **Download** with the runner's download step into `downloads/SHA256.bin`: progress in the
//!    status details (`downloadedBytes`, `downloadPercent`) at most every 2 s, a cut or a
//!    restart resumed from `downloads/SHA256.bin.part`, an expired URL replaced by the one a
//!    fresh describe returns, the SHA-256 checked before the file is moved into place. A file
//!    at `downloads/SHA256.bin` is therefore always complete and verified, and is not fetched
//!    again.
//! 2. **Install** (progress `step: install`, with a 10-minute step timer, and 30 s of
//!    simulated flashing): the image becomes `image.bin` and its version is written to
//!    `running-version` (what a bootloader would report after the reboot); `reboot-JOB` records
//!    the version the reboot must bring up.
//! 3. **Reboot**: the runner is torn down and a new one built ([`Host::reboot`]).
//! 4. **After the reboot** the new runner finds the execution IN_PROGRESS and runs this
//!    handler with `resumed()` true: `reboot-JOB` is there, so it compares `running-version`
//!    with it and reports `SUCCEEDED` (`version`), or `FAILED` with the `reason` when the
//!    version did not take.
//!
//! A document that does not fit is `REJECTED` with the reason; a failed download (a wrong
//! SHA-256, an HTTP error, a network that stays down) is `FAILED` with the download error as
//! the reason. A firmware version that already runs is `SUCCEEDED` at once.

use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use examples::say;
use jobs_core::runner::{Context, Download, DownloadError, HandlerError, Outcome};
use jobs_core::{JobId, StatusDetails, StepTimeout};
use serde::Deserialize;

use super::Host;
use super::handlers::{failed, rejected, stopped_by_service};

/// Where the document carries the URL, as a JSON pointer: the download step reads a fresh URL
/// there after a 403.
const URL_POINTER: &str = "/url";

/// Download progress is reported at most this often.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Simulated seconds of flashing (times `--work-scale`).
const INSTALL_SECONDS: u64 = 30;

/// The document's fields this handler reads.
#[derive(Debug, Deserialize)]
struct FirmwareJob {
    version: String,
    url: String,
    sha256: String,
}

impl FirmwareJob {
    fn from_context(ctx: &Context) -> Result<Self, String> {
        let job: Self = ctx
            .parse_document()
            .map_err(|error| format!("not a firmware document: {error}"))?;
        check_version(&job.version)?;
        Ok(job)
    }
}

/// A version goes into a file and into status details: 1–64 visible ASCII characters.
fn check_version(version: &str) -> Result<(), String> {
    if (1..=64).contains(&version.len()) && version.bytes().all(|b| b.is_ascii_graphic()) {
        Ok(())
    } else {
        Err(format!(
            "version {version:?} must be 1 to 64 visible ASCII characters"
        ))
    }
}

pub(crate) fn install_firmware(ctx: &Context, host: &Host) -> Result<Outcome, HandlerError> {
    let id = ctx.job_id();
    let job = match FirmwareJob::from_context(ctx) {
        Ok(job) => job,
        Err(reason) => {
            say!("agent: {id} REJECTED: {reason}");
            return rejected(reason);
        }
    };
    let version = job.version.as_str();
    let firmware = Firmware::new(&host.state_dir);
    if ctx.resumed() {
        if let Some(expected) = firmware.expected_after_reboot(id)? {
            return after_reboot(ctx, &firmware, &expected);
        }
        say!("agent: {id} resumed before its reboot; continuing");
    }
    if firmware.running()?.as_deref() == Some(version) {
        say!("agent: {id} firmware {version} already runs");
        return Ok(
            Outcome::succeeded().with_details(StatusDetails::from_pairs([
                ("version", version),
                ("note", "already running"),
            ])?),
        );
    }

    let destination = firmware.download_path(&job.sha256)?;
    let download = match Download::new(&job.url, &destination, &job.sha256) {
        Ok(download) => download
            .url_in_document(URL_POINTER)
            .progress_every(PROGRESS_EVERY),
        Err(error) => {
            say!("agent: {id} REJECTED: {error}");
            return rejected(error.to_string());
        }
    };
    // The download step puts nothing but a verified file there: no need to fetch it again
    // (a restart between the download and the install).
    if destination.exists() {
        say!("agent: {id} firmware {version} already downloaded and verified");
    } else {
        say!("agent: {id} downloading firmware {version}");
        report(ctx, "download", version, None);
        match ctx.download(&download) {
            Ok(done) => {
                let resumed = match done.resumed_from {
                    0 => String::new(),
                    from => format!(", resumed from byte {from}"),
                };
                say!(
                    "agent: {id} downloaded {} bytes{resumed}; SHA-256 verified",
                    done.bytes
                );
            }
            Err(DownloadError::Canceled) => return stopped_by_service(ctx),
            Err(DownloadError::Stopping) => {
                say!("agent: {id} download interrupted; it resumes at the next start");
                host.halt_until_exit();
                return Ok(Outcome::failed());
            }
            Err(error) => {
                say!("agent: {id} FAILED: {error}");
                return failed(error.to_string());
            }
        }
    }

    say!("agent: {id} installing {version}");
    report(ctx, "install", version, Some(StepTimeout::minutes(10)?));
    if host.work(ctx, INSTALL_SECONDS) {
        if ctx.is_canceled() {
            return stopped_by_service(ctx);
        }
        // Stopping: the downloaded image stays; the next start installs it.
        host.halt_until_exit();
        return Ok(Outcome::failed());
    }
    firmware.install(&destination, version)?;
    firmware.expect_after_reboot(id, version)?;
    say!("agent: {id} installed {version}; rebooting to activate it");
    host.reboot();
    // Never reported: the runner abandoned this handler (see `Host::reboot`).
    Ok(Outcome::failed())
}

/// The check after the reboot: the version that runs is the one installed, or the job failed.
fn after_reboot(
    ctx: &Context,
    firmware: &Firmware,
    expected: &str,
) -> Result<Outcome, HandlerError> {
    let id = ctx.job_id();
    let outcome = match verdict(expected, firmware.running()?.as_deref()) {
        Ok(()) => {
            say!("agent: {id} resumed after the reboot: running {expected}");
            Outcome::succeeded().with_details(StatusDetails::from_pairs([("version", expected)])?)
        }
        Err(reason) => {
            say!("agent: {id} resumed after the reboot: {reason}");
            Outcome::failed().with_details(StatusDetails::from_pairs([("reason", reason)])?)
        }
    };
    firmware.forget_reboot(id)?;
    Ok(outcome)
}

/// Whether the firmware `expected` took, from the version that runs.
fn verdict(expected: &str, running: Option<&str>) -> Result<(), String> {
    match running {
        Some(running) if running == expected => Ok(()),
        Some(running) => Err(format!(
            "firmware {expected} did not take: the device runs {running}"
        )),
        None => Err(format!(
            "firmware {expected} did not take: no firmware version is recorded"
        )),
    }
}

/// Reports the step (best effort: a lost progress update does not stop the install).
fn report(ctx: &Context, step: &str, version: &str, step_timeout: Option<StepTimeout>) {
    let details = match StatusDetails::from_pairs([("step", step), ("version", version)]) {
        Ok(details) => details,
        Err(error) => {
            say!("agent: {} progress not reported: {error}", ctx.job_id());
            return;
        }
    };
    let sent = match step_timeout {
        Some(timeout) => ctx.progress_with_step_timeout(details, timeout),
        None => ctx.progress(details),
    };
    if let Err(error) = sent {
        say!("agent: {} progress not reported: {error}", ctx.job_id());
    }
}

/// A state file that could not be read or written.
#[derive(Debug)]
pub(crate) struct StateError {
    path: PathBuf,
    source: io::Error,
}

impl fmt::Display for StateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.source)
    }
}

impl std::error::Error for StateError {}

fn at(path: &Path) -> impl FnOnce(io::Error) -> StateError + '_ {
    move |source| StateError {
        path: path.to_owned(),
        source,
    }
}

/// The device's firmware as the agent keeps it, under `STATE_DIR/firmware` (see the module
/// documentation for the files).
#[derive(Debug)]
struct Firmware {
    dir: PathBuf,
}

impl Firmware {
    fn new(state_dir: &Path) -> Self {
        Self {
            dir: state_dir.join("firmware"),
        }
    }

    /// The version that runs, if one was ever installed.
    fn running(&self) -> Result<Option<String>, StateError> {
        read_optional(&self.dir.join("running-version"))
    }

    /// Where the image with this SHA-256 is downloaded to (its directory created).
    fn download_path(&self, sha256: &str) -> Result<PathBuf, StateError> {
        let dir = self.dir.join("downloads");
        fs::create_dir_all(&dir).map_err(at(&dir))?;
        // The SHA-256 names the file only once it is 64 hex digits; the download step
        // refuses anything else before it touches the file system.
        let name: String = sha256.chars().filter(char::is_ascii_hexdigit).collect();
        Ok(dir.join(format!("{name}.bin")))
    }

    /// Installs the verified `image` as `version`: the image moves to `image.bin`, then the
    /// version is written (to a temporary file renamed over the old one, so a crash leaves
    /// the old version or the new one, never a torn file).
    fn install(&self, image: &Path, version: &str) -> Result<(), StateError> {
        let installed = self.dir.join("image.bin");
        fs::rename(image, &installed).map_err(at(&installed))?;
        write_atomically(&self.dir.join("running-version"), version)
    }

    fn reboot_file(&self, job: &JobId) -> PathBuf {
        self.dir.join(format!("reboot-{job}"))
    }

    /// Records that the reboot for `job` must bring up `version`.
    fn expect_after_reboot(&self, job: &JobId, version: &str) -> Result<(), StateError> {
        write_atomically(&self.reboot_file(job), version)
    }

    /// The version the reboot for `job` had to bring up, if `job` rebooted.
    fn expected_after_reboot(&self, job: &JobId) -> Result<Option<String>, StateError> {
        read_optional(&self.reboot_file(job))
    }

    fn forget_reboot(&self, job: &JobId) -> Result<(), StateError> {
        let file = self.reboot_file(job);
        match fs::remove_file(&file) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => Err(at(&file)(error)),
            _ => Ok(()),
        }
    }
}

fn read_optional(path: &Path) -> Result<Option<String>, StateError> {
    match fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_owned())),
        Err(error) if error.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(error) => Err(at(path)(error)),
    }
}

fn write_atomically(path: &Path, text: &str) -> Result<(), StateError> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(at(dir))?;
    }
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".new");
    let temporary = PathBuf::from(temporary);
    fs::write(&temporary, text).map_err(at(&temporary))?;
    fs::rename(&temporary, path).map_err(at(path))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test: a panic fails the test")]

    use super::*;

    fn state_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("agent-ota-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn the_version_that_runs_after_the_reboot_decides_the_outcome() {
        assert_eq!(verdict("3.0.0", Some("3.0.0")), Ok(()));
        assert_eq!(
            verdict("3.0.0", Some("2.4.0")),
            Err("firmware 3.0.0 did not take: the device runs 2.4.0".to_owned())
        );
        assert_eq!(
            verdict("3.0.0", None),
            Err("firmware 3.0.0 did not take: no firmware version is recorded".to_owned())
        );
    }

    #[test]
    fn an_install_records_the_version_and_the_reboot_it_waits_for() {
        let dir = state_dir("install");
        let firmware = Firmware::new(&dir);
        let job = JobId::new("fw-3").unwrap();
        assert_eq!(firmware.running().unwrap(), None);
        assert_eq!(firmware.expected_after_reboot(&job).unwrap(), None);
        let image = firmware.download_path(&"ab".repeat(32)).unwrap();
        fs::write(&image, b"image").unwrap();
        firmware.install(&image, "3.0.0").unwrap();
        firmware.expect_after_reboot(&job, "3.0.0").unwrap();
        assert!(!image.exists());
        assert_eq!(fs::read(dir.join("firmware/image.bin")).unwrap(), b"image");
        assert_eq!(firmware.running().unwrap().as_deref(), Some("3.0.0"));
        assert_eq!(
            firmware.expected_after_reboot(&job).unwrap().as_deref(),
            Some("3.0.0")
        );
        // A version that did not take (a bootloader that fell back, say) is a failure.
        fs::write(dir.join("firmware/running-version"), "2.4.0\n").unwrap();
        assert!(verdict("3.0.0", firmware.running().unwrap().as_deref()).is_err());
        firmware.forget_reboot(&job).unwrap();
        firmware.forget_reboot(&job).unwrap();
        assert_eq!(firmware.expected_after_reboot(&job).unwrap(), None);
        fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn versions_are_one_to_64_visible_characters() {
        assert!(check_version("3.0.0-rc.1+build.7").is_ok());
        for bad in ["", "3.0 beta", "3.0\n", &"9".repeat(65), "3.0.é"] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
    }
}

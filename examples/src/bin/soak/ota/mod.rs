//! OTA mode (`--ota`): every job is a firmware update. The job document carries a
//! `${aws:iot:s3-presigned-url:…}` placeholder, which `jobs-service` replaces with a URL of its
//! own object store (signed, expiring after 2 s of real time on the soak's clock, so that some
//! downloads outlive their URL and fetch a fresh one through a describe), and the file's
//! SHA-256. Each handler downloads the file with the runner's download step
//! ([`Context::download`](jobs_core::runner::Context::download)) while the broker is killed and
//! frozen and the file server is interrupted: the downloads go through a [`proxy::Proxy`] that
//! paces them (so a transfer lasts seconds), cuts them mid-transfer, refuses connections and
//! stalls on a schedule of its own. Some executions crash on purpose in the middle of their
//! download, and devices reboot: a later runner resumes the execution, and its download
//! resumes from the partial file.
//!
//! The checks, besides the soak's own (every execution SUCCEEDED, reported once, each handler
//! call accounted for): every destination holds the file byte for byte (so its SHA-256 is the
//! document's; the soak hashes it again itself), exactly one download completed per execution,
//! no partial (`.part`) or other file is left in the devices' directories, and the run saw
//! downloads resume (`Downloaded::resumed_from` > 0), requests with a `Range`, and cuts.

pub(crate) mod handler;
pub(crate) mod proxy;

use std::collections::BTreeMap;
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};
use jobs_mock::server::files::{FILES_PREFIX, Files};
use jobs_mock::server::http::{HttpServer, Listener};
use jobs_mock::service::presign::ObjectName;
use jobs_mock::service::{JobsService, Simulator};
use sha2::{Digest, Sha256};

use crate::bounded::{self, Bounded};
use crate::dice::Dice;
use crate::ledger::{Key, Ledger};
use crate::plan::Plan;
use proxy::{Mode, Proxy};

/// The object every job installs.
const BUCKET: &str = "soak-firmware";
const OBJECT_KEY: &str = "fw.bin";

/// Where the job document holds the URL (a JSON pointer, for fresh URLs after a 403).
pub(crate) const URL_POINTER: &str = "/url";

/// How long a pre-signed URL stays valid, in the service's seconds (2 s of real time at the
/// soak's clock factor of 60: a download cut after that needs a fresh URL).
pub(crate) const EXPIRES_IN_SEC: i64 = 120;

/// The proxy's pace per connection: 2 MiB/s.
const RATE: u64 = 2 << 20;

/// Percent of the proxy's connections it cuts on its own after a random number of bytes.
const RANDOM_CUTS: u64 = 15;

/// What the documents name: the placeholder of the object and its SHA-256.
#[derive(Debug, Clone)]
pub(crate) struct FileRef {
    pub(crate) placeholder: String,
    pub(crate) sha256: String,
}

/// The OTA side of a run: the object, the file server behind its proxy, the destinations.
pub(crate) struct Ota {
    data: Vec<u8>,
    file: FileRef,
    /// The run's directory: `store/` (the object store) and `devices/THING/` (destinations).
    dir: PathBuf,
    files: Arc<Files>,
    listener: Option<Listener>,
    http: Option<HttpServer>,
    pub(crate) proxy: Proxy,
}

impl Ota {
    /// Makes the object (`mib` MiB of seeded bytes) and its directory, binds the file server
    /// and its proxy, and points `service`'s pre-signed URLs at the proxy. The file server
    /// starts serving with [`Ota::serve`], once the simulator exists.
    ///
    /// # Errors
    /// When a directory, the object or a socket cannot be made.
    pub(crate) fn prepare(
        mib: usize,
        service: &mut JobsService,
        dice: &mut Dice,
    ) -> Result<Self, Box<dyn Error>> {
        let size = mib << 20;
        let mut bytes = dice.fork();
        let data: Vec<u8> = (0..size.div_ceil(8))
            .flat_map(|_| bytes.below(u64::MAX).to_le_bytes())
            .take(size)
            .collect();
        let sha256 = hex(&Sha256::digest(&data));
        let dir = std::env::temp_dir().join(format!("soak-ota-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("devices"))?;
        let listener = Listener::bind("127.0.0.1:0")?;
        let proxy = Proxy::start(
            listener.address(),
            RATE,
            RANDOM_CUTS,
            size as u64,
            dice.fork(),
        )?;
        service.set_presigned_url_base(Some(format!("http://{}{FILES_PREFIX}", proxy.address())));
        let files = Arc::new(Files::new(
            Some(dir.join("store")),
            service.url_signer().clone(),
            service.clock().clone(),
        ));
        files.put(&ObjectName::new(BUCKET, OBJECT_KEY)?, data.as_slice())?;
        Ok(Self {
            data,
            file: FileRef {
                placeholder: format!(
                    "${{aws:iot:s3-presigned-url:https://s3.{}.amazonaws.com/{BUCKET}/{OBJECT_KEY}}}",
                    jobs_mock::service::api::REGION
                ),
                sha256,
            },
            dir,
            files,
            listener: Some(listener),
            http: None,
            proxy,
        })
    }

    /// Starts the file server (and `simulator`'s HTTP API beside it).
    ///
    /// # Errors
    /// When its thread cannot start.
    pub(crate) fn serve(&mut self, simulator: Arc<Simulator>) -> Result<(), Box<dyn Error>> {
        let listener = self.listener.take().ok_or("the file server already runs")?;
        self.http = Some(HttpServer::start(
            listener,
            simulator,
            Arc::clone(&self.files),
        )?);
        Ok(())
    }

    pub(crate) fn file(&self) -> &FileRef {
        &self.file
    }

    pub(crate) fn size(&self) -> u64 {
        self.data.len() as u64
    }

    /// The destination of an execution's download.
    pub(crate) fn destination(&self, key: &Key) -> PathBuf {
        self.dir
            .join("devices")
            .join(&key.thing)
            .join(format!("{}-{}.bin", key.job, key.number))
    }

    /// Interrupts the file server until `over` is disconnected: every 0.5–2 s, cuts every
    /// transfer (40 %), goes down for 0.3–1.5 s (30 %), or stalls for 0.3–2 s (30 %).
    pub(crate) fn interrupt(
        self: &Arc<Self>,
        over: Receiver<()>,
        mut dice: Dice,
    ) -> Result<Bounded<Interruptions>, String> {
        let ota = Arc::clone(self);
        bounded::spawn("soak-file-chaos", move || {
            let mut done = Interruptions::default();
            let wait = |d: Duration| over.recv_timeout(d) != Err(RecvTimeoutError::Timeout);
            loop {
                if wait(dice.millis(500, 2000)) {
                    break;
                }
                let roll = dice.below(100);
                if roll < 40 {
                    ota.proxy.cut();
                    done.cuts += 1;
                    continue;
                }
                let (mode, length) = if roll < 70 {
                    done.downs += 1;
                    (Mode::Down, dice.millis(300, 1500))
                } else {
                    done.stalls += 1;
                    (Mode::Stalled, dice.millis(300, 2000))
                };
                ota.proxy.set(mode);
                let over = wait(length);
                ota.proxy.set(Mode::Up);
                if over {
                    break;
                }
            }
            done
        })
    }

    /// The checks of the OTA mode (after the final stop); removes the run's directory.
    pub(crate) fn check(&self, plan: &Plan, ledger: &Ledger) -> (Vec<String>, Vec<String>) {
        let mut failures = Vec::new();
        let mut completed: BTreeMap<&Key, usize> = BTreeMap::new();
        for record in &ledger.downloads {
            *completed.entry(&record.key).or_default() += 1;
            if record.bytes != self.size() {
                failures.push(format!(
                    "{}: the download step said {} bytes, the file has {}",
                    record.key,
                    record.bytes,
                    self.size()
                ));
            }
        }
        let mut verified = 0;
        let mut expected = std::collections::BTreeSet::new();
        for job in &plan.jobs {
            for number in 1..=job.runs.len() {
                let key = Key {
                    thing: crate::plan::thing_name(job.device),
                    job: job.id.to_string(),
                    number: i64::try_from(number).unwrap_or(0),
                };
                let path = self.destination(&key);
                match std::fs::read(&path) {
                    Ok(bytes)
                        if bytes == self.data
                            && hex(&Sha256::digest(&bytes)) == self.file.sha256 =>
                    {
                        verified += 1;
                    }
                    Ok(bytes) => failures.push(format!(
                        "{key}: {} holds {} bytes that are not the file",
                        path.display(),
                        bytes.len()
                    )),
                    Err(error) => {
                        failures.push(format!("{key}: {}: {error}", path.display()));
                    }
                }
                match completed.get(&key) {
                    Some(1) => {}
                    n => failures.push(format!(
                        "{key}: {} completed downloads",
                        n.copied().unwrap_or(0)
                    )),
                }
                expected.insert(path);
            }
        }
        let mut strays = Vec::new();
        list_files(&self.dir.join("devices"), &mut strays);
        let partial = strays
            .iter()
            .filter(|p| p.extension().is_some_and(|e| e == "part"))
            .count();
        strays.retain(|p| !expected.contains(p));
        if !strays.is_empty() {
            failures.push(format!(
                "{} files left beside the destinations ({partial} partial): {:?}",
                strays.len(),
                strays.iter().take(5).collect::<Vec<_>>()
            ));
        }
        let resumed = ledger
            .downloads
            .iter()
            .filter(|d| d.resumed_from > 0)
            .count();
        let counts = self.proxy.counts();
        let ranged = counts.ranged.load(Ordering::Relaxed);
        let cuts = counts.cut_scheduled.load(Ordering::Relaxed)
            + counts.cut_random.load(Ordering::Relaxed);
        let mut missing = Vec::new();
        if resumed == 0 {
            missing.push("a download resumed from a partial file (resumed_from > 0)");
        }
        if ranged == 0 {
            missing.push("a request with a Range");
        }
        if cuts == 0 {
            missing.push("a transfer cut");
        }
        if !missing.is_empty() {
            failures.push(format!("the OTA run never had {}", missing.join(", ")));
        }
        let fresh: u32 = ledger.downloads.iter().map(|d| d.fresh_urls).sum();
        let retries: usize = ledger.download_retries.values().sum();
        let lines = vec![
            format!(
                "OTA: a {:.1} MiB file (SHA-256 {}…), {} destinations verified byte for byte and \
                 by SHA-256, {} downloads completed, {partial} partial files left, {} other files",
                self.size() as f64 / f64::from(1u32 << 20),
                self.file.sha256.get(..12).unwrap_or_default(),
                verified,
                ledger.downloads.len(),
                strays.len() - partial.min(strays.len()),
            ),
            format!(
                "OTA: downloads resumed from a partial file (resumed_from > 0): {resumed} (from \
                 {:.1} MiB in all); fresh URLs after a 403: {fresh}; download calls that failed \
                 and were called again by the handler: {retries} {:?}; executions already \
                 installed when resumed: {}",
                ledger.downloads.iter().map(|d| d.resumed_from).sum::<u64>() as f64
                    / f64::from(1u32 << 20),
                ledger.download_retries,
                ledger.already_installed
            ),
            format!(
                "OTA: file server (through the proxy): {} connections, {} refused while down, {} \
                 requests ({ranged} with a Range), {} connections cut on schedule, {} responses \
                 cut at random, {:.1} MiB sent",
                counts.connections.load(Ordering::Relaxed),
                counts.refused.load(Ordering::Relaxed),
                counts.requests.load(Ordering::Relaxed),
                counts.cut_scheduled.load(Ordering::Relaxed),
                counts.cut_random.load(Ordering::Relaxed),
                counts.bytes.load(Ordering::Relaxed) as f64 / f64::from(1u32 << 20),
            ),
        ];
        (failures, lines)
    }
}

impl Ota {
    /// Removes the run's directory (the store and the destinations).
    pub(crate) fn remove_files(&self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Ota {
    fn drop(&mut self) {
        self.http = None;
        self.remove_files();
    }
}

/// What the file server's chaos did.
#[derive(Debug, Default)]
pub(crate) struct Interruptions {
    pub(crate) cuts: usize,
    pub(crate) downs: usize,
    pub(crate) stalls: usize,
}

fn list_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, out);
        } else {
            out.push(path);
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

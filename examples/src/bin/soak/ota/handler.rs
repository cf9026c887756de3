//! The OTA handler: downloads the document's file with the runner's download step, calling it
//! again after a failure (as a device would), and crashes some executions on purpose in the
//! middle of their download.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jobs_core::runner::{Context, Download, DownloadError, HandlerError, Outcome};

use super::URL_POINTER;
use crate::device::{Env, HANDLER_WAIT};
use crate::ledger::{DownloadRecord, Key, Returned};
use crate::plan::Doc;

/// The pause before the handler calls the download step again after it failed: doubled after
/// each failure, up to the maximum.
const RETRY_PAUSE: Duration = Duration::from_millis(200);
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(2);

/// Downloads the file into the execution's destination; `call` is the ledger's record of this
/// handler call. `crash`: crash on the first run, once the partial file holds a random share
/// of the file (the runner torn down mid-download, as a power cut would).
pub(crate) fn download(
    ctx: &Context,
    env: &Env,
    key: &Key,
    doc: &Doc,
    crash: bool,
    call: usize,
) -> Result<Outcome, HandlerError> {
    let shared = &env.shared;
    let returned = |how| shared.ledger.lock().returned(call, how);
    let Some(ota) = &shared.ota else {
        returned(Returned::Outcome);
        return Err("a download job in a run without OTA".into());
    };
    let (Some(url), Some(sha256)) = (&doc.url, &doc.sha256) else {
        returned(Returned::Outcome);
        return Err("the document names no file".into());
    };
    let destination = ota.destination(key);
    if let Some(dir) = destination.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Installed by an earlier run whose outcome was never reported (its runner was torn
    // down): the destination only ever holds a verified file.
    if ctx.resumed() && destination.exists() {
        shared.ledger.lock().already_installed += 1;
        returned(Returned::Outcome);
        return Ok(Outcome::succeeded());
    }
    let step = Download::new(url.clone(), destination, sha256)?
        .url_in_document(URL_POINTER)
        .progress_every(Duration::from_millis(700));
    let finished = Arc::new(AtomicBool::new(false));
    if crash && !shared.ledger.lock().crashed.contains_key(key) {
        crash_midway(env, key, &step, ota.size(), &finished);
    }
    let deadline = Instant::now() + HANDLER_WAIT;
    let mut pause = RETRY_PAUSE;
    let result = loop {
        match ctx.download(&step) {
            Ok(done) => {
                shared.ledger.lock().downloads.push(DownloadRecord {
                    key: key.clone(),
                    resumed_from: done.resumed_from,
                    bytes: done.bytes,
                    fresh_urls: done.fresh_urls,
                });
                break Ok(Outcome::succeeded());
            }
            Err(DownloadError::Stopping) => {
                // The runner is going (a reboot, a crash): this run is abandoned, as the
                // process would be gone; its outcome must never be reported.
                finished.store(true, Ordering::Release);
                let _ = env.torn_down.recv_timeout(HANDLER_WAIT);
                returned(Returned::Released);
                return Ok(Outcome::rejected());
            }
            Err(error @ (DownloadError::Network(_) | DownloadError::Http { .. }))
                if Instant::now() < deadline =>
            {
                let kind = match &error {
                    DownloadError::Http { status } => format!("HTTP {status}"),
                    // The describe for a fresh URL (the broker is down).
                    DownloadError::Network(source)
                        if source.downcast_ref::<jobs_core::Error>().is_some() =>
                    {
                        "no fresh URL".to_owned()
                    }
                    _ => "transfer".to_owned(),
                };
                *shared
                    .ledger
                    .lock()
                    .download_retries
                    .entry(kind)
                    .or_default() += 1;
                let _ = shared.release.recv_timeout(pause);
                pause = (pause * 2).min(MAX_RETRY_PAUSE);
            }
            Err(error) => {
                shared
                    .ledger
                    .lock()
                    .problem_about(key, format!("{key}: the download failed: {error}"));
                break Err(error.into());
            }
        }
    };
    finished.store(true, Ordering::Release);
    returned(Returned::Outcome);
    result
}

/// Tears down the handler's runner once the partial file holds a random share (10–90 %) of the
/// file, unless the download finished first, and records the crash.
fn crash_midway(env: &Env, key: &Key, step: &Download, size: u64, finished: &Arc<AtomicBool>) {
    let at = {
        let mut dice = env.dice.lock();
        size / 10 + dice.below(size * 8 / 10)
    };
    let ledger = Arc::clone(&env.shared.ledger);
    let key = key.clone();
    let partial = step.partial_path();
    let finished = Arc::clone(finished);
    let release = env.shared.release.clone();
    let crash = env.crash.clone();
    let generation = env.generation;
    let spawned = std::thread::Builder::new()
        .name("soak-ota-crash".into())
        .spawn(move || {
            let deadline = Instant::now() + HANDLER_WAIT;
            while Instant::now() < deadline && !finished.load(Ordering::Acquire) {
                if std::fs::metadata(&partial).is_ok_and(|m| m.len() >= at) {
                    ledger.lock().crashed.insert(key, generation);
                    let _ = crash.send(generation);
                    return;
                }
                if release.recv_timeout(Duration::from_millis(20))
                    != Err(crossbeam_channel::RecvTimeoutError::Timeout)
                {
                    return;
                }
            }
        });
    if let Err(error) = spawned {
        env.shared
            .ledger
            .lock()
            .problem(format!("could not start the crash thread: {error}"));
    }
}

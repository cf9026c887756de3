//! Broker outages — kills (SIGKILL, then a restart on the same port) and freezes (SIGSTOP,
//! then SIGCONT) — with the intervals they covered, which handlers can wait for; and the
//! watchdog that ends a stuck run.

use std::error::Error;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{RecvTimeoutError, Sender};
use jobs_mock::local_broker::LocalBroker;
use parking_lot::{Condvar, Mutex};
use serde::{Deserialize, Serialize};

/// How the broker was taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OutageKind {
    /// SIGKILL, then a restart on the same port: connections drop.
    Kill,
    /// SIGSTOP, then SIGCONT: connections stay open, nothing is answered meanwhile.
    Freeze,
}

/// One outage, from the moment the broker was down (the kill reaped, the SIGSTOP delivered)
/// to the moment just before it was brought back: an instant inside it is certainly down.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Interval {
    pub(crate) start: Instant,
    pub(crate) end: Instant,
    pub(crate) kind: OutageKind,
}

#[derive(Debug, Default)]
struct State {
    down: Option<(Instant, OutageKind)>,
    /// No outage will come any more.
    over: bool,
    intervals: Vec<Interval>,
}

/// The outages of the run, shared with the handlers.
#[derive(Debug, Default)]
pub(crate) struct Outages {
    state: Mutex<State>,
    changed: Condvar,
}

impl Outages {
    fn begin(&self, kind: OutageKind) {
        log::info!("outage begins: {kind:?}");
        self.state.lock().down = Some((Instant::now(), kind));
        self.changed.notify_all();
    }

    fn end(&self) {
        log::info!("outage ends");
        let mut state = self.state.lock();
        if let Some((start, kind)) = state.down.take() {
            state.intervals.push(Interval {
                start,
                end: Instant::now(),
                kind,
            });
        }
    }

    /// True while the broker is down.
    pub(crate) fn is_down(&self) -> bool {
        self.state.lock().down.is_some()
    }

    /// No more outages: handlers waiting for one return.
    pub(crate) fn finish(&self) {
        self.state.lock().over = true;
        self.changed.notify_all();
    }

    /// Waits until the broker is down by an outage of `kind`, at most `timeout` or until no
    /// more outages come; true if it is.
    pub(crate) fn wait_down(&self, kind: OutageKind, timeout: Duration) -> bool {
        let down = |s: &State| s.down.is_some_and(|(_, k)| k == kind);
        let mut state = self.state.lock();
        self.changed
            .wait_while_for(&mut state, |s| !down(s) && !s.over, timeout);
        down(&state)
    }

    /// The outage `at` fell in, if any.
    pub(crate) fn during(&self, at: Instant) -> Option<Interval> {
        self.state
            .lock()
            .intervals
            .iter()
            .find(|i| i.start <= at && at <= i.end)
            .copied()
    }

    /// How long the broker was down between `from` and `to` (the outage still under way
    /// counted up to now).
    pub(crate) fn down_between(&self, from: Instant, to: Instant) -> Duration {
        let state = self.state.lock();
        let current = state.down.map(|(start, kind)| Interval {
            start,
            end: Instant::now(),
            kind,
        });
        state
            .intervals
            .iter()
            .chain(current.as_ref())
            .map(|i| i.end.min(to).saturating_duration_since(i.start.max(from)))
            .sum()
    }

    pub(crate) fn intervals(&self) -> Vec<Interval> {
        self.state.lock().intervals.clone()
    }
}

/// The broker, with its pid published for the watchdog.
pub(crate) struct Broker {
    pub(crate) local: LocalBroker,
    pub(crate) pid: Arc<AtomicU32>,
}

impl Broker {
    pub(crate) fn start() -> Result<Self, Box<dyn Error>> {
        let local = LocalBroker::start()?;
        let pid = Arc::new(AtomicU32::new(local.pid().unwrap_or(0)));
        Ok(Self { local, pid })
    }

    /// Takes the broker down for `length`, then brings it back.
    ///
    /// # Errors
    /// When the broker cannot be signalled or restarted.
    pub(crate) fn outage(
        &mut self,
        kind: OutageKind,
        length: Duration,
        outages: &Outages,
    ) -> Result<(), Box<dyn Error>> {
        match kind {
            OutageKind::Kill => self.local.kill(),
            OutageKind::Freeze => self.local.pause()?,
        }
        outages.begin(kind);
        thread::sleep(length);
        outages.end();
        match kind {
            OutageKind::Kill => {
                self.local.restart()?;
                self.pid
                    .store(self.local.pid().unwrap_or(0), Ordering::Release);
            }
            OutageKind::Freeze => self.local.resume()?,
        }
        Ok(())
    }
}

/// Ends the process if the run is not over by its deadline: prints what it was doing, kills
/// the broker by its pid and exits with status 1. Dropping the returned sender disarms it.
pub(crate) fn watchdog(
    limit: Duration,
    broker_pid: Arc<AtomicU32>,
    phase: Arc<Mutex<&'static str>>,
) -> Sender<()> {
    let (disarm, disarmed) = crossbeam_channel::bounded::<()>(0);
    let spawned = thread::Builder::new()
        .name("soak-watchdog".into())
        .spawn(move || {
            if disarmed.recv_timeout(limit) != Err(RecvTimeoutError::Timeout) {
                return;
            }
            eprintln!(
                "soak: FAILED: still running after {:.0} s, while {}; giving up",
                limit.as_secs_f64(),
                phase.lock()
            );
            let pid = broker_pid.load(Ordering::Acquire);
            if pid != 0 {
                let _ = Command::new("kill")
                    .arg("-KILL")
                    .arg(pid.to_string())
                    .stdin(Stdio::null())
                    .status();
            }
            std::process::exit(1);
        });
    if let Err(error) = spawned {
        eprintln!("soak: could not start the watchdog: {error}");
    }
    disarm
}

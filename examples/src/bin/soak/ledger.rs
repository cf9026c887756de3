//! The ledger: everything the soak saw happen, by (thing, job, execution number) — every
//! handler call and its side effect, every `on_ended`, every runner teardown, every cancel and
//! re-run the soak made — for the checks at the end.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use jobs_core::runner::Ending;

/// One execution: thing, job, execution number (0 if the service sent none).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) thing: String,
    pub(crate) job: String,
    pub(crate) number: i64,
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}#{}", self.thing, self.job, self.number)
    }
}

/// A runner's number, unique in the run and increasing on each device.
pub(crate) type Generation = u64;

/// How a handler call ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Returned {
    /// Returned its outcome (succeeded, failed, rejected, or panicked).
    Outcome,
    /// Saw the cancellation signal set: the service ended the execution.
    Canceled,
    /// Returned after its runner was torn down: abandoned (its outcome is dropped).
    Released,
    /// Gave up waiting for a cancel or a timeout that never came.
    GaveUp,
    /// Could not arm its step timer.
    TimerNotArmed,
}

/// One handler call.
#[derive(Debug, Clone)]
pub(crate) struct Call {
    pub(crate) key: Key,
    pub(crate) generation: Generation,
    pub(crate) resumed: bool,
    pub(crate) started: Instant,
    pub(crate) returned: Option<(Instant, Returned)>,
}

/// One `on_ended` call.
#[derive(Debug, Clone)]
pub(crate) struct EndRecord {
    pub(crate) key: Key,
    pub(crate) generation: Generation,
    pub(crate) ending: Ending,
    pub(crate) at: Instant,
}

/// Why a runner was torn down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Cause {
    /// A handler crashed on purpose.
    Crash,
    /// The soak rebooted the device.
    Reboot,
    /// The end of the run.
    Final,
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Crash => "crash",
            Self::Reboot => "reboot",
            Self::Final => "final stop",
        })
    }
}

/// One runner stopped.
#[derive(Debug, Clone)]
pub(crate) struct Teardown {
    pub(crate) generation: Generation,
    pub(crate) cause: Cause,
    pub(crate) stopped_at: Instant,
    pub(crate) grace: Duration,
    /// How long `run` took to return after the stop.
    pub(crate) took: Duration,
}

/// A download the step completed (OTA mode).
#[derive(Debug, Clone)]
pub(crate) struct DownloadRecord {
    pub(crate) key: Key,
    pub(crate) resumed_from: u64,
    pub(crate) bytes: u64,
    pub(crate) fresh_urls: u32,
}

/// Everything recorded; shared behind one lock, held only for bookkeeping.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pub(crate) calls: Vec<Call>,
    /// Side effects per execution (the handler's work, counted on every run that does it).
    pub(crate) effects: HashMap<Key, u32>,
    /// The device's own storage: executions whose side effect is done.
    pub(crate) done: HashSet<Key>,
    pub(crate) endings: Vec<EndRecord>,
    pub(crate) teardowns: Vec<Teardown>,
    /// Executions whose handler crashed on purpose, with the runner it crashed in.
    pub(crate) crashed: HashMap<Key, Generation>,
    /// Executions whose cancel was asked for (once each).
    pub(crate) cancels_asked: HashSet<Key>,
    /// Cancels made (CancelJobExecution accepted), and removals (the thing removed from the
    /// job's targets).
    pub(crate) cancels_made: usize,
    pub(crate) removals_made: usize,
    /// Executions deleted (DeleteJobExecution, force).
    pub(crate) deletions_made: std::collections::BTreeSet<Key>,
    /// Cancels made while the handler's report waited out an outage: whether one was made.
    pub(crate) late_cancels: HashMap<Key, bool>,
    /// Re-runs queued by AssociateTargetsWithJob: when, by the key of the execution before.
    pub(crate) reruns_queued: HashMap<Key, Instant>,
    /// Step timers armed (a progress with a step timeout accepted).
    pub(crate) timers_armed: usize,
    /// Downloads completed (OTA mode).
    pub(crate) downloads: Vec<DownloadRecord>,
    /// Download calls that failed and were called again by the handler, by error.
    pub(crate) download_retries: std::collections::BTreeMap<String, usize>,
    /// Resumed executions whose file an earlier run had already installed.
    pub(crate) already_installed: usize,
    /// Runners whose `run` returned an error.
    pub(crate) runner_errors: Vec<String>,
    /// Problems seen while running (each one fails the soak), and the executions they concern.
    pub(crate) problems: Vec<String>,
    pub(crate) problem_keys: std::collections::BTreeSet<Key>,
}

impl Ledger {
    /// Records the start of a handler call and does its side effect, unless the call resumes
    /// an execution whose effect the device's storage already holds. Returns the call's index.
    pub(crate) fn start_call(&mut self, key: &Key, generation: Generation, resumed: bool) -> usize {
        if !(resumed && self.done.contains(key)) {
            *self.effects.entry(key.clone()).or_default() += 1;
            self.done.insert(key.clone());
        }
        self.calls.push(Call {
            key: key.clone(),
            generation,
            resumed,
            started: Instant::now(),
            returned: None,
        });
        self.calls.len() - 1
    }

    pub(crate) fn returned(&mut self, call: usize, how: Returned) {
        if let Some(call) = self.calls.get_mut(call) {
            call.returned = Some((Instant::now(), how));
        }
    }

    pub(crate) fn problem(&mut self, problem: String) {
        self.problems.push(problem);
    }

    pub(crate) fn problem_about(&mut self, key: &Key, problem: String) {
        self.problem_keys.insert(key.clone());
        self.problems.push(problem);
    }
}

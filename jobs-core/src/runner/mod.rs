//! [`Runner`]: the device's job loop, built on the public blocking API — handlers by operation,
//! exactly one terminal report per execution, cancels, reconnects, reboots, and pacing that
//! holds when the service refuses.
//!
//! # What it guarantees
//! - **Handlers by operation.** A handler returns the [`Outcome`] to report, or an error (it
//!   may use `?`), reported `FAILED` with the error's text as `reason`; a handler that panics
//!   is reported `FAILED` too. The runner reads the operation from the job document (the
//!   string field `"operation"` unless [`RunnerBuilder::operation_field`] says otherwise, as the
//!   AWS IoT Device Client does) and runs the handler registered for it, or the
//!   [fallback](RunnerBuilder::fallback). A document no handler accepts is reported `REJECTED`
//!   with a `reason`; so is an execution whose document does not parse (serde_json's verdict,
//!   in the `reason`).
//! - **Finding work.** The runner lists the pending executions (GetPending) when it starts,
//!   on events that show an execution it does not know, after a reconnect that lost the
//!   session, when a handler returns, and every [resync interval](RunnerBuilder::resync_interval);
//!   it resumes IN_PROGRESS ones and starts QUEUED ones (start-next, or an IN_PROGRESS update
//!   naming the execution when it already holds one), up to
//!   [`max_concurrent`](RunnerBuilder::max_concurrent) handlers at once. A search that found
//!   nothing new, or failed, delays the next one by the [`Backoff`], so events that bring no
//!   work cannot make it poll in a loop.
//! - **The right execution.** An execution is its job ID *and* its execution number. Progress
//!   ([`Context::progress`]), the terminal update and every describe the runner sends name
//!   the execution number the handler ran, and events are matched by both; so a re-run of the
//!   same job (execution 2, after a continuous job's re-target or a retry) is never reported,
//!   ended or canceled by what happened to execution 1, and vice versa. An execution this
//!   runner took on is never taken on again by it, and never runs twice at once.
//! - **Exactly one terminal report, paced.** The handler's outcome is sent until the service
//!   has it, never applied twice (a terminal execution refuses further updates and says its
//!   state), with every request about the execution after the first waiting the next delay of
//!   the backoff, over its whole report. Throttling, internal errors, timeouts, transport
//!   errors of every kind (a full request queue among them) and undecodable replies are
//!   retried; a refusal no retry can fix (`InvalidRequest`, `VersionMismatch`, …) makes the
//!   runner describe the execution: if the service ended it, the report is over; if it is
//!   still pending, the outcome is sent once more (a re-read may be all a `VersionMismatch`
//!   needed), and after a second refusal `FAILED` is reported instead, with the refusal as
//!   `reason`; if even that is refused, the runner keeps trying at the backoff's slowest pace,
//!   and other executions run meanwhile. **The bound:** with the default backoff a service
//!   that refuses forever gets at most 7 requests about one execution in any minute, and at
//!   most 2 a minute after its second minute (in general, the waits between them are the
//!   backoff's delays `initial`, `2 × initial`, … up to `max`, each drawn between half and
//!   all of it).
//! - **Cancels.** When an event shows that a running execution may have left the pending list,
//!   the runner describes it (paced the same way); if the service ended it (CANCELED, REMOVED,
//!   TIMED_OUT, or `TerminalStateReached` / `ResourceNotFound`), the handler's
//!   [`Cancellation`] is set and its outcome is not reported. A progress update the service
//!   refuses that way sets it too.
//! - **Reboots.** An execution that was already IN_PROGRESS when the runner picked it up (a
//!   reboot, a crash, a runner stopped mid-handler) runs with [`Context::resumed`] true, so the
//!   handler can continue from its own saved progress.
//! - **One ending each.** The [`on_ended`](RunnerBuilder::on_ended) hook is called exactly once
//!   for every execution the runner took on, with an [`Ending`]: the status the service holds
//!   (learned from the service's answers, never assumed), or that the execution was left in
//!   progress. It runs under `catch_unwind`; a panicking hook or handler never stops the loop.
//! - **Stop.** [`StopHandle::stop`], from any thread, ends [`Runner::run`]: no new execution
//!   starts, every running handler sees [`Context::is_stopping`], and the runner goes on
//!   reporting the outcomes of handlers that return until the
//!   [stop grace](RunnerBuilder::stop_grace) is over, with every request after the stop
//!   bounded by what is left of the grace. Then a handler still running is **abandoned**: the
//!   thread is left to finish on its own and whatever it returns is dropped; its execution
//!   stays IN_PROGRESS and the next runner resumes it. `run` returns within the stop grace
//!   plus one [`Jobs`] timeout of the stop (the timeout of a request already in flight when
//!   the stop came).
//! - **Close.** [`Jobs::close`] on the thing makes `run` return
//!   [`InvalidInput::Closed`](crate::InvalidInput::Closed) promptly (within one `Jobs` timeout:
//!   a request in flight fails at once).
//!
//! # Not guaranteed
//! Exactly-once *work* across a crash inside a handler is the handler's job: the runner
//! reruns an IN_PROGRESS execution with `resumed()` true, and the handler must make its side
//! effects idempotent or resume from what it saved. An outcome not yet acknowledged when the
//! process dies (or the stop grace ends) is lost; the execution is resumed later. The runner
//! remembers the last 1,024 executions it ended; it relies on the execution number to tell
//! re-runs apart, so a service that sends none makes a re-run look like the execution it
//! already ran.
//!
//! # Threads
//! [`Runner::run`] blocks the calling thread, which runs the loop: it sends every request
//! (one at a time, each bounded by the [`Jobs`] timeout) and calls the `on_ended` hook. Each
//! handler runs on a thread of its own, so the loop can hear cancels meanwhile. The loop wakes
//! on events, handlers that return, the stop and its own timers (no fixed tick). Logging: one
//! info line when an execution starts and one when it ends; documents only at debug level.

mod builder;
mod context;
#[cfg(feature = "download")]
mod download;
mod driver;
mod ended;
mod machine;
mod pacing;
mod worker;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender};
use parking_lot::Mutex;

pub use builder::RunnerBuilder;
pub use context::{Cancellation, Context, Outcome};
#[cfg(feature = "download")]
pub use download::{Download, DownloadError, Downloaded};
pub use ended::{Ended, Ending};
pub use pacing::Backoff;

use crate::{Error, Jobs, StatusDetails, StepTimeout, ThingName};
use machine::{Machine, Settings};
use pacing::Jitter;

/// What a handler may fail with; an `Err` is reported `FAILED` with the error's text as the
/// `reason` status detail, so handlers can use `?`.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

type HandlerFn = dyn Fn(&Context) -> Result<Outcome, HandlerError> + Send + Sync;

type EndedFn = dyn Fn(&Ended) + Send + Sync;

/// What the handler threads and the loop share.
struct Config {
    handlers: HashMap<String, Arc<HandlerFn>>,
    fallback: Option<Arc<HandlerFn>>,
    on_ended: Option<Arc<EndedFn>>,
    operation_field: String,
}

/// The device's job loop: handlers by operation, one terminal report per execution. See the
/// [module documentation](self) for what it guarantees.
///
/// ```
/// use jobs_core::runner::{Outcome, Runner};
/// use jobs_core::{Client, Jobs};
///
/// # let broker = jobs_mock::MockBroker::new();
/// # let client = Client::new(broker.connect("pump-07"))?;
/// let jobs = Jobs::new(&client, "pump-07")?;
/// let runner = Runner::builder(&jobs)
///     .handler("rotate-logs", |ctx| {
///         let keep = ctx.document().to_value()["keep"].as_u64().unwrap_or(5);
///         // … rotate, keeping `keep` files …
///         # let _ = keep;
///         Ok(Outcome::succeeded())
///     })
///     .build()?;
/// let stop = runner.stop_handle();
/// # stop.stop();
/// runner.run()?; // until stop.stop() is called from another thread
/// # Ok::<(), jobs_core::Error>(())
/// ```
pub struct Runner {
    config: Arc<Config>,
    things: Vec<Jobs>,
    max_concurrent: usize,
    handler_threads: usize,
    request_threads: usize,
    step_timeout: Option<StepTimeout>,
    backoff: Backoff,
    stop_grace: std::time::Duration,
    resync_interval: std::time::Duration,
    stop: StopHandle,
    stop_rx: Receiver<()>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let things: Vec<&ThingName> = self.things.iter().map(Jobs::thing_name).collect();
        f.debug_struct("Runner")
            .field("things", &things)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// Starts configuring a runner for the thing of `jobs` (add more with
    /// [`RunnerBuilder::thing`]).
    pub fn builder(jobs: &Jobs) -> RunnerBuilder {
        RunnerBuilder::new(jobs)
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs the loop on this thread until [`StopHandle::stop`] (returns `Ok`), or until the
    /// thing's [`Jobs`] is closed (with several things: until every one is closed; a closed
    /// thing is no longer served). A runner stopped before `run` returns from it at once.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] ([`InvalidInput::Closed`](crate::InvalidInput::Closed)) when the
    /// things' [`Jobs`] were closed, before or during the run; other failures (timeouts, a lost
    /// connection, refusals) are logged and retried with backoff, never returned, as is a
    /// failure to spawn the runner's threads ([`Error::Transport`] with a backend source).
    pub fn run(self) -> Result<(), Error> {
        let settings = Settings {
            max_concurrent: self.max_concurrent,
            backoff: self.backoff,
            stop_grace: self.stop_grace,
            resync_interval: self.resync_interval,
        };
        let now = Instant::now();
        let mut jitter = Jitter::from_entropy();
        let things = self
            .things
            .iter()
            .map(|jobs| {
                let machine = Machine::new(settings.clone(), now, jitter.fork());
                (jobs.clone(), machine)
            })
            .collect();
        driver::Driver {
            config: Arc::clone(&self.config),
            step_timeout: self.step_timeout,
            stop: &self.stop,
            stop_rx: &self.stop_rx,
            stop_grace: self.stop_grace,
            handler_threads: self.handler_threads,
            request_threads: self.request_threads,
        }
        .run(things)
    }
}

/// Stops a [`Runner`] from any thread; cloning is cheap.
#[derive(Clone)]
pub struct StopHandle(Arc<Mutex<StopState>>);

struct StopState {
    requested_at: Option<Instant>,
    /// Dropped by the stop: the disconnection wakes the loop.
    wake: Option<Sender<()>>,
}

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.0.lock().requested_at.is_some())
            .finish()
    }
}

impl StopHandle {
    fn new() -> (Self, Receiver<()>) {
        let (tx, rx) = crossbeam_channel::bounded(0);
        let state = StopState {
            requested_at: None,
            wake: Some(tx),
        };
        (Self(Arc::new(Mutex::new(state))), rx)
    }

    /// Stops the runner (see the module documentation for what happens to running handlers);
    /// the stop grace counts from this call. Never blocks; stopping twice changes nothing; a
    /// runner stopped before `run` returns at once from it.
    pub fn stop(&self) {
        let mut state = self.0.lock();
        state.requested_at.get_or_insert_with(Instant::now);
        drop(state.wake.take());
    }

    fn requested_at(&self) -> Option<Instant> {
        self.0.lock().requested_at
    }
}

/// Status details with one `reason`; a reason that breaks the rules is shortened to a safe one.
fn reason(why: &str) -> StatusDetails {
    let mut value: String = why
        .chars()
        .filter(|c| !crate::validate::is_other(*c))
        .take(crate::validate::STATUS_DETAIL_VALUE_MAX)
        .collect();
    if value.is_empty() {
        value.push('?');
    }
    StatusDetails::from_pairs([("reason", value)]).unwrap_or_default()
}

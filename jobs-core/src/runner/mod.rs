//! [`Runner`]: the device's job loop, built on the public blocking API — handlers by operation,
//! exactly one terminal report per execution, cancels, reconnects, reboots.
//!
//! # What it guarantees
//! - **Handlers by operation.** A handler returns the [`Outcome`] to report, or an error (it
//!   may use `?`), reported `FAILED` with the error's text as `reason`; a handler that panics
//!   is reported `FAILED` too. The runner reads the operation from the job document (the
//!   string field `"operation"` unless [`RunnerBuilder::operation_field`] says otherwise, as the
//!   AWS IoT Device Client does) and runs the handler registered for it, or the
//!   [fallback](RunnerBuilder::fallback). A document no handler accepts is reported `REJECTED`
//!   with a `reason` in its status details.
//! - **The loop.** Start-next when [`Runner::run`] starts, on every `notify-next` / `notify`
//!   event, after a reconnect that lost the session (the client reports it through
//!   [`Jobs::changed`]), and every [resync interval](RunnerBuilder::resync_interval). One
//!   execution at a time unless [`RunnerBuilder::max_concurrent`] allows more (then further
//!   QUEUED executions are started with an IN_PROGRESS update). The same execution (job ID and
//!   execution number) never runs twice at once in one runner, and an execution whose outcome
//!   this runner already reported is never run again (duplicated and out-of-date events are
//!   absorbed).
//! - **Exactly one terminal report.** The handler's [`Outcome`] is reported with retries on
//!   timeouts, transport errors, `RequestThrottled` and `InternalError`, waiting with capped
//!   exponential backoff and jitter ([`Backoff`]). Before each retry the runner describes the
//!   execution: if an earlier attempt was applied, or the service ended the execution, nothing
//!   is sent again; AWS refuses to describe a terminal execution (`TerminalStateReached`),
//!   which also ends the report, since a terminal execution takes no more updates. A terminal
//!   update refused with `InvalidStateTransition` (the service canceled, removed or timed out
//!   the execution) ends the job quietly with a log line. Progress updates
//!   ([`Context::progress`]) are best effort and never retried.
//! - **Cancels.** When an event shows that a running execution left the pending list, the
//!   runner describes it; if the service ended it (CANCELED, REMOVED, TIMED_OUT, or
//!   `TerminalStateReached` / `ResourceNotFound`), the handler's [`Cancellation`] is set, and its
//!   outcome is not reported over the service's terminal state. A progress update the service
//!   rejects that way sets it too.
//! - **Reboots.** An execution that was already IN_PROGRESS when the runner picked it up (a
//!   reboot, a crash, a runner stopped mid-handler) runs with [`Context::resumed`] true, so the
//!   handler can continue from its own saved progress.
//! - **Stop.** [`StopHandle::stop`], from any thread, ends [`Runner::run`]: no new execution
//!   starts, every running handler sees [`Context::is_stopping`], and the runner waits up to
//!   the [stop grace](RunnerBuilder::stop_grace) for handlers to return and their outcomes to
//!   be reported. A handler still running then is **abandoned**: `run` returns anyway, the
//!   thread is left to finish on its own and whatever it returns is dropped; its execution
//!   stays IN_PROGRESS and the next runner resumes it. `run` returns within the stop grace plus
//!   one [`Jobs`] timeout.
//!
//! # Not guaranteed
//! Exactly-once *work* across a crash inside a handler is the handler's job: the runner
//! reruns an IN_PROGRESS execution with `resumed()` true, and the handler must make its side
//! effects idempotent or resume from what it saved. An outcome not yet acknowledged when the
//! process dies (or the stop grace ends) is lost; the execution is resumed later.
//!
//! # Threads
//! [`Runner::run`] blocks the calling thread, which runs the loop. Each handler runs on a
//! thread of its own (so the loop can hear cancels meanwhile), and one more thread waits for
//! events. Logging: one info line when an execution starts and one when it ends; documents
//! only at debug level.

mod context;
mod report;

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use log::{debug, info, warn};
use parking_lot::Mutex;

pub use context::{Cancellation, Context, Outcome};
pub use report::Backoff;
use report::{Reported, report};

use crate::{
    Error, Event, ExecutionNumber, InvalidInput, Job, JobId, JobStatus, Jobs, StatusDetails,
    StepTimeout, Update,
};

/// How often the event thread wakes to let the loop check for reconnects, retries and stop.
const TICK: Duration = Duration::from_secs(1);

/// How many finished executions the runner remembers, so that it never runs one again.
const FINISHED_MEMORY: usize = 1024;

/// What a handler may fail with; an `Err` is reported `FAILED` with the error's text as the
/// `reason` status detail, so handlers can use `?`.
pub type HandlerError = Box<dyn std::error::Error + Send + Sync>;

type HandlerFn = dyn Fn(&Context) -> Result<Outcome, HandlerError> + Send + Sync;

type EndedFn = dyn Fn(&JobId, Option<&JobStatus>) + Send + Sync;

/// One execution: a job ID and its execution number.
type Key = (JobId, Option<ExecutionNumber>);

/// Configures a [`Runner`]; see [`Runner::builder`].
#[must_use]
pub struct RunnerBuilder {
    jobs: Jobs,
    handlers: HashMap<String, Arc<HandlerFn>>,
    fallback: Option<Arc<HandlerFn>>,
    on_ended: Option<Arc<EndedFn>>,
    operation_field: String,
    max_concurrent: usize,
    step_timeout: Option<StepTimeout>,
    backoff: Backoff,
    stop_grace: Duration,
    resync_interval: Duration,
}

impl fmt::Debug for RunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut operations: Vec<&String> = self.handlers.keys().collect();
        operations.sort();
        f.debug_struct("RunnerBuilder")
            .field("operations", &operations)
            .field("fallback", &self.fallback.is_some())
            .field("operation_field", &self.operation_field)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl RunnerBuilder {
    /// Runs `handler` for documents whose operation field is `operation`. A later handler for
    /// the same operation replaces the earlier one.
    pub fn handler(
        mut self,
        operation: &str,
        handler: impl Fn(&Context) -> Result<Outcome, HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.handlers
            .insert(operation.to_owned(), Arc::new(handler));
        self
    }

    /// Runs `handler` for documents no other handler accepts (no operation field, or an
    /// operation without a handler). Defaults to none: such documents are reported `REJECTED`.
    pub fn fallback(
        mut self,
        handler: impl Fn(&Context) -> Result<Outcome, HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Calls `ended` on the handler's thread once an execution's report is over, with the
    /// status the service now holds from this runner, or `None` when nothing was reported (the
    /// service ended the execution, the report gave up, or the runner abandoned the handler).
    /// Defaults to none. It must not block for long.
    pub fn on_ended(
        mut self,
        ended: impl Fn(&JobId, Option<&JobStatus>) + Send + Sync + 'static,
    ) -> Self {
        self.on_ended = Some(Arc::new(ended));
        self
    }

    /// The document field naming the operation. Defaults to `"operation"`.
    pub fn operation_field(mut self, field: &str) -> Self {
        field.clone_into(&mut self.operation_field);
        self
    }

    /// How many executions may run at once. Defaults to 1; 0 is taken as 1.
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max.max(1);
        self
    }

    /// A step timer started with each execution the runner starts. Defaults to none.
    pub fn step_timeout(mut self, step_timeout: StepTimeout) -> Self {
        self.step_timeout = Some(step_timeout);
        self
    }

    /// How terminal reports are retried. Defaults to [`Backoff::default`] (1 s doubling to 1
    /// minute).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long [`StopHandle::stop`] waits for running handlers and their reports. Defaults
    /// to 10 s.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How often the runner looks for work and checks its running executions even without an
    /// event. Defaults to 5 minutes.
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = interval;
        self
    }

    /// The runner.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] ([`InvalidInput::StepTimeoutCancelOutsideUpdate`]) for a step
    /// timeout of [`StepTimeout::CANCEL`].
    pub fn build(self) -> Result<Runner, Error> {
        if self.step_timeout.is_some_and(StepTimeout::is_cancel) {
            return Err(InvalidInput::StepTimeoutCancelOutsideUpdate.into());
        }
        let (stop_tx, stop_rx) = crossbeam_channel::bounded(0);
        Ok(Runner {
            config: Arc::new(Config {
                handlers: self.handlers,
                fallback: self.fallback,
                on_ended: self.on_ended,
                operation_field: self.operation_field,
                backoff: self.backoff,
            }),
            jobs: self.jobs,
            max_concurrent: self.max_concurrent,
            step_timeout: self.step_timeout,
            stop_grace: self.stop_grace,
            resync_interval: self.resync_interval,
            stop: StopHandle(Arc::new(Mutex::new(Some(stop_tx)))),
            stop_rx,
        })
    }
}

/// What the handler threads share with the runner.
struct Config {
    handlers: HashMap<String, Arc<HandlerFn>>,
    fallback: Option<Arc<HandlerFn>>,
    on_ended: Option<Arc<EndedFn>>,
    operation_field: String,
    backoff: Backoff,
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
    jobs: Jobs,
    max_concurrent: usize,
    step_timeout: Option<StepTimeout>,
    stop_grace: Duration,
    resync_interval: Duration,
    stop: StopHandle,
    stop_rx: Receiver<()>,
}

impl fmt::Debug for Runner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runner")
            .field("thing", self.jobs.thing_name())
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

/// Stops a [`Runner`] from any thread; cloning is cheap.
#[derive(Clone)]
pub struct StopHandle(Arc<Mutex<Option<Sender<()>>>>);

impl fmt::Debug for StopHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StopHandle")
            .field("stopped", &self.0.lock().is_none())
            .finish()
    }
}

impl StopHandle {
    /// Stops the runner (see the module documentation for what happens to running handlers).
    /// Never blocks; stopping twice changes nothing; a runner stopped before `run` returns at
    /// once from it.
    pub fn stop(&self) {
        // Dropping the only sender disconnects the channel, which wakes every waiter.
        drop(self.0.lock().take());
    }
}

/// Messages to the loop.
enum Message {
    Event(Event),
    Tick,
    Done(Key, Outcome, Reported),
}

/// A running execution.
struct Running {
    cancellation: Cancellation,
    /// Set once the handler returned: its report is under way and must not be second-guessed.
    reporting: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// The loop's state during one [`Runner::run`].
struct State {
    running: HashMap<Key, Running>,
    finished: HashMap<Key, Outcome>,
    finished_order: VecDeque<Key>,
    /// Outcomes of executions to report again (their report gave up; they are still pending).
    unreported: HashMap<Key, Outcome>,
    give_up: Arc<Mutex<Option<Instant>>>,
    next_resync: Instant,
    retry_at: Option<Instant>,
}

impl Runner {
    /// Starts configuring a runner for the thing of `jobs`.
    pub fn builder(jobs: &Jobs) -> RunnerBuilder {
        RunnerBuilder {
            jobs: jobs.clone(),
            handlers: HashMap::new(),
            fallback: None,
            on_ended: None,
            operation_field: "operation".to_owned(),
            max_concurrent: 1,
            step_timeout: None,
            backoff: Backoff::default(),
            stop_grace: Duration::from_secs(10),
            resync_interval: Duration::from_secs(300),
        }
    }

    /// A handle that stops [`run`](Self::run) from another thread.
    pub fn stop_handle(&self) -> StopHandle {
        self.stop.clone()
    }

    /// Runs the loop on this thread until [`StopHandle::stop`]. A runner runs once: after a
    /// stop, `run` returns at once.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] ([`InvalidInput::Closed`]) when the thing's [`Jobs`] was closed;
    /// other failures (timeouts, a lost connection) are logged and retried, never returned.
    pub fn run(&self) -> Result<(), Error> {
        let (tx, rx) = crossbeam_channel::unbounded();
        let listener = self.listen(tx.clone());
        let mut state = State {
            running: HashMap::new(),
            finished: HashMap::new(),
            finished_order: VecDeque::new(),
            unreported: HashMap::new(),
            give_up: Arc::new(Mutex::new(None)),
            next_resync: Instant::now() + self.resync_interval,
            retry_at: None,
        };
        let _ = self.jobs.changed();
        let stopped = matches!(
            self.stop_rx.try_recv(),
            Err(crossbeam_channel::TryRecvError::Disconnected)
        );
        let mut result = if stopped {
            Ok(())
        } else {
            self.acquire(&mut state, &tx)
        };
        while result.is_ok() && !stopped {
            select! {
                recv(self.stop_rx) -> _ => break,
                recv(rx) -> message => match message {
                    Ok(Message::Event(event)) => {
                        let _ = self.jobs.changed();
                        self.check_running(&state, Some(&event));
                        result = self.acquire(&mut state, &tx);
                    }
                    Ok(Message::Tick) => result = self.tick(&mut state, &tx),
                    Ok(Message::Done(key, outcome, reported)) => {
                        self.finish(&mut state, key, outcome, reported);
                        result = self.acquire(&mut state, &tx);
                    }
                    Err(_) => break,
                },
            }
        }
        self.shut_down(&mut state, &rx);
        if listener.join().is_err() {
            warn!("the runner's event thread panicked");
        }
        result
    }

    /// The event thread: forwards events, and a tick when none came within [`TICK`].
    fn listen(&self, tx: Sender<Message>) -> JoinHandle<()> {
        let jobs = self.jobs.with_timeout(TICK);
        let stop = self.stop_rx.clone();
        thread::spawn(move || {
            loop {
                let message = match jobs.next_event() {
                    Ok(Some(event)) => Message::Event(event),
                    Ok(None) => Message::Tick,
                    Err(Error::InvalidInput(InvalidInput::Closed(_))) => return,
                    Err(error) => {
                        debug!("waiting for events failed: {error}");
                        // Offline: do not spin; wait a tick (or until stopped).
                        if stop.recv_timeout(TICK).is_err_and(|e| e.is_disconnected()) {
                            return;
                        }
                        Message::Tick
                    }
                };
                let stopped = matches!(
                    stop.try_recv(),
                    Err(crossbeam_channel::TryRecvError::Disconnected)
                );
                if stopped || tx.send(message).is_err() {
                    return;
                }
            }
        })
    }

    fn tick(&self, state: &mut State, tx: &Sender<Message>) -> Result<(), Error> {
        let now = Instant::now();
        let resync = self.jobs.changed() || now >= state.next_resync;
        if resync {
            state.next_resync = now + self.resync_interval;
            self.check_running(state, None);
        }
        if resync || state.retry_at.is_some_and(|at| now >= at) {
            return self.acquire(state, tx);
        }
        Ok(())
    }

    /// Looks for work while there is room: start-next for the first execution, then (when more
    /// may run at once) QUEUED executions started with an IN_PROGRESS update.
    fn acquire(&self, state: &mut State, tx: &Sender<Message>) -> Result<(), Error> {
        while state.running.len() < self.max_concurrent {
            let found = if state.running.is_empty() {
                self.start_next(state)
            } else {
                self.start_another(state)
            };
            match found {
                Ok(Some((job, resumed))) => self.spawn(state, job, resumed, tx),
                Ok(None) => break,
                Err(error @ Error::InvalidInput(InvalidInput::Closed(_))) => return Err(error),
                Err(error) => {
                    warn!(
                        "looking for jobs of {} failed: {error}",
                        self.jobs.thing_name()
                    );
                    state.retry_at = Some(Instant::now() + TICK);
                    return Ok(());
                }
            }
        }
        state.retry_at = None;
        Ok(())
    }

    /// The next execution by start-next, and whether it was already IN_PROGRESS (resumed).
    fn start_next(&self, state: &State) -> Result<Option<(Job, bool)>, Error> {
        let Some(head) = self.jobs.describe_next()? else {
            return Ok(None);
        };
        let mut options = crate::StartNext::new();
        if let Some(step) = self.step_timeout {
            options = options.step_timeout(step);
        }
        let Some(job) = self.jobs.start_next_with(options)? else {
            return Ok(None);
        };
        let resumed = head.id() == job.id() && head.status() == Some(&JobStatus::InProgress);
        if state.running.contains_key(&key(&job)) {
            return Ok(None);
        }
        Ok(Some((job, resumed)))
    }

    /// Another pending execution, when more than one may run at once.
    fn start_another(&self, state: &State) -> Result<Option<(Job, bool)>, Error> {
        for mut job in self.jobs.list()? {
            if state.running.contains_key(&key(&job)) {
                continue;
            }
            let resumed = job.status() == Some(&JobStatus::InProgress);
            job.describe()?;
            if !resumed {
                let mut update = Update::new(JobStatus::InProgress);
                if let Some(step) = self.step_timeout {
                    update = update.step_timeout(step);
                }
                job.update_with(update)?;
            }
            return Ok(Some((job, resumed)));
        }
        Ok(None)
    }

    fn spawn(&self, state: &mut State, job: Job, resumed: bool, tx: &Sender<Message>) {
        let key = key(&job);
        // Executions this runner already finished are never run again; one whose report gave
        // up gets its outcome reported again instead.
        let known = state
            .unreported
            .remove(&key)
            .or_else(|| state.finished.get(&key).cloned());
        let cancellation = Cancellation::default();
        let reporting = Arc::new(AtomicBool::new(false));
        let worker = Worker {
            config: Arc::clone(&self.config),
            key: key.clone(),
            job,
            resumed,
            known,
            cancellation: cancellation.clone(),
            reporting: Arc::clone(&reporting),
            give_up: Arc::clone(&state.give_up),
            tx: tx.clone(),
        };
        let name = format!("jobs-runner-{}", key.0);
        match thread::Builder::new()
            .name(name)
            .spawn(move || worker.run())
        {
            Ok(thread) => {
                state.running.insert(
                    key,
                    Running {
                        cancellation,
                        reporting,
                        thread,
                    },
                );
            }
            Err(error) => {
                warn!("could not start a thread for {}: {error}", key.0);
                state.retry_at = Some(Instant::now() + TICK);
            }
        }
    }

    /// Checks the running executions the service may have ended: those an event no longer
    /// lists as pending (all of them without an event).
    fn check_running(&self, state: &State, event: Option<&Event>) {
        for ((id, number), running) in &state.running {
            if running.reporting.load(Ordering::Acquire) || running.cancellation.is_canceled() {
                continue;
            }
            let still_pending = match event {
                Some(Event::JobsChanged(changed)) => changed
                    .jobs
                    .in_progress
                    .iter()
                    .any(|summary| &summary.job_id == id),
                Some(Event::NextJobChanged(next)) => next
                    .execution
                    .as_ref()
                    .is_some_and(|execution| &execution.job_id == id),
                _ => false,
            };
            if still_pending {
                continue;
            }
            if self.ended_by_service(id, *number) {
                info!("{id} was ended by the service; canceling its handler");
                running.cancellation.cancel();
            }
        }
    }

    /// Whether the service ended the execution (a describe says so).
    fn ended_by_service(&self, id: &JobId, number: Option<ExecutionNumber>) -> bool {
        let Ok(mut job) = self.jobs.job(id) else {
            return false;
        };
        let mut options = crate::Describe::new().include_job_document(false);
        if let Some(number) = number {
            options = options.execution_number(number);
        }
        match job.describe_with(options) {
            Ok(()) => job.status().is_some_and(JobStatus::is_terminal),
            Err(error) => context::describe_refused_as_ended(&error),
        }
    }

    fn finish(&self, state: &mut State, key: Key, outcome: Outcome, reported: Reported) {
        if let Some(running) = state.running.remove(&key)
            && running.thread.join().is_err()
        {
            warn!("the handler thread of {} panicked", key.0);
        }
        if matches!(reported, Reported::GaveUp | Reported::Abandoned) {
            state.unreported.insert(key, outcome);
            return;
        }
        if state.finished.insert(key.clone(), outcome).is_none() {
            state.finished_order.push_back(key);
        }
        while state.finished_order.len() > FINISHED_MEMORY {
            if let Some(old) = state.finished_order.pop_front() {
                state.finished.remove(&old);
            }
        }
    }

    /// Stops the running handlers, waits for them within the grace, abandons the rest.
    fn shut_down(&self, state: &mut State, rx: &Receiver<Message>) {
        self.stop.stop();
        let deadline = Instant::now() + self.stop_grace;
        *state.give_up.lock() = Some(deadline);
        for running in state.running.values() {
            running.cancellation.stop();
        }
        while !state.running.is_empty() {
            match rx.recv_deadline(deadline) {
                Ok(Message::Done(key, outcome, reported)) => {
                    self.finish(state, key, outcome, reported);
                }
                Ok(_) => {}
                Err(_) => break,
            }
        }
        for (id, _) in state.running.keys() {
            warn!("abandoning the handler of {id}: it did not return within the stop grace");
        }
        state.running.clear();
    }
}

/// One execution's thread: run the handler, report its outcome.
struct Worker {
    config: Arc<Config>,
    key: Key,
    job: Job,
    resumed: bool,
    /// An outcome this runner already has for the execution: report it, do not run again.
    known: Option<Outcome>,
    cancellation: Cancellation,
    reporting: Arc<AtomicBool>,
    give_up: Arc<Mutex<Option<Instant>>>,
    tx: Sender<Message>,
}

impl Worker {
    fn run(mut self) {
        let outcome = match self.known.take() {
            Some(outcome) => outcome,
            None => self.run_handler(),
        };
        self.reporting.store(true, Ordering::Release);
        let id = self.job.id().clone();
        let reported = if self.cancellation.is_canceled() {
            Reported::EndedByService(None)
        } else {
            let give_up = Arc::clone(&self.give_up);
            report(
                &mut self.job,
                &outcome,
                self.config.backoff,
                &self.cancellation,
                move || *give_up.lock(),
            )
        };
        match &reported {
            Reported::Applied => info!("{id} ended: reported {}", outcome.status),
            Reported::EndedByService(status) => info!(
                "{id} ended by the service ({}); {} not reported",
                status
                    .as_ref()
                    .map_or("terminal".to_owned(), ToString::to_string),
                outcome.status
            ),
            Reported::GaveUp => warn!("{id}: {} could not be reported", outcome.status),
            Reported::Abandoned => debug!(
                "{id}: its handler returned after the runner stopped; {} dropped",
                outcome.status
            ),
        }
        if let Some(ended) = &self.config.on_ended {
            let status = (reported == Reported::Applied).then_some(&outcome.status);
            ended(&id, status);
        }
        // The loop may be gone (the runner stopped and abandoned this thread).
        let _ = self.tx.send(Message::Done(self.key, outcome, reported));
    }

    fn run_handler(&self) -> Outcome {
        let Some(document) = self.job.document().cloned() else {
            return Outcome::rejected().with_details(reason("the execution has no job document"));
        };
        debug!("{} document: {}", self.job.id(), document.as_json());
        let value = document.to_value();
        let operation = value
            .get(&self.config.operation_field)
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let handler = operation
            .as_deref()
            .and_then(|operation| self.config.handlers.get(operation))
            .or(self.config.fallback.as_ref())
            .cloned();
        info!(
            "{} starting (execution {}, operation {}{})",
            self.job.id(),
            self.job
                .execution_number()
                .map_or("?".to_owned(), |n| n.to_string()),
            operation.as_deref().unwrap_or("none"),
            if self.resumed { ", resumed" } else { "" }
        );
        let Some(handler) = handler else {
            let why = match &operation {
                Some(operation) => format!("no handler for operation {operation:?}"),
                None => format!(
                    "the document has no {:?} field",
                    self.config.operation_field
                ),
            };
            return Outcome::rejected().with_details(reason(&why));
        };
        let context = Context::new(
            &self.job,
            document,
            operation,
            self.resumed,
            self.cancellation.clone(),
        );
        match catch_unwind(AssertUnwindSafe(|| handler(&context))) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                info!("the handler of {} failed: {error}", self.job.id());
                Outcome::failed().with_details(reason(&error.to_string()))
            }
            Err(_) => {
                warn!("the handler of {} panicked", self.job.id());
                Outcome::failed().with_details(reason("the handler panicked"))
            }
        }
    }
}

fn key(job: &Job) -> Key {
    (job.id().clone(), job.execution_number())
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

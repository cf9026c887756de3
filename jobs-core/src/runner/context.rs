//! What a handler sees of its execution: [`Context`], the [`Cancellation`] signal, and the
//! [`Outcome`] it returns.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use log::debug;
use parking_lot::{Condvar, Mutex};
use serde::de::DeserializeOwned;

use crate::{
    Document, Error, ExecutionNumber, Job, JobId, JobStatus, RejectCode, StatusDetails,
    StepTimeout, ThingName, Update,
};

/// What a handler reports when it returns: the terminal status and optional details. The
/// runner reports it exactly once (see [`Runner`](super::Runner)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub(crate) status: JobStatus,
    pub(crate) details: Option<StatusDetails>,
}

impl Outcome {
    /// The job was done: `SUCCEEDED`.
    pub fn succeeded() -> Self {
        Self::new(JobStatus::Succeeded)
    }

    /// The job failed and may be retried by the job's retry configuration: `FAILED`.
    pub fn failed() -> Self {
        Self::new(JobStatus::Failed)
    }

    /// This device cannot or will not run the job (an invalid document, say); never retried:
    /// `REJECTED`.
    pub fn rejected() -> Self {
        Self::new(JobStatus::Rejected)
    }

    fn new(status: JobStatus) -> Self {
        Self {
            status,
            details: None,
        }
    }

    /// Details to report with the status (a reason, a result).
    #[must_use]
    pub fn with_details(mut self, details: StatusDetails) -> Self {
        self.details = Some(details);
        self
    }

    /// The status the outcome reports.
    pub fn status(&self) -> &JobStatus {
        &self.status
    }

    /// The details it reports, if any.
    pub fn details(&self) -> Option<&StatusDetails> {
        self.details.as_ref()
    }
}

#[derive(Debug, Default)]
struct SignalState {
    canceled: bool,
    stopping: bool,
    /// Set when the handler's own progress report learned that the service ended the
    /// execution, with its status if the service said it.
    ended_by_service: Option<Option<JobStatus>>,
}

#[derive(Debug, Default)]
struct Signal {
    state: Mutex<SignalState>,
    changed: Condvar,
}

/// The cancellation signal of one execution: set when the service ended it (canceled, removed
/// or timed out: the handler's outcome will not be reported) or when the runner is stopping
/// (the handler should return soon; its outcome is still reported within the stop grace).
///
/// Cloning is cheap; clones share the signal, so a handler can hand it to its own threads.
#[derive(Debug, Clone, Default)]
pub struct Cancellation(Arc<Signal>);

impl Cancellation {
    /// True once the service ended the execution.
    pub fn is_canceled(&self) -> bool {
        self.0.state.lock().canceled
    }

    /// True once the runner is stopping.
    pub fn is_stopping(&self) -> bool {
        self.0.state.lock().stopping
    }

    /// Waits until the execution is canceled or the runner is stopping, at most `timeout`;
    /// returns whether either happened. A handler that sleeps between steps waits here instead.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        let mut state = self.0.state.lock();
        while !(state.canceled || state.stopping) {
            let Some(deadline) = deadline else {
                self.0.changed.wait(&mut state);
                continue;
            };
            if self.0.changed.wait_until(&mut state, deadline).timed_out() {
                break;
            }
        }
        state.canceled || state.stopping
    }

    pub(crate) fn cancel(&self) {
        self.0.state.lock().canceled = true;
        self.0.changed.notify_all();
    }

    /// Cancels because a progress report learned that the service ended the execution.
    fn ended_by_service(&self, status: Option<JobStatus>) {
        {
            let mut state = self.0.state.lock();
            state.canceled = true;
            state.ended_by_service.get_or_insert(status);
        }
        self.0.changed.notify_all();
    }

    /// What a progress report learned: the service ended the execution (with its status if
    /// it said it).
    pub(crate) fn ended_by_progress(&self) -> Option<Option<JobStatus>> {
        self.0.state.lock().ended_by_service.clone()
    }

    pub(crate) fn stop(&self) {
        self.0.state.lock().stopping = true;
        self.0.changed.notify_all();
    }
}

/// What a handler knows and can do about the execution it runs.
///
/// `Context` is `Send + Sync`: a handler may share it with threads of its own.
pub struct Context {
    thing_name: ThingName,
    job_id: JobId,
    execution_number: Option<ExecutionNumber>,
    document: Document,
    operation: Option<String>,
    resumed: bool,
    status_details: Option<StatusDetails>,
    cancellation: Cancellation,
    job: Mutex<Job>,
    timer: Mutex<Option<Instant>>,
}

impl fmt::Debug for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("thing_name", &self.thing_name)
            .field("job_id", &self.job_id)
            .field("execution_number", &self.execution_number)
            .field("operation", &self.operation)
            .field("resumed", &self.resumed)
            .finish_non_exhaustive()
    }
}

impl Context {
    pub(crate) fn new(
        job: Job,
        document: Document,
        operation: Option<String>,
        resumed: bool,
        cancellation: Cancellation,
    ) -> Self {
        let timer = job
            .execution()
            .approximate_seconds_before_timed_out
            .and_then(|seconds| u64::try_from(seconds).ok())
            .and_then(|seconds| Instant::now().checked_add(Duration::from_secs(seconds)));
        Self {
            thing_name: job.thing_name().clone(),
            job_id: job.id().clone(),
            execution_number: job.execution_number(),
            document,
            operation,
            resumed,
            status_details: job.status_details().cloned(),
            cancellation,
            job: Mutex::new(job),
            timer: Mutex::new(timer),
        }
    }

    /// The thing the execution runs for (a gateway's runner serves several).
    pub fn thing_name(&self) -> &ThingName {
        &self.thing_name
    }

    /// The job's ID.
    pub fn job_id(&self) -> &JobId {
        &self.job_id
    }

    /// Which execution of the job on this thing this is, if the service said.
    pub fn execution_number(&self) -> Option<ExecutionNumber> {
        self.execution_number
    }

    /// The job document.
    pub fn document(&self) -> &Document {
        &self.document
    }

    /// The job document as a `T`.
    ///
    /// # Errors
    /// [`Error::Document`] when it does not fit; the message names the field.
    pub fn parse_document<T: DeserializeOwned>(&self) -> Result<T, Error> {
        self.document.parse()
    }

    /// The operation named by the document (the value of the runner's operation field), if any.
    pub fn operation(&self) -> Option<&str> {
        self.operation.as_deref()
    }

    /// True when the execution was already IN_PROGRESS when this runner picked it up: an
    /// earlier run (before a reboot, a crash, a stop) started it. The handler should continue
    /// from its own saved progress ([`status_details`](Self::status_details) has what was
    /// last reported) rather than start over.
    pub fn resumed(&self) -> bool {
        self.resumed
    }

    /// The status details the service held when the execution was picked up.
    pub fn status_details(&self) -> Option<&StatusDetails> {
        self.status_details.as_ref()
    }

    /// True once the service canceled, removed or timed out the execution: stop working; the
    /// outcome will not be reported.
    pub fn is_canceled(&self) -> bool {
        self.cancellation.is_canceled()
    }

    /// True once the runner is stopping: return soon.
    pub fn is_stopping(&self) -> bool {
        self.cancellation.is_stopping()
    }

    /// A handle on the execution (its number named), for the download step's describe.
    #[cfg(feature = "download")]
    pub(crate) fn job_handle(&self) -> Job {
        self.job.lock().clone()
    }

    /// The cancellation signal, to wait on or to hand to the handler's own threads.
    pub fn cancellation(&self) -> &Cancellation {
        &self.cancellation
    }

    /// About how long before a timer of the service moves the execution to `TIMED_OUT`: from
    /// the `approximateSecondsBeforeTimedOut` the service sent when the execution was picked
    /// up, or from the last step timeout set by [`progress_with_step_timeout`](Self::progress_with_step_timeout).
    /// `None` when no timer is known. The service may act up to a minute later.
    pub fn time_left(&self) -> Option<Duration> {
        self.timer
            .lock()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()))
    }

    /// Reports progress: an IN_PROGRESS update with `details`, naming this execution's number
    /// (so it can never reach a later execution of the same job). Blocks up to the
    /// [`Jobs`](crate::Jobs) timeout. Best effort: a failure is returned to the handler and not
    /// retried. A rejection that shows the service ended the execution sets the cancellation
    /// signal, and the handler's outcome is then not reported.
    ///
    /// # Errors
    /// As for [`Job::update_with`].
    pub fn progress(&self, details: StatusDetails) -> Result<(), Error> {
        self.send_progress(
            Update::new(JobStatus::InProgress).status_details(details),
            None,
        )
    }

    /// [`progress`](Self::progress) that also starts a new step timer (or cancels it with
    /// [`StepTimeout::CANCEL`]).
    ///
    /// # Errors
    /// As for [`Job::update_with`].
    pub fn progress_with_step_timeout(
        &self,
        details: StatusDetails,
        step_timeout: StepTimeout,
    ) -> Result<(), Error> {
        let update = Update::new(JobStatus::InProgress)
            .status_details(details)
            .step_timeout(step_timeout);
        self.send_progress(update, Some(step_timeout))
    }

    fn send_progress(&self, mut update: Update, step: Option<StepTimeout>) -> Result<(), Error> {
        if let Some(number) = self.execution_number {
            update = update.execution_number(number);
        }
        let mut job = self.job.lock().clone();
        match job.update_with(update) {
            Ok(()) => {
                if let Some(step) = step {
                    *self.timer.lock() = if step.is_cancel() {
                        None
                    } else {
                        u64::try_from(step.as_minutes())
                            .ok()
                            .and_then(|minutes| minutes.checked_mul(60))
                            .and_then(|secs| Instant::now().checked_add(Duration::from_secs(secs)))
                    };
                }
                *self.job.lock() = job;
                Ok(())
            }
            Err(error) => {
                if ended_by_service(&error) {
                    debug!("progress of {} rejected: the service ended it", self.job_id);
                    let status = error
                        .rejection()
                        .and_then(|r| r.execution_state.as_ref())
                        .and_then(|state| state.status.clone())
                        .filter(JobStatus::is_terminal);
                    self.cancellation.ended_by_service(status);
                }
                Err(error)
            }
        }
    }
}

/// True for rejections that mean the execution is no longer the device's to update.
pub(crate) fn ended_by_service(error: &Error) -> bool {
    describe_refused_as_ended(error)
        || error
            .rejection()
            .is_some_and(|rejection| rejection.code == RejectCode::InvalidStateTransition)
}

/// True for the rejections of a describe that mean the execution ended: AWS refuses to
/// describe a terminal execution, and one that was removed is not found.
pub(crate) fn describe_refused_as_ended(error: &Error) -> bool {
    error.rejection().is_some_and(|rejection| {
        matches!(
            rejection.code,
            RejectCode::TerminalStateReached | RejectCode::ResourceNotFound
        )
    })
}

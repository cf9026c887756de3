//! [`Job`]: one job execution of a thing — describe it, report progress and results.

use std::time::Duration;

use crate::Operation;
use crate::error::{DecodeError, Error, InvalidInput};
use crate::jobs::Jobs;
use crate::model::{ExecutionState, JobExecution, JobExecutionSummary, UpdateReply, UpdateRequest};
use crate::names::{JobId, StatusDetails, StepTimeout};
use crate::{Document, ExecutionNumber, JobStatus, Version};

/// One job execution of a thing, with the service's last known view of it.
///
/// Obtained from [`Jobs::list`], [`Jobs::start_next`], [`Jobs::describe_next`] or
/// [`Jobs::job`]. The accessors return what the latest reply said; [`describe`](Self::describe)
/// refreshes everything, including the document. Methods that talk to the service take
/// `&mut self` because they update that view; clone a `Job` to work on it from several threads.
#[derive(Debug, Clone)]
pub struct Job {
    jobs: Jobs,
    /// Its `job_id` is the job's ID: set once, and a describe only takes over an execution of
    /// the same job.
    execution: JobExecution,
    use_expected_version: bool,
}

impl Job {
    pub(crate) fn new(jobs: Jobs, id: JobId) -> Self {
        Self::from_execution(jobs, JobExecution::new(id))
    }

    /// A job from a GetPending summary; `started` says which list it came from.
    pub(crate) fn from_summary(jobs: Jobs, summary: JobExecutionSummary, started: bool) -> Self {
        let mut job = Self::new(jobs, summary.job_id);
        let execution = &mut job.execution;
        execution.status = Some(if started {
            JobStatus::InProgress
        } else {
            JobStatus::Queued
        });
        execution.queued_at = summary.queued_at;
        execution.started_at = summary.started_at;
        execution.last_updated_at = summary.last_updated_at;
        execution.version_number = summary.version_number;
        execution.execution_number = summary.execution_number;
        job
    }

    /// A handle on execution `number` of job `id` (the latest when `None`), nothing else known.
    pub(crate) fn numbered(jobs: Jobs, id: JobId, number: Option<ExecutionNumber>) -> Self {
        let mut execution = JobExecution::new(id);
        execution.execution_number = number;
        Self::from_execution(jobs, execution)
    }

    /// What is known of the execution, taken out of the handle.
    pub(crate) fn into_execution(self) -> JobExecution {
        self.execution
    }

    pub(crate) fn from_execution(jobs: Jobs, execution: JobExecution) -> Self {
        Self {
            jobs,
            execution,
            use_expected_version: false,
        }
    }

    /// The thing the execution belongs to.
    pub fn thing_name(&self) -> &crate::ThingName {
        self.jobs.thing_name()
    }

    /// The job's ID.
    pub fn id(&self) -> &JobId {
        &self.execution.job_id
    }

    /// The execution's status, if known.
    pub fn status(&self) -> Option<&JobStatus> {
        self.execution.status.as_ref()
    }

    /// The execution's version, if known: from the latest describe, start-next, list or
    /// update reply (every update asks for the new state, unless
    /// [`Update::include_job_execution_state`] turned that off).
    pub fn version(&self) -> Option<Version> {
        self.execution.version_number
    }

    /// The execution number, if known.
    pub fn execution_number(&self) -> Option<ExecutionNumber> {
        self.execution.execution_number
    }

    /// The job document, once a describe (or start-next, or an update that asked for it)
    /// returned it.
    pub fn document(&self) -> Option<&Document> {
        self.execution.job_document.as_ref()
    }

    /// The status details, if known.
    pub fn status_details(&self) -> Option<&StatusDetails> {
        self.execution.status_details.as_ref()
    }

    /// Everything known about the execution (timestamps, timer, …).
    pub fn execution(&self) -> &JobExecution {
        &self.execution
    }

    /// Sends `expectedVersion` (the version learnt from the latest reply) with every update, so
    /// an update fails with `VersionMismatch` if the execution changed meanwhile. Defaults to
    /// off: a stale version causes spurious rejections.
    pub fn set_expected_version(&mut self, on: bool) {
        self.use_expected_version = on;
    }

    /// The time each call of this job waits. Defaults to the timeout of the [`Jobs`] it came
    /// from (see [`Jobs::with_timeout`]).
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.jobs = self.jobs.with_timeout(timeout);
    }

    /// The time each call of this job waits.
    pub fn timeout(&self) -> Duration {
        self.jobs.timeout
    }

    /// Describes the execution (latest execution number) with its document and refreshes this
    /// view: version, status, status details, document, execution number, timestamps.
    ///
    /// # Errors
    /// [`Error::Rejected`] (for example `ResourceNotFound`), [`Error::Timeout`],
    /// [`Error::Transport`], [`Error::Decode`].
    pub fn describe(&mut self) -> Result<(), Error> {
        self.describe_with(Describe::new())
    }

    /// [`describe`](Self::describe) with an execution number, or without the document.
    ///
    /// # Errors
    /// As for [`describe`](Self::describe); [`Error::Decode`] when the reply has no
    /// `execution` or one for another job.
    pub fn describe_with(&mut self, options: Describe) -> Result<(), Error> {
        let mut reply = self.jobs.describe(
            Some(self.id()),
            options.execution_number,
            options.include_job_document,
        )?;
        let Some(execution) = reply.body.execution.take() else {
            return Err(reply.invalid(DecodeError::missing("execution")));
        };
        if execution.job_id != *self.id() {
            return Err(reply.invalid(DecodeError::unexpected(
                "execution.jobId",
                self.id().as_str(),
                execution.job_id.as_str(),
            )));
        }
        let document = self.execution.job_document.take();
        self.execution = execution;
        if self.execution.job_document.is_none() && !options.include_job_document {
            self.execution.job_document = document;
        }
        Ok(())
    }

    /// Reports `status` with optional details.
    ///
    /// # Errors
    /// [`InvalidInput::StatusNotSettable`] for a status other than `IN_PROGRESS`, `SUCCEEDED`,
    /// `FAILED` or `REJECTED`; otherwise as for [`update_with`](Self::update_with).
    pub fn update(
        &mut self,
        status: JobStatus,
        status_details: Option<&StatusDetails>,
    ) -> Result<(), Error> {
        let mut update = Update::new(status);
        if let Some(details) = status_details {
            update = update.status_details(details.clone());
        }
        self.update_with(update)
    }

    /// Sends an UpdateJobExecution with all its options and refreshes this view from the reply:
    /// status, status details and version (from the reply's `executionState`, which every
    /// update asks for unless told not to).
    ///
    /// On `VersionMismatch` and `InvalidStateTransition` the state the service reported is
    /// taken over before the error is returned, so a retry uses the current version.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] (status a device may not set, invalid status details — those
    /// read from a reply are checked again —, oversized request), [`Error::Rejected`],
    /// [`Error::Timeout`], [`Error::Transport`], [`Error::Decode`].
    pub fn update_with(&mut self, update: Update) -> Result<(), Error> {
        if !update.status.is_settable_by_device() {
            return Err(InvalidInput::StatusNotSettable(update.status).into());
        }
        if let Some(details) = &update.status_details {
            details.validate()?;
        }
        let expected_version = if self.use_expected_version {
            self.version()
        } else {
            None
        };
        let request = UpdateRequest {
            status: Some(update.status.clone()),
            status_details: update.status_details.clone(),
            expected_version,
            execution_number: update.execution_number,
            include_job_execution_state: update.include_state.then_some(true),
            include_job_document: update.include_job_document.then_some(true),
            step_timeout_in_minutes: update.step_timeout.map(StepTimeout::as_minutes),
            client_token: None,
        };
        let result = self.jobs.request::<UpdateReply>(
            Operation::Update,
            Some(self.id().as_str()),
            move |token| {
                serde_json::to_vec(&UpdateRequest {
                    client_token: Some(token.into()),
                    ..request
                })
            },
        );
        let reply = match result {
            Ok(reply) => reply.body,
            Err(error) => {
                if let Some(state) = error.rejection().and_then(|r| r.execution_state.clone()) {
                    self.take_state(state);
                }
                return Err(error);
            }
        };
        self.execution.status = Some(update.status);
        if update.status_details.is_some() {
            self.execution.status_details = update.status_details;
        }
        // The new version is only known if the reply carries the state (it does unless the
        // update did not ask for it).
        self.execution.version_number = None;
        if let Some(state) = reply.execution_state {
            self.take_state(state);
        }
        if reply.job_document.is_some() {
            self.execution.job_document = reply.job_document;
        }
        self.execution.last_updated_at = reply.timestamp.or(self.execution.last_updated_at);
        Ok(())
    }

    fn take_state(&mut self, state: ExecutionState) {
        if state.status.is_some() {
            self.execution.status = state.status;
        }
        if state.status_details.is_some() {
            self.execution.status_details = state.status_details;
        }
        self.execution.version_number = state.version_number;
    }
}

/// Options of [`Job::describe_with`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Describe {
    execution_number: Option<ExecutionNumber>,
    include_job_document: bool,
}

impl Default for Describe {
    fn default() -> Self {
        Self {
            execution_number: None,
            include_job_document: true,
        }
    }
}

impl Describe {
    /// The latest execution, with its document.
    pub fn new() -> Self {
        Self::default()
    }

    /// Describes this execution number. Defaults to the latest execution.
    pub fn execution_number(mut self, execution_number: impl Into<ExecutionNumber>) -> Self {
        self.execution_number = Some(execution_number.into());
        self
    }

    /// Whether to fetch the document. Defaults to `true`; when `false` a document already known
    /// is kept.
    pub fn include_job_document(mut self, include: bool) -> Self {
        self.include_job_document = include;
        self
    }
}

/// An UpdateJobExecution request for [`Job::update_with`].
#[derive(Debug, Clone)]
#[must_use]
pub struct Update {
    status: JobStatus,
    status_details: Option<StatusDetails>,
    step_timeout: Option<StepTimeout>,
    execution_number: Option<ExecutionNumber>,
    include_job_document: bool,
    include_state: bool,
}

impl Update {
    /// An update to `status` (a device may set `IN_PROGRESS`, `SUCCEEDED`, `FAILED`,
    /// `REJECTED`; anything else is refused when sent).
    pub fn new(status: JobStatus) -> Self {
        Self {
            status,
            status_details: None,
            step_timeout: None,
            execution_number: None,
            include_job_document: false,
            include_state: true,
        }
    }

    /// Details to set. Defaults to none (the service keeps the current ones).
    pub fn status_details(mut self, details: StatusDetails) -> Self {
        self.status_details = Some(details);
        self
    }

    /// Starts or replaces the step timer, or cancels it with [`StepTimeout::CANCEL`]. Defaults
    /// to none.
    pub fn step_timeout(mut self, step_timeout: StepTimeout) -> Self {
        self.step_timeout = Some(step_timeout);
        self
    }

    /// Updates this execution number. Defaults to the latest execution.
    pub fn execution_number(mut self, execution_number: impl Into<ExecutionNumber>) -> Self {
        self.execution_number = Some(execution_number.into());
        self
    }

    /// Asks for the job document in the reply. Defaults to `false`.
    pub fn include_job_document(mut self, include: bool) -> Self {
        self.include_job_document = include;
        self
    }

    /// Asks for the new execution state (and so the new version) in the reply. Defaults to
    /// `true` (the service's default is `false`; asking costs a few bytes and keeps
    /// [`Job::version`] known). With `false`, [`Job::version`] is `None` after the update.
    pub fn include_job_execution_state(mut self, include: bool) -> Self {
        self.include_state = include;
        self
    }
}

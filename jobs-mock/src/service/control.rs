//! The control plane of the simulator: create and cancel jobs, remove things, move the clock,
//! read the state of executions.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use jobs_core::{Document, JobId, JobStatus, StatusDetails, ThingName};

use super::job_record::{
    Cancellation, IN_PROGRESS_TIMEOUT_RANGE, JobState, NewJob, TargetSelection,
};
use super::jobs_service::{JobsService, Outgoing};
use super::state::{Execution, seconds};
use super::targets::Target;

/// A job to create: its ID, document, target things and optional in-progress timeout.
#[derive(Debug, Clone)]
#[must_use]
pub struct JobSpec {
    id: JobId,
    document: Document,
    things: Vec<ThingName>,
    in_progress_timeout_minutes: Option<i64>,
}

impl JobSpec {
    /// A job with this ID and document and no targets yet.
    pub fn new(id: JobId, document: Document) -> Self {
        Self {
            id,
            document,
            things: Vec::new(),
            in_progress_timeout_minutes: None,
        }
    }

    /// Adds a target thing; [`JobsService::create_job`] registers it if it is not registered
    /// (the shortcut for tests: on the AWS API a target must be registered first). Adding a
    /// thing twice targets it once.
    pub fn thing(mut self, thing: ThingName) -> Self {
        self.things.push(thing);
        self
    }

    /// Adds target things, as [`thing`](Self::thing) does.
    pub fn things(mut self, things: impl IntoIterator<Item = ThingName>) -> Self {
        self.things.extend(things);
        self
    }

    /// The job's in-progress timeout (`timeoutConfig.inProgressTimeoutInMinutes`), 1–10080
    /// minutes, started when an execution becomes IN_PROGRESS. Defaults to none.
    pub fn in_progress_timeout_minutes(mut self, minutes: i64) -> Self {
        self.in_progress_timeout_minutes = Some(minutes);
        self
    }

    /// The job's ID.
    pub fn id(&self) -> &JobId {
        &self.id
    }
}

/// Why a control call was refused. Nothing changed.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ControlError {
    /// A job with this ID exists (job IDs are unique, even after the job ended, until it is
    /// deleted).
    JobExists(JobId),
    /// [`JobsService::create_job`] was given no target thing.
    NoTargets(JobId),
    /// The in-progress timeout is outside 1–10080 minutes.
    InvalidTimeout {
        /// The refused value.
        minutes: i64,
    },
    /// No job with this ID was created.
    UnknownJob(JobId),
    /// The thing has no execution of the job.
    UnknownExecution {
        /// The thing.
        thing: ThingName,
        /// The job.
        job: JobId,
    },
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::JobExists(job) => write!(f, "job {job} already exists"),
            Self::NoTargets(job) => write!(f, "job {job} has no target things"),
            Self::InvalidTimeout { minutes } => {
                write!(
                    f,
                    "in-progress timeout of {minutes} minutes is outside 1 to 10080"
                )
            }
            Self::UnknownJob(job) => write!(f, "no job {job}"),
            Self::UnknownExecution { thing, job } => {
                write!(f, "thing {thing} has no execution of job {job}")
            }
        }
    }
}

impl StdError for ControlError {}

/// Everything the simulator holds about one execution, as read by
/// [`JobsService::execution`] and [`JobsService::executions`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExecutionInfo {
    /// The thing.
    pub thing_name: ThingName,
    /// The job.
    pub job_id: JobId,
    /// The job document.
    pub document: Document,
    /// The status.
    pub status: JobStatus,
    /// The status details, if ever set.
    pub status_details: Option<StatusDetails>,
    /// The version: 1 when queued, +1 for each accepted device change.
    pub version_number: i64,
    /// The execution number: 1 for the first execution of the job on the thing, + 1 for each
    /// re-run.
    pub execution_number: i64,
    /// When it was queued (seconds since the epoch).
    pub queued_at: i64,
    /// When it started, once it has.
    pub started_at: Option<i64>,
    /// When it last changed.
    pub last_updated_at: i64,
    /// Whether it was cancelled with `force` while IN_PROGRESS.
    pub force_canceled: bool,
    /// When the step timer expires, in milliseconds since the epoch, if one runs.
    pub step_deadline_ms: Option<i64>,
    /// When the in-progress timer expires, in milliseconds since the epoch, if one runs.
    pub in_progress_deadline_ms: Option<i64>,
}

impl ExecutionInfo {
    fn new(thing: &ThingName, execution: &Execution) -> Self {
        Self {
            thing_name: thing.clone(),
            job_id: execution.job_id.clone(),
            document: execution.document.clone(),
            status: execution.status.clone(),
            status_details: execution.status_details.clone(),
            version_number: execution.version_number,
            execution_number: execution.execution_number,
            queued_at: execution.queued_at,
            started_at: execution.started_at,
            last_updated_at: execution.last_updated_at,
            force_canceled: execution.force_canceled,
            step_deadline_ms: execution.step_deadline,
            in_progress_deadline_ms: execution.in_progress_deadline,
        }
    }
}

impl JobsService {
    /// Creates a SNAPSHOT job and queues an execution of it on every target thing, after any
    /// earlier ones (queue order is creation order). Target things not registered yet are
    /// registered (as CreateThing with no attributes), and the job's targets are their ARNs.
    /// Returns the events: `notify` for every thing, and `notify-next` for things where the
    /// new execution became the head. The AWS-shaped equivalent is
    /// [`CreateJob`](super::api::CreateJob), which takes ARNs of registered things only.
    ///
    /// # Errors
    /// [`ControlError::JobExists`], [`ControlError::NoTargets`],
    /// [`ControlError::InvalidTimeout`]; nothing is created then.
    pub fn create_job(&mut self, spec: JobSpec) -> Result<Vec<Outgoing>, ControlError> {
        if self.jobs.contains_key(&spec.id) {
            return Err(ControlError::JobExists(spec.id));
        }
        if spec.things.is_empty() {
            return Err(ControlError::NoTargets(spec.id));
        }
        if let Some(minutes) = spec.in_progress_timeout_minutes
            && !IN_PROGRESS_TIMEOUT_RANGE.contains(&minutes)
        {
            return Err(ControlError::InvalidTimeout { minutes });
        }
        let now_ms = self.clock.now_millis();
        let mut out = self.expire_timers(now_ms);
        let mut things = spec.things;
        let mut seen = std::collections::BTreeSet::new();
        things.retain(|thing| seen.insert(thing.clone()));
        for thing in &things {
            self.registry.ensure_thing(thing);
        }
        let job = NewJob {
            document: spec.document,
            targets: things.iter().cloned().map(Target::Thing).collect(),
            selection: TargetSelection::Snapshot,
            description: None,
            in_progress_timeout_minutes: spec.in_progress_timeout_minutes,
            presigned_url_config: None,
            has_placeholders: false,
            rollout: None,
            retry: None,
            abort: None,
        };
        self.insert_job(&spec.id, job, &things, now_ms, &mut out);
        Ok(out)
    }

    /// Cancels a job with `force`: every execution of it that is not terminal becomes
    /// `CANCELED`. Returns the events. Cancelling again changes nothing. The AWS-shaped
    /// equivalent is [`CancelJob`](super::api::CancelJob).
    ///
    /// # Errors
    /// [`ControlError::UnknownJob`].
    pub fn cancel_job(&mut self, job: &JobId) -> Result<Vec<Outgoing>, ControlError> {
        if !self.jobs.contains_key(job) {
            return Err(ControlError::UnknownJob(job.clone()));
        }
        let now_ms = self.clock.now_millis();
        let mut out = self.expire_timers(now_ms);
        let counts = self.counts(job);
        self.cancel_executions(job, true, now_ms, &mut out);
        if let Some(record) = self.jobs.get_mut(job)
            && record.state(&counts) == JobState::InProgress
        {
            record.cancellation = Some(Cancellation {
                force: true,
                reason_code: None,
                comment: None,
            });
            record.last_updated_at = seconds(now_ms);
        }
        Ok(out)
    }

    /// Removes `thing` from the targets of `job`: its latest execution becomes `REMOVED` unless
    /// it is already terminal (then nothing changes). Returns the events.
    ///
    /// # Errors
    /// [`ControlError::UnknownExecution`].
    pub fn remove_thing(
        &mut self,
        job: &JobId,
        thing: &ThingName,
    ) -> Result<Vec<Outgoing>, ControlError> {
        if self
            .things
            .get(thing)
            .and_then(|s| s.get(job, None))
            .is_none()
        {
            return Err(ControlError::UnknownExecution {
                thing: thing.clone(),
                job: job.clone(),
            });
        }
        let now_ms = self.clock.now_millis();
        let mut out = self.expire_timers(now_ms);
        self.mutate(thing, now_ms, &mut out, |state| {
            if let Some(execution) = state.get_mut(job, None).filter(|e| e.is_pending()) {
                execution.finish(JobStatus::Removed, seconds(now_ms));
            }
        });
        Ok(out)
    }

    /// Moves the clock forward by `by` (millisecond precision; saturating) and fires every
    /// timer that expired: those executions become `TIMED_OUT`. Returns the events. Works on
    /// every [`Clock`](super::Clock); a real one keeps running from the new time.
    pub fn advance_clock(&mut self, by: Duration) -> Vec<Outgoing> {
        let now_ms = self.clock.advance(by);
        self.expire_timers(now_ms)
    }

    /// Forgets every job, execution, registered thing and thing group and any pending fault
    /// injection, without events. The clock, the quirks and the URL signer stay.
    pub fn forget_everything(&mut self) {
        self.jobs.clear();
        self.things.clear();
        self.registry.clear();
        self.clear_faults();
    }

    /// Forgets every execution on `thing` (and its execution numbers), without events. Its
    /// jobs stay.
    pub fn forget_thing(&mut self, thing: &ThingName) {
        self.things.remove(thing);
    }

    /// The state of the latest execution of `job` on `thing`, if it exists.
    pub fn execution(&self, thing: &ThingName, job: &JobId) -> Option<ExecutionInfo> {
        let execution = self.things.get(thing)?.get(job, None)?;
        Some(ExecutionInfo::new(thing, execution))
    }

    /// Every execution, by thing name, then in creation order.
    pub fn executions(&self) -> Vec<ExecutionInfo> {
        self.things
            .iter()
            .flat_map(|(thing, state)| {
                state
                    .executions
                    .iter()
                    .map(move |execution| ExecutionInfo::new(thing, execution))
            })
            .collect()
    }
}

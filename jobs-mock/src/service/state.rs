//! The stored state of executions, per thing, and its projections onto the wire model.

use std::collections::BTreeMap;

use jobs_core::model::{ExecutionState, JobExecution, JobExecutionSummary};
use jobs_core::{Document, ExecutionNumber, JobId, JobStatus, StatusDetails, Timestamp, Version};

use super::presign::UrlSigner;
use super::retry::RetryCounts;

/// How many pending executions GetPending and `notify` list at most.
pub(crate) const PENDING_CAP: usize = 10;

/// One minute in milliseconds.
const MINUTE_MS: i64 = 60_000;

/// Whole seconds (rounded down) of a time in milliseconds: the wire's timestamps.
pub(crate) fn seconds(ms: i64) -> i64 {
    ms.div_euclid(1000)
}

/// One job execution on one thing.
#[derive(Debug, Clone)]
pub(crate) struct Execution {
    pub(crate) job_id: JobId,
    /// Service-wide creation sequence: the queue order.
    pub(crate) seq: u64,
    pub(crate) document: Document,
    pub(crate) status: JobStatus,
    pub(crate) status_details: Option<StatusDetails>,
    pub(crate) version_number: i64,
    pub(crate) execution_number: i64,
    pub(crate) queued_at: i64,
    pub(crate) started_at: Option<i64>,
    pub(crate) last_updated_at: i64,
    /// The job's in-progress timeout, started when the execution becomes IN_PROGRESS.
    pub(crate) in_progress_timeout_minutes: Option<i64>,
    /// Absolute deadline of the step timer in milliseconds, already capped at the in-progress
    /// deadline.
    pub(crate) step_deadline: Option<i64>,
    /// Absolute deadline of the in-progress timer in milliseconds.
    pub(crate) in_progress_deadline: Option<i64>,
    /// Cancelled by CancelJobExecution or CancelJob with `force` while IN_PROGRESS.
    pub(crate) force_canceled: bool,
    /// How often the job was retried on this thing before this execution.
    pub(crate) retries: RetryCounts,
    /// A FAILED or TIMED_OUT execution whose retry was decided (made or not).
    pub(crate) retry_checked: bool,
    /// `presignedUrlConfig.expiresInSec` when the document has placeholders.
    pub(crate) url_lifetime_seconds: Option<i64>,
}

impl Execution {
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self.status, JobStatus::Queued | JobStatus::InProgress)
    }

    /// The earliest timer deadline in milliseconds, while IN_PROGRESS.
    pub(crate) fn deadline(&self) -> Option<i64> {
        if self.status != JobStatus::InProgress {
            return None;
        }
        match (self.step_deadline, self.in_progress_deadline) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Moves the execution to IN_PROGRESS: start time, in-progress timer.
    pub(crate) fn start(&mut self, now_ms: i64) {
        self.status = JobStatus::InProgress;
        self.started_at = Some(seconds(now_ms));
        self.in_progress_deadline = self
            .in_progress_timeout_minutes
            .map(|minutes| now_ms.saturating_add(minutes.saturating_mul(MINUTE_MS)));
    }

    /// Sets a step timer of `minutes` from `now_ms`, never past the in-progress deadline.
    pub(crate) fn set_step_timer(&mut self, minutes: i64, now_ms: i64) {
        let deadline = now_ms.saturating_add(minutes.saturating_mul(MINUTE_MS));
        self.step_deadline = Some(match self.in_progress_deadline {
            Some(limit) => deadline.min(limit),
            None => deadline,
        });
    }

    /// Ends the execution with a terminal status set by the service or the device.
    pub(crate) fn finish(&mut self, status: JobStatus, now: i64) {
        self.status = status;
        self.last_updated_at = now;
        self.step_deadline = None;
        self.in_progress_deadline = None;
    }

    /// Ends the execution as CANCELED, marked force-cancelled if it was IN_PROGRESS.
    pub(crate) fn cancel(&mut self, now: i64) {
        self.force_canceled = self.status == JobStatus::InProgress;
        self.finish(JobStatus::Canceled, now);
    }

    /// Seconds left on the earlier timer (rounded up), while one runs.
    pub(crate) fn seconds_before_timed_out(&self, now_ms: i64) -> Option<i64> {
        self.deadline()
            .map(|d| d.saturating_sub(now_ms).max(0).saturating_add(999) / 1000)
    }

    pub(crate) fn summary(&self) -> JobExecutionSummary {
        let mut summary = JobExecutionSummary::new(self.job_id.clone());
        summary.queued_at = Some(Timestamp::new(self.queued_at));
        summary.started_at = self.started_at.map(Timestamp::new);
        summary.last_updated_at = Some(Timestamp::new(self.last_updated_at));
        summary.version_number = Some(Version::new(self.version_number));
        summary.execution_number = Some(ExecutionNumber::new(self.execution_number));
        summary
    }

    pub(crate) fn state(&self) -> ExecutionState {
        let mut state = ExecutionState::default();
        state.status = Some(self.status.clone());
        state.status_details = self.status_details.clone();
        state.version_number = Some(Version::new(self.version_number));
        state
    }

    /// The document as a device receives it now: pre-signed URL placeholders replaced by URLs
    /// valid for the job's `expiresInSec` from `now_ms`.
    pub(crate) fn document_for_device(&self, signer: &UrlSigner, now_ms: i64) -> Document {
        match self.url_lifetime_seconds {
            Some(lifetime) => {
                signer.substitute(&self.document, seconds(now_ms).saturating_add(lifetime))
            }
            None => self.document.clone(),
        }
    }

    /// The execution as the device API sends it, with the document (as the device receives
    /// it) when `signer` is given.
    pub(crate) fn to_wire(&self, document: Option<&UrlSigner>, now_ms: i64) -> JobExecution {
        let mut execution = JobExecution::new(self.job_id.clone());
        execution.job_document = document.map(|signer| self.document_for_device(signer, now_ms));
        execution.status = Some(self.status.clone());
        execution.status_details = self.status_details.clone();
        execution.queued_at = Some(Timestamp::new(self.queued_at));
        execution.started_at = self.started_at.map(Timestamp::new);
        execution.last_updated_at = Some(Timestamp::new(self.last_updated_at));
        execution.approximate_seconds_before_timed_out = self.seconds_before_timed_out(now_ms);
        execution.version_number = Some(Version::new(self.version_number));
        execution.execution_number = Some(ExecutionNumber::new(self.execution_number));
        execution
    }
}

/// The executions of one thing, in creation order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThingState {
    pub(crate) executions: Vec<Execution>,
    /// The last execution number given per job (numbers are never reused, even after a
    /// DeleteJobExecution).
    last_execution_number: BTreeMap<JobId, i64>,
}

impl ThingState {
    /// The next execution number of `job` on this thing (1, 2, …).
    pub(crate) fn allocate_execution_number(&mut self, job: &JobId) -> i64 {
        let last = self.last_execution_number.entry(job.clone()).or_insert(0);
        *last = last.saturating_add(1);
        *last
    }

    /// Forgets the execution numbers of `job` (after DeleteJob: the ID may be reused).
    pub(crate) fn forget_job(&mut self, job: &JobId) {
        self.executions.retain(|e| &e.job_id != job);
        self.last_execution_number.remove(job);
    }

    /// Pending executions: IN_PROGRESS first, then QUEUED, each in queue (creation) order.
    pub(crate) fn pending(&self) -> Vec<&Execution> {
        let mut pending: Vec<&Execution> =
            self.executions.iter().filter(|e| e.is_pending()).collect();
        pending.sort_by_key(|e| (e.status != JobStatus::InProgress, e.seq));
        pending
    }

    /// The head of the pending list: what `$next` and start-next resolve to.
    pub(crate) fn head(&self) -> Option<&Execution> {
        self.pending().into_iter().next()
    }

    /// Pending summaries split by status, capped at [`PENDING_CAP`] in all.
    pub(crate) fn pending_summaries(&self) -> (Vec<JobExecutionSummary>, Vec<JobExecutionSummary>) {
        let mut in_progress = Vec::new();
        let mut queued = Vec::new();
        for execution in self.pending().into_iter().take(PENDING_CAP) {
            if execution.status == JobStatus::InProgress {
                in_progress.push(execution.summary());
            } else {
                queued.push(execution.summary());
            }
        }
        (in_progress, queued)
    }

    /// The execution of `job` numbered `number`, or the latest one of `job` when `None`.
    pub(crate) fn get(&self, job: &JobId, number: Option<i64>) -> Option<&Execution> {
        self.executions
            .iter()
            .rev()
            .find(|e| &e.job_id == job && number.is_none_or(|n| n == e.execution_number))
    }

    /// As [`get`](Self::get), mutable.
    pub(crate) fn get_mut(&mut self, job: &JobId, number: Option<i64>) -> Option<&mut Execution> {
        self.executions
            .iter_mut()
            .rev()
            .find(|e| &e.job_id == job && number.is_none_or(|n| n == e.execution_number))
    }

    /// The job of the head of the pending list.
    pub(crate) fn head_id(&self) -> Option<JobId> {
        self.head().map(|e| e.job_id.clone())
    }

    /// Moves every IN_PROGRESS execution whose timer expired at `now` to TIMED_OUT; returns
    /// whether any did.
    pub(crate) fn expire_timers(&mut self, now_ms: i64) -> bool {
        let mut any = false;
        for execution in &mut self.executions {
            if execution.deadline().is_some_and(|d| d <= now_ms) {
                log::debug!("execution of {} timed out", execution.job_id);
                execution.finish(JobStatus::TimedOut, seconds(now_ms));
                any = true;
            }
        }
        any
    }

    /// The earliest timer deadline of this thing, in milliseconds.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.executions.iter().filter_map(Execution::deadline).min()
    }
}

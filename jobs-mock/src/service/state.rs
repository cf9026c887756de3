//! The stored state of executions, per thing, and its projections onto the wire model.

use jobs_core::model::{ExecutionState, JobExecution, JobExecutionSummary};
use jobs_core::{Document, ExecutionNumber, JobId, JobStatus, StatusDetails, Timestamp, Version};

/// How many pending executions GetPending and `notify` list at most.
pub(crate) const PENDING_CAP: usize = 10;

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
    /// Absolute deadline of the step timer, already capped at the in-progress deadline.
    pub(crate) step_deadline: Option<i64>,
    /// Absolute deadline of the in-progress timer.
    pub(crate) in_progress_deadline: Option<i64>,
}

impl Execution {
    pub(crate) fn is_pending(&self) -> bool {
        matches!(self.status, JobStatus::Queued | JobStatus::InProgress)
    }

    /// The earliest timer deadline, while IN_PROGRESS.
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
    pub(crate) fn start(&mut self, now: i64) {
        self.status = JobStatus::InProgress;
        self.started_at = Some(now);
        self.in_progress_deadline = self
            .in_progress_timeout_minutes
            .map(|minutes| now.saturating_add(minutes.saturating_mul(60)));
    }

    /// Sets a step timer of `minutes` from `now`, never past the in-progress deadline.
    pub(crate) fn set_step_timer(&mut self, minutes: i64, now: i64) {
        let deadline = now.saturating_add(minutes.saturating_mul(60));
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

    pub(crate) fn to_wire(&self, include_document: bool, now: i64) -> JobExecution {
        let mut execution = JobExecution::new(self.job_id.clone());
        execution.job_document = include_document.then(|| self.document.clone());
        execution.status = Some(self.status.clone());
        execution.status_details = self.status_details.clone();
        execution.queued_at = Some(Timestamp::new(self.queued_at));
        execution.started_at = self.started_at.map(Timestamp::new);
        execution.last_updated_at = Some(Timestamp::new(self.last_updated_at));
        execution.approximate_seconds_before_timed_out =
            self.deadline().map(|d| d.saturating_sub(now).max(0));
        execution.version_number = Some(Version::new(self.version_number));
        execution.execution_number = Some(ExecutionNumber::new(self.execution_number));
        execution
    }
}

/// The executions of one thing, in creation order.
#[derive(Debug, Clone, Default)]
pub(crate) struct ThingState {
    pub(crate) executions: Vec<Execution>,
    next_execution_number: i64,
}

impl ThingState {
    /// The next execution number of this thing (1, 2, …).
    pub(crate) fn allocate_execution_number(&mut self) -> i64 {
        self.next_execution_number = self.next_execution_number.saturating_add(1);
        self.next_execution_number
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

    /// The execution of `job` (each job has one execution per thing here).
    pub(crate) fn get(&self, job: &JobId) -> Option<&Execution> {
        self.executions.iter().find(|e| &e.job_id == job)
    }

    pub(crate) fn get_mut(&mut self, job: &JobId) -> Option<&mut Execution> {
        self.executions.iter_mut().find(|e| &e.job_id == job)
    }

    /// The job of the head of the pending list.
    pub(crate) fn head_id(&self) -> Option<JobId> {
        self.head().map(|e| e.job_id.clone())
    }

    /// Moves every IN_PROGRESS execution whose timer expired at `now` to TIMED_OUT; returns
    /// whether any did.
    pub(crate) fn expire_timers(&mut self, now: i64) -> bool {
        let mut any = false;
        for execution in &mut self.executions {
            if execution.deadline().is_some_and(|d| d <= now) {
                log::debug!("execution of {} timed out", execution.job_id);
                execution.finish(JobStatus::TimedOut, now);
                any = true;
            }
        }
        any
    }

    /// The earliest timer deadline of this thing.
    pub(crate) fn next_deadline(&self) -> Option<i64> {
        self.executions.iter().filter_map(Execution::deadline).min()
    }
}

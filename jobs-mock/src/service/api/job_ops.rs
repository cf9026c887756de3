//! The operations on existing jobs: DescribeJob, GetJobDocument, ListJobs, CancelJob,
//! DeleteJob.

use jobs_core::{JobId, JobStatus, ThingName, validate};
use serde::{Deserialize, Serialize};

use super::super::job_record::{Cancellation, Counts, JobRecord, JobState, TargetSelection};
use super::super::jobs_service::{JobsService, Outgoing};
use super::super::state::seconds;
use super::create_ops::{JobOutput, TEXT_MAX};
use super::shapes::{Empty, Job, JobSummary};
use super::{ApiError, ApiErrorKind, ControlOperation, Operation, page, sealed};

/// Longest `reasonCode`, in characters.
const REASON_CODE_MAX: usize = 128;

impl JobsService {
    /// The counts of `job`'s executions; things waiting for a rollout window count as QUEUED
    /// (our choice: they will be queued, and a SNAPSHOT job is not complete while they wait).
    pub(crate) fn counts(&self, job: &JobId) -> Counts {
        let mut counts = Counts::of(job, self.things.values());
        counts.queued = counts.queued.saturating_add(self.waiting_count(job));
        counts
    }

    pub(crate) fn job_record(&self, job: &JobId) -> Result<&JobRecord, ApiError> {
        self.jobs.get(job).ok_or_else(|| ApiError::no_job(job))
    }

    /// Moves every pending execution of `job` to CANCELED (IN_PROGRESS ones only with
    /// `force`, marking them force-cancelled), empties its rollout's waiting list, and appends
    /// the events.
    pub(crate) fn cancel_executions(
        &mut self,
        job: &JobId,
        force: bool,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        if let Some(rollout) = self.jobs.get_mut(job).and_then(|r| r.rollout.as_mut()) {
            rollout.waiting.clear();
        }
        let cancellable = |status: &JobStatus| {
            *status == JobStatus::Queued || (force && *status == JobStatus::InProgress)
        };
        let things: Vec<ThingName> = self
            .things
            .iter()
            .filter(|(_, state)| state.get(job, None).is_some_and(|e| cancellable(&e.status)))
            .map(|(thing, _)| thing.clone())
            .collect();
        for thing in things {
            self.mutate(&thing, now_ms, events, |state| {
                if let Some(execution) = state.get_mut(job, None) {
                    execution.cancel(seconds(now_ms));
                }
            });
        }
    }
}

/// DescribeJob: the job, with the counts of its executions.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DescribeJob {
    /// The job ID.
    pub job_id: JobId,
    /// Accepted and ignored (documents have no substitutions here).
    #[serde(default)]
    pub before_substitution: Option<bool>,
}

impl DescribeJob {
    /// A request for `job_id`.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            before_substitution: None,
        }
    }
}

/// The output of DescribeJob.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DescribeJobOutput {
    /// The job.
    pub job: Job,
}

impl sealed::Sealed for DescribeJob {}

impl ControlOperation for DescribeJob {
    const OPERATION: Operation = Operation::DescribeJob;
    type Output = DescribeJobOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<DescribeJobOutput, ApiError> {
        let counts = service.counts(&self.job_id);
        let record = service.job_record(&self.job_id)?;
        Ok(DescribeJobOutput {
            job: record.to_job(&self.job_id, &counts),
        })
    }
}

/// GetJobDocument: the job document as created, as a JSON string — pre-signed URL
/// placeholders intact (documented: URLs are made for devices only).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct GetJobDocument {
    /// The job ID.
    pub job_id: JobId,
    /// Accepted and ignored.
    #[serde(default)]
    pub before_substitution: Option<bool>,
}

impl GetJobDocument {
    /// A request for `job_id`.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            before_substitution: None,
        }
    }
}

/// The output of GetJobDocument.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct GetJobDocumentOutput {
    /// The document as given to CreateJob.
    pub document: String,
}

impl sealed::Sealed for GetJobDocument {}

impl ControlOperation for GetJobDocument {
    const OPERATION: Operation = Operation::GetJobDocument;
    type Output = GetJobDocumentOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<GetJobDocumentOutput, ApiError> {
        let record = service.job_record(&self.job_id)?;
        Ok(GetJobDocumentOutput {
            document: record.document.as_json().to_owned(),
        })
    }
}

/// ListJobs: every job in creation order, optionally filtered, in pages.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListJobs {
    /// Only jobs in this status.
    #[serde(default)]
    pub status: Option<JobState>,
    /// Only jobs with this target selection.
    #[serde(default)]
    pub target_selection: Option<TargetSelection>,
    /// At most this many (1–250; absent: all the rest).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

/// The output of ListJobs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListJobsOutput {
    /// The jobs of this page.
    pub jobs: Vec<JobSummary>,
    /// The token of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListJobs {}

impl ControlOperation for ListJobs {
    const OPERATION: Operation = Operation::ListJobs;
    type Output = ListJobsOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListJobsOutput, ApiError> {
        let mut records: Vec<(&JobId, &JobRecord)> = service.jobs.iter().collect();
        records.sort_by_key(|(_, record)| record.seq);
        let jobs: Vec<JobSummary> = records
            .into_iter()
            .map(|(id, record)| record.to_summary(id, &service.counts(id)))
            .filter(|job| self.status.is_none_or(|s| s == job.status))
            .filter(|job| {
                self.target_selection
                    .is_none_or(|s| s == job.target_selection)
            })
            .collect();
        let (jobs, next_token) = page(jobs, self.max_results, self.next_token.as_deref())?;
        Ok(ListJobsOutput { jobs, next_token })
    }
}

/// CancelJob: the job becomes CANCELED; its QUEUED executions become CANCELED, and with
/// `force` its IN_PROGRESS ones too (marked `forceCanceled`; the device's next update of one is
/// rejected). Cancelling a cancelled job again is accepted (with `force`, it then cancels the
/// IN_PROGRESS executions; a `reasonCode` or `comment` left out keeps the earlier one).
/// Cancelling a COMPLETED job is an InvalidRequestException.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CancelJob {
    /// The job ID.
    pub job_id: JobId,
    /// Up to 128 of `[A-Z0-9_]`.
    #[serde(default)]
    pub reason_code: Option<String>,
    /// Up to 2028 characters, none of Unicode category Other.
    #[serde(default)]
    pub comment: Option<String>,
    /// Also cancel IN_PROGRESS executions. Defaults to `false`.
    #[serde(default)]
    pub force: Option<bool>,
}

impl CancelJob {
    /// A request to cancel `job_id`.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            reason_code: None,
            comment: None,
            force: None,
        }
    }
}

impl sealed::Sealed for CancelJob {}

impl ControlOperation for CancelJob {
    const OPERATION: Operation = Operation::CancelJob;
    type Output = JobOutput;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<JobOutput, ApiError> {
        if let Some(code) = &self.reason_code
            && (code.is_empty()
                || code.chars().count() > REASON_CODE_MAX
                || !code
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        {
            return Err(ApiError::invalid(format!(
                "reasonCode {code:?} must be 1 to 128 of [A-Z0-9_]"
            )));
        }
        if let Some(comment) = &self.comment {
            validate::text(comment, TEXT_MAX)
                .map_err(|error| ApiError::invalid(format!("invalid comment: {error}")))?;
        }
        let counts = service.counts(&self.job_id);
        let record = service.job_record(&self.job_id)?;
        if record.state(&counts) == JobState::Completed {
            return Err(ApiError::invalid(format!(
                "Job {} is COMPLETED and cannot be canceled.",
                self.job_id
            )));
        }
        let force = self.force.unwrap_or(false);
        service.cancel_executions(&self.job_id, force, now_ms, events);
        let Some(record) = service.jobs.get_mut(&self.job_id) else {
            return Err(ApiError::no_job(&self.job_id));
        };
        let before = record.cancellation.take();
        record.cancellation = Some(Cancellation {
            force: force || before.as_ref().is_some_and(|c| c.force),
            reason_code: self
                .reason_code
                .or_else(|| before.as_ref().and_then(|c| c.reason_code.clone())),
            comment: self.comment.or_else(|| before.and_then(|c| c.comment)),
        });
        record.last_updated_at = seconds(now_ms);
        Ok(JobOutput::of(&self.job_id, record))
    }
}

/// DeleteJob: forgets the job and every execution of it at once (AWS deletes in the
/// background, showing DELETION_IN_PROGRESS meanwhile). Without `force` a job that is still
/// IN_PROGRESS, or has an execution IN_PROGRESS, is refused with
/// InvalidStateTransitionException. Pending executions that disappear cause the usual events.
/// The job ID may then be used again, and its execution numbers start again at 1.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DeleteJob {
    /// The job ID.
    pub job_id: JobId,
    /// Delete even an IN_PROGRESS job. Defaults to `false`.
    #[serde(default)]
    pub force: Option<bool>,
}

impl DeleteJob {
    /// A request to delete `job_id`.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            force: None,
        }
    }
}

impl sealed::Sealed for DeleteJob {}

impl ControlOperation for DeleteJob {
    const OPERATION: Operation = Operation::DeleteJob;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let counts = service.counts(&self.job_id);
        let record = service.job_record(&self.job_id)?;
        if !self.force.unwrap_or(false)
            && (record.state(&counts) == JobState::InProgress || counts.in_progress > 0)
        {
            return Err(ApiError::new(
                ApiErrorKind::InvalidStateTransition,
                format!(
                    "Job {} is IN_PROGRESS or has executions IN_PROGRESS; use force to delete it.",
                    self.job_id
                ),
            ));
        }
        service.jobs.remove(&self.job_id);
        let things: Vec<ThingName> = service
            .things
            .iter()
            .filter(|(_, state)| state.get(&self.job_id, None).is_some())
            .map(|(thing, _)| thing.clone())
            .collect();
        for thing in things {
            service.mutate(&thing, now_ms, events, |state| {
                state.forget_job(&self.job_id)
            });
        }
        Ok(Empty {})
    }
}

//! The job operations: CreateJob, DescribeJob, GetJobDocument, ListJobs, CancelJob,
//! DeleteJob, AssociateTargetsWithJob.

use jobs_core::{Document, JobId, JobStatus, ThingName, validate};
use serde::{Deserialize, Serialize};

use super::super::job_record::{Cancellation, Counts, JobRecord, JobState, TargetSelection};
use super::super::jobs_service::{JobsService, Outgoing};
use super::super::state::{Execution, seconds};
use super::shapes::{Empty, Job, JobSummary};
use super::{ApiError, ApiErrorKind, ControlOperation, Operation, job_arn, page, sealed};

/// In-progress timeout range in minutes (1 minute to 7 days).
const IN_PROGRESS_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1..=10_080;

/// Longest job document, in characters (the model's `JobDocument`).
const DOCUMENT_MAX: usize = 32_768;

/// Longest description or comment, in characters.
const TEXT_MAX: usize = 2028;

/// Longest `reasonCode`, in characters.
const REASON_CODE_MAX: usize = 128;

/// Most targets one job may have (AWS's documented limit for AssociateTargetsWithJob).
const TARGETS_MAX: usize = 100;

/// `timeoutConfig`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct TimeoutConfig {
    /// Minutes an execution may stay IN_PROGRESS (1–10080) before it becomes TIMED_OUT.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_progress_timeout_in_minutes: Option<i64>,
}

/// The output of CreateJob, CancelJob and AssociateTargetsWithJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobOutput {
    /// The job's ARN.
    pub job_arn: String,
    /// The job ID.
    pub job_id: JobId,
    /// The job's description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

impl JobOutput {
    fn of(id: &JobId, record: &JobRecord) -> Self {
        Self {
            job_arn: job_arn(id),
            job_id: id.clone(),
            description: record.description.clone(),
        }
    }
}

/// CreateJob: creates a job and queues an execution on every target thing (in target order,
/// after the thing's earlier executions); each thing gets `notify`, and `notify-next` if the
/// execution became its next one.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CreateJob {
    /// The job ID, unique in the account (even after the job ended; DeleteJob frees it).
    pub job_id: JobId,
    /// Thing names or thing ARNs (1–100); thing groups are refused.
    pub targets: Vec<String>,
    /// The job document: JSON, given as a string (up to 32768 characters).
    #[serde(default)]
    pub document: Option<String>,
    /// Refused: documents in S3 are not emulated.
    #[serde(default)]
    pub document_source: Option<String>,
    /// A description (up to 2028 characters, none of Unicode category Other).
    #[serde(default)]
    pub description: Option<String>,
    /// SNAPSHOT (the default) or CONTINUOUS.
    #[serde(default)]
    pub target_selection: Option<TargetSelection>,
    /// The in-progress timeout.
    #[serde(default)]
    pub timeout_config: Option<TimeoutConfig>,
}

impl CreateJob {
    /// A SNAPSHOT job with this document (JSON text) on these targets.
    pub fn new(job_id: JobId, document: &Document, targets: Vec<String>) -> Self {
        Self {
            job_id,
            targets,
            document: Some(document.as_json().to_owned()),
            document_source: None,
            description: None,
            target_selection: None,
            timeout_config: None,
        }
    }
}

impl sealed::Sealed for CreateJob {}

impl ControlOperation for CreateJob {
    const OPERATION: Operation = Operation::CreateJob;
    type Output = JobOutput;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<JobOutput, ApiError> {
        if self.document_source.is_some() {
            return Err(ApiError::invalid(
                "documentSource (a job document in S3) is not emulated: give the document \
                 inline in `document`",
            ));
        }
        let text = self.document.ok_or_else(|| {
            ApiError::invalid("CreateJob needs a `document` (documentSource is not emulated)")
        })?;
        if text.chars().count() > DOCUMENT_MAX {
            return Err(ApiError::invalid(format!(
                "the document is longer than {DOCUMENT_MAX} characters"
            )));
        }
        let document = Document::from_json(text)
            .map_err(|error| ApiError::invalid(format!("the document is not JSON: {error}")))?;
        if let Some(description) = &self.description {
            validate::text(description, TEXT_MAX)
                .map_err(|error| ApiError::invalid(format!("invalid description: {error}")))?;
        }
        let timeout = self
            .timeout_config
            .and_then(|config| config.in_progress_timeout_in_minutes);
        if let Some(minutes) = timeout
            && !IN_PROGRESS_TIMEOUT_RANGE.contains(&minutes)
        {
            return Err(ApiError::invalid(format!(
                "inProgressTimeoutInMinutes {minutes} is outside 1 to 10080"
            )));
        }
        let (targets, things) = parse_targets(&self.targets)?;
        if targets.is_empty() {
            return Err(ApiError::invalid("CreateJob needs at least one target"));
        }
        if service.jobs.contains_key(&self.job_id) {
            return Err(ApiError::new(
                ApiErrorKind::ResourceAlreadyExists,
                format!("Job {} already exists.", self.job_id),
            ));
        }
        let now = seconds(now_ms);
        service.seq = service.seq.saturating_add(1);
        let record = JobRecord {
            seq: service.seq,
            document,
            targets,
            selection: self.target_selection.unwrap_or_default(),
            description: self.description,
            in_progress_timeout_minutes: timeout,
            created_at: now,
            last_updated_at: now,
            cancellation: None,
        };
        let output = JobOutput::of(&self.job_id, &record);
        service.jobs.insert(self.job_id.clone(), record);
        for thing in things {
            service.queue_execution(&self.job_id, &thing, now_ms, events);
        }
        Ok(output)
    }
}

/// Parses targets: the distinct target strings in order, and the distinct things they name.
fn parse_targets(targets: &[String]) -> Result<(Vec<String>, Vec<ThingName>), ApiError> {
    let mut strings = Vec::new();
    let mut things: Vec<ThingName> = Vec::new();
    for target in targets {
        let thing = super::target_thing(target)?;
        if !strings.contains(target) {
            strings.push(target.clone());
        }
        if !things.contains(&thing) {
            things.push(thing);
        }
    }
    if strings.len() > TARGETS_MAX {
        return Err(ApiError::new(
            ApiErrorKind::LimitExceeded,
            format!("a job may have at most {TARGETS_MAX} targets"),
        ));
    }
    Ok((strings, things))
}

impl JobsService {
    /// Queues a new execution of `job` on `thing` (execution number: the thing's last one of
    /// this job + 1) and appends the events. Nothing happens for an unknown job.
    pub(crate) fn queue_execution(
        &mut self,
        job: &JobId,
        thing: &ThingName,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        let Some(record) = self.jobs.get(job) else {
            return;
        };
        let document = record.document.clone();
        let timeout = record.in_progress_timeout_minutes;
        self.seq = self.seq.saturating_add(1);
        let seq = self.seq;
        let now = seconds(now_ms);
        self.mutate(thing, now_ms, events, |state| {
            let execution_number = state.allocate_execution_number(job);
            state.executions.push(Execution {
                job_id: job.clone(),
                seq,
                document,
                status: JobStatus::Queued,
                status_details: None,
                version_number: 1,
                execution_number,
                queued_at: now,
                started_at: None,
                last_updated_at: now,
                in_progress_timeout_minutes: timeout,
                step_deadline: None,
                in_progress_deadline: None,
                force_canceled: false,
            });
        });
    }

    /// The counts of `job`'s executions.
    pub(crate) fn counts(&self, job: &JobId) -> Counts {
        Counts::of(job, self.things.values())
    }

    pub(crate) fn job_record(&self, job: &JobId) -> Result<&JobRecord, ApiError> {
        self.jobs.get(job).ok_or_else(|| ApiError::no_job(job))
    }

    /// Moves every pending execution of `job` to CANCELED (IN_PROGRESS ones only with
    /// `force`, marking them force-cancelled) and appends the events.
    pub(crate) fn cancel_executions(
        &mut self,
        job: &JobId,
        force: bool,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
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
                    execution.force_canceled = execution.status == JobStatus::InProgress;
                    execution.finish(JobStatus::Canceled, seconds(now_ms));
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
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
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

/// GetJobDocument: the job document, as a JSON string.
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

/// AssociateTargetsWithJob: adds targets to a CONTINUOUS job that is IN_PROGRESS. A thing with
/// no pending execution of the job gets a new one — execution number 1 the first time, the
/// last one + 1 when an earlier execution ended (a thing re-joining the job runs it again); a
/// thing whose execution is still pending is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AssociateTargetsWithJob {
    /// The job ID.
    pub job_id: JobId,
    /// Thing names or thing ARNs (the job has at most 100 targets in all).
    pub targets: Vec<String>,
    /// Up to 2028 characters, none of Unicode category Other.
    #[serde(default)]
    pub comment: Option<String>,
}

impl AssociateTargetsWithJob {
    /// A request adding `targets` to `job_id`.
    pub fn new(job_id: JobId, targets: Vec<String>) -> Self {
        Self {
            job_id,
            targets,
            comment: None,
        }
    }
}

impl sealed::Sealed for AssociateTargetsWithJob {}

impl ControlOperation for AssociateTargetsWithJob {
    const OPERATION: Operation = Operation::AssociateTargetsWithJob;
    type Output = JobOutput;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<JobOutput, ApiError> {
        if let Some(comment) = &self.comment {
            validate::text(comment, TEXT_MAX)
                .map_err(|error| ApiError::invalid(format!("invalid comment: {error}")))?;
        }
        let (targets, things) = parse_targets(&self.targets)?;
        if targets.is_empty() {
            return Err(ApiError::invalid(
                "AssociateTargetsWithJob needs at least one target",
            ));
        }
        let counts = service.counts(&self.job_id);
        let record = service.job_record(&self.job_id)?;
        if record.selection != TargetSelection::Continuous {
            return Err(ApiError::invalid(format!(
                "Job {} is a SNAPSHOT job; targets can be added to CONTINUOUS jobs only.",
                self.job_id
            )));
        }
        if record.state(&counts) != JobState::InProgress {
            return Err(ApiError::invalid(format!(
                "Job {} is not IN_PROGRESS.",
                self.job_id
            )));
        }
        let mut all = record.targets.clone();
        for target in targets {
            if !all.contains(&target) {
                all.push(target);
            }
        }
        if all.len() > TARGETS_MAX {
            return Err(ApiError::new(
                ApiErrorKind::LimitExceeded,
                format!("a job may have at most {TARGETS_MAX} targets"),
            ));
        }
        for thing in things {
            let pending = service
                .things
                .get(&thing)
                .and_then(|state| state.get(&self.job_id, None))
                .is_some_and(Execution::is_pending);
            if !pending {
                service.queue_execution(&self.job_id, &thing, now_ms, events);
            }
        }
        let Some(record) = service.jobs.get_mut(&self.job_id) else {
            return Err(ApiError::no_job(&self.job_id));
        };
        record.targets = all;
        record.last_updated_at = seconds(now_ms);
        Ok(JobOutput::of(&self.job_id, record))
    }
}

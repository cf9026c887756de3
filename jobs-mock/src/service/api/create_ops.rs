//! The operations that create executions: CreateJob and AssociateTargetsWithJob.

use jobs_core::{Document, JobId, JobStatus, ThingName, validate};
use serde::{Deserialize, Serialize};

use super::super::job_record::{
    IN_PROGRESS_TIMEOUT_RANGE, JobRecord, JobState, NewJob, TargetSelection,
};
use super::super::jobs_service::{JobsService, Outgoing};
use super::super::presign;
use super::super::retry::RetryCounts;
use super::super::rollout::Rollout;
use super::super::state::{Execution, seconds};
use super::super::targets::resolve_targets;
use super::configs::{AbortConfig, PresignedUrlConfig, RetryConfig, RolloutConfig};
use super::{ApiError, ApiErrorKind, ControlOperation, Operation, job_arn, sealed};

/// Longest job document, in characters (the model's `JobDocument`).
const DOCUMENT_MAX: usize = 32_768;

/// Longest description or comment, in characters.
pub(super) const TEXT_MAX: usize = 2028;

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
    pub(super) fn of(id: &JobId, record: &JobRecord) -> Self {
        Self {
            job_arn: job_arn(id),
            job_id: id.clone(),
            description: record.description.clone(),
        }
    }
}

/// CreateJob: creates a job and queues an execution on every thing its targets name now (in
/// target order, a group's members by name, after each thing's earlier executions; with a
/// rollout configuration, at its pace); each thing gets `notify`, and `notify-next` if the
/// execution became its next one. Targets are ARNs of registered things and thing groups.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CreateJob {
    /// The job ID, unique in the account (even after the job ended; DeleteJob frees it).
    pub job_id: JobId,
    /// Thing and thing-group ARNs (1–100) of registered things and groups.
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
    /// How the document's pre-signed URL placeholders are signed (required with a role when
    /// it has any).
    #[serde(default)]
    pub presigned_url_config: Option<PresignedUrlConfig>,
    /// How fast executions are queued.
    #[serde(default)]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    /// Which failures are retried, how often.
    #[serde(default)]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// When the job is cancelled for its failures.
    #[serde(default)]
    pub abort_config: Option<AbortConfig>,
}

impl CreateJob {
    /// A SNAPSHOT job with this document (JSON text) on these targets (ARNs).
    pub fn new(job_id: JobId, document: &Document, targets: Vec<String>) -> Self {
        Self {
            job_id,
            targets,
            document: Some(document.as_json().to_owned()),
            document_source: None,
            description: None,
            target_selection: None,
            timeout_config: None,
            presigned_url_config: None,
            job_executions_rollout_config: None,
            job_executions_retry_config: None,
            abort_config: None,
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
        let has_placeholders = presign::has_placeholders(&document)
            .map_err(|error| ApiError::invalid(format!("the document: {error}")))?;
        if let Some(config) = &self.presigned_url_config {
            config.check()?;
        }
        if has_placeholders
            && self
                .presigned_url_config
                .as_ref()
                .is_none_or(|c| c.role_arn.is_none())
        {
            return Err(ApiError::invalid(
                "the document has pre-signed URL placeholders: presignedUrlConfig.roleArn is \
                 required",
            ));
        }
        for check in [
            self.job_executions_rollout_config
                .as_ref()
                .map(RolloutConfig::check),
            self.job_executions_retry_config
                .as_ref()
                .map(RetryConfig::check),
            self.abort_config.as_ref().map(AbortConfig::check),
        ] {
            check.transpose()?;
        }
        if self.targets.is_empty() {
            return Err(ApiError::invalid("CreateJob needs at least one target"));
        }
        check_target_count(self.targets.len())?;
        if service.jobs.contains_key(&self.job_id) {
            return Err(ApiError::new(
                ApiErrorKind::ResourceAlreadyExists,
                format!("Job {} already exists.", self.job_id),
            ));
        }
        let (targets, things) = resolve_targets(&service.registry, &self.targets)?;
        let job = NewJob {
            document,
            targets,
            selection: self.target_selection.unwrap_or_default(),
            description: self.description,
            in_progress_timeout_minutes: timeout,
            presigned_url_config: self.presigned_url_config,
            has_placeholders,
            rollout: self.job_executions_rollout_config,
            retry: self.job_executions_retry_config,
            abort: self.abort_config,
        };
        service.insert_job(&self.job_id, job, &things, now_ms, events);
        Ok(JobOutput::of(
            &self.job_id,
            service.job_record(&self.job_id)?,
        ))
    }
}

/// More than [`TARGETS_MAX`] targets is a `LimitExceededException`.
fn check_target_count(count: usize) -> Result<(), ApiError> {
    if count > TARGETS_MAX {
        return Err(ApiError::new(
            ApiErrorKind::LimitExceeded,
            format!("a job may have at most {TARGETS_MAX} targets"),
        ));
    }
    Ok(())
}

impl JobsService {
    /// Creates the job `id` (next in the creation sequence, created at `now_ms`) and offers an
    /// execution of it to each of `things`, in order (queued now, or as its rollout allows),
    /// appending the events. The caller has validated `job` and checked that no job `id`
    /// exists.
    pub(crate) fn insert_job(
        &mut self,
        id: &JobId,
        job: NewJob,
        things: &[ThingName],
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        let now = seconds(now_ms);
        self.seq = self.seq.saturating_add(1);
        let record = JobRecord {
            seq: self.seq,
            document: job.document,
            targets: job.targets,
            selection: job.selection,
            description: job.description,
            in_progress_timeout_minutes: job.in_progress_timeout_minutes,
            created_at: now,
            last_updated_at: now,
            cancellation: None,
            presigned_url_config: job.presigned_url_config,
            has_placeholders: job.has_placeholders,
            rollout: job.rollout.map(|config| Rollout::new(config, now_ms)),
            retry: job.retry,
            abort: job.abort,
        };
        self.jobs.insert(id.clone(), record);
        for thing in things {
            self.offer(id, thing, now_ms, events);
        }
    }

    /// Queues a new execution of `job` on `thing` (execution number: the thing's last one of
    /// this job + 1) and appends the events. Nothing happens for an unknown job.
    pub(crate) fn queue_execution(
        &mut self,
        job: &JobId,
        thing: &ThingName,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        self.queue_retry(job, thing, RetryCounts::default(), now_ms, events);
    }

    /// [`queue_execution`](Self::queue_execution) of a retry after `retries` earlier ones.
    pub(crate) fn queue_retry(
        &mut self,
        job: &JobId,
        thing: &ThingName,
        retries: RetryCounts,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        let Some(record) = self.jobs.get(job) else {
            return;
        };
        let document = record.document.clone();
        let timeout = record.in_progress_timeout_minutes;
        let url_lifetime_seconds = record.url_lifetime_seconds();
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
                retries,
                retry_checked: false,
                url_lifetime_seconds,
            });
        });
    }
}

/// AssociateTargetsWithJob: adds targets (thing or thing-group ARNs) to a CONTINUOUS job that
/// is IN_PROGRESS. A thing they name with no pending execution of the job gets a new one —
/// execution number 1 the first time, the last one + 1 when an earlier execution ended (a
/// thing re-joining the job runs it again); a thing whose execution is still pending is left
/// as it is. Later members of an added group get executions as they join.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct AssociateTargetsWithJob {
    /// The job ID.
    pub job_id: JobId,
    /// Thing and thing-group ARNs (the job has at most 100 targets in all).
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
        if self.targets.is_empty() {
            return Err(ApiError::invalid(
                "AssociateTargetsWithJob needs at least one target",
            ));
        }
        check_target_count(self.targets.len())?;
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
        let (targets, things) = resolve_targets(&service.registry, &self.targets)?;
        let mut all = record.targets.clone();
        for target in targets {
            if !all.contains(&target) {
                all.push(target);
            }
        }
        check_target_count(all.len())?;
        if let Some(record) = service.jobs.get_mut(&self.job_id) {
            record.targets = all;
        }
        for thing in things {
            service.target(&self.job_id, &thing, now_ms, events);
        }
        let Some(record) = service.jobs.get_mut(&self.job_id) else {
            return Err(ApiError::no_job(&self.job_id));
        };
        record.last_updated_at = seconds(now_ms);
        Ok(JobOutput::of(&self.job_id, record))
    }
}

//! The operations that create executions: CreateJob and AssociateTargetsWithJob.

use jobs_core::{Document, JobId, JobStatus, ThingName, validate};
use serde::{Deserialize, Serialize};

use super::super::job_record::{
    IN_PROGRESS_TIMEOUT_RANGE, JobRecord, JobState, NewJob, TargetSelection,
};
use super::super::jobs_service::{JobsService, Outgoing};
use super::super::state::{Execution, seconds};
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
        let job = NewJob {
            document,
            targets,
            selection: self.target_selection.unwrap_or_default(),
            description: self.description,
            in_progress_timeout_minutes: timeout,
        };
        service.insert_job(&self.job_id, job, &things, now_ms, events);
        Ok(JobOutput::of(
            &self.job_id,
            service.job_record(&self.job_id)?,
        ))
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
    /// Creates the job `id` (next in the creation sequence, created at `now_ms`) and queues an
    /// execution of it on each of `things`, in order, appending the events. The caller has
    /// validated `job` and checked that no job `id` exists.
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
        };
        self.jobs.insert(id.clone(), record);
        for thing in things {
            self.queue_execution(id, thing, now_ms, events);
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

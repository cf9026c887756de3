//! AWS's output shapes of the control plane, built from the service's state. Timestamps are
//! whole seconds since the epoch (JSON numbers, as AWS sends them).

use std::collections::BTreeMap;

use jobs_core::{JobId, JobStatus, ThingName};
use serde::Serialize;

use super::super::job_record::{Counts, JobRecord, JobState, TargetSelection};
use super::super::state::Execution;
use super::configs::{AbortConfig, PresignedUrlConfig, RetryConfig, RolloutConfig};
use super::create_ops::TimeoutConfig;
use super::{job_arn, thing_arn};

/// An empty output (`{}`), for the operations AWS answers without a body.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Empty {}

/// `Job`: a job as DescribeJob returns it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Job {
    /// The job's ARN.
    pub job_arn: String,
    /// The job ID.
    pub job_id: JobId,
    /// SNAPSHOT or CONTINUOUS.
    pub target_selection: TargetSelection,
    /// IN_PROGRESS, CANCELED or COMPLETED.
    pub status: JobState,
    /// Whether CancelJob was called with `force`.
    pub force_canceled: bool,
    /// CancelJob's `reasonCode`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// CancelJob's `comment`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The targets, as given to CreateJob and AssociateTargetsWithJob.
    pub targets: Vec<String>,
    /// The description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was created.
    pub created_at: i64,
    /// When it last changed (creation, cancellation, new targets).
    pub last_updated_at: i64,
    /// When it completed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
    /// How many of its executions are in each status.
    pub job_process_details: JobProcessDetails,
    /// The in-progress timeout.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_config: Option<TimeoutConfig>,
    /// The pre-signed URL configuration, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presigned_url_config: Option<PresignedUrlConfig>,
    /// The rollout configuration, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_executions_rollout_config: Option<RolloutConfig>,
    /// The retry configuration, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub job_executions_retry_config: Option<RetryConfig>,
    /// The abort configuration, as given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub abort_config: Option<AbortConfig>,
}

/// `JobProcessDetails`: the number of executions (the latest on each thing) in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
#[allow(
    missing_docs,
    reason = "the members are AWS's counters, one per status"
)]
pub struct JobProcessDetails {
    pub number_of_canceled_things: i64,
    pub number_of_succeeded_things: i64,
    pub number_of_failed_things: i64,
    pub number_of_rejected_things: i64,
    pub number_of_queued_things: i64,
    pub number_of_in_progress_things: i64,
    pub number_of_removed_things: i64,
    pub number_of_timed_out_things: i64,
}

/// `JobSummary`: a job as ListJobs returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobSummary {
    /// The job's ARN.
    pub job_arn: String,
    /// The job ID.
    pub job_id: JobId,
    /// SNAPSHOT or CONTINUOUS.
    pub target_selection: TargetSelection,
    /// IN_PROGRESS, CANCELED or COMPLETED.
    pub status: JobState,
    /// When it was created.
    pub created_at: i64,
    /// When it last changed.
    pub last_updated_at: i64,
    /// When it completed or was cancelled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<i64>,
}

impl JobRecord {
    pub(crate) fn to_job(&self, id: &JobId, counts: &Counts) -> Job {
        let cancellation = self.cancellation.as_ref();
        Job {
            job_arn: job_arn(id),
            job_id: id.clone(),
            target_selection: self.selection,
            status: self.state(counts),
            force_canceled: cancellation.is_some_and(|c| c.force),
            reason_code: cancellation.and_then(|c| c.reason_code.clone()),
            comment: cancellation.and_then(|c| c.comment.clone()),
            targets: self.targets.iter().map(ToString::to_string).collect(),
            description: self.description.clone(),
            created_at: self.created_at,
            last_updated_at: self.last_updated_at,
            completed_at: self.completed_at(counts),
            job_process_details: JobProcessDetails {
                number_of_canceled_things: counts.canceled,
                number_of_succeeded_things: counts.succeeded,
                number_of_failed_things: counts.failed,
                number_of_rejected_things: counts.rejected,
                number_of_queued_things: counts.queued,
                number_of_in_progress_things: counts.in_progress,
                number_of_removed_things: counts.removed,
                number_of_timed_out_things: counts.timed_out,
            },
            timeout_config: self
                .in_progress_timeout_minutes
                .map(|minutes| TimeoutConfig {
                    in_progress_timeout_in_minutes: Some(minutes),
                }),
            presigned_url_config: self.presigned_url_config.clone(),
            job_executions_rollout_config: self.rollout.as_ref().map(|r| r.config().clone()),
            job_executions_retry_config: self.retry.clone(),
            abort_config: self.abort.clone(),
        }
    }

    pub(crate) fn to_summary(&self, id: &JobId, counts: &Counts) -> JobSummary {
        JobSummary {
            job_arn: job_arn(id),
            job_id: id.clone(),
            target_selection: self.selection,
            status: self.state(counts),
            created_at: self.created_at,
            last_updated_at: self.last_updated_at,
            completed_at: self.completed_at(counts),
        }
    }
}

/// `JobExecutionStatusDetails`: the status details of an execution.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecutionStatusDetails {
    /// The pairs.
    pub details_map: BTreeMap<String, String>,
}

/// `JobExecution`: an execution as the control plane's DescribeJobExecution returns it (any
/// status, terminal ones included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecution {
    /// The job ID.
    pub job_id: JobId,
    /// The status.
    pub status: JobStatus,
    /// Whether it was cancelled with `force` while IN_PROGRESS.
    pub force_canceled: bool,
    /// The status details, if ever set.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status_details: Option<JobExecutionStatusDetails>,
    /// The thing's ARN.
    pub thing_arn: String,
    /// When it was queued.
    pub queued_at: i64,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it last changed.
    pub last_updated_at: i64,
    /// The execution number: 1 for the first execution of the job on the thing.
    pub execution_number: i64,
    /// The version.
    pub version_number: i64,
    /// Seconds left on the earlier timer, while one runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub approximate_seconds_before_timed_out: Option<i64>,
}

/// `JobExecutionSummary`: the short form of an execution in the list operations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecutionSummary {
    /// The status.
    pub status: JobStatus,
    /// When it was queued.
    pub queued_at: i64,
    /// When it started.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<i64>,
    /// When it last changed.
    pub last_updated_at: i64,
    /// The execution number.
    pub execution_number: i64,
    /// How many retries of the job on the thing came before this execution (0 for the first).
    pub retry_attempt: i64,
}

/// `JobExecutionSummaryForJob`: an entry of ListJobExecutionsForJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecutionSummaryForJob {
    /// The thing's ARN.
    pub thing_arn: String,
    /// The execution.
    pub job_execution_summary: JobExecutionSummary,
}

/// `JobExecutionSummaryForThing`: an entry of ListJobExecutionsForThing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct JobExecutionSummaryForThing {
    /// The job ID.
    pub job_id: JobId,
    /// The execution.
    pub job_execution_summary: JobExecutionSummary,
}

impl Execution {
    pub(crate) fn to_control(&self, thing: &ThingName, now_ms: i64) -> JobExecution {
        JobExecution {
            job_id: self.job_id.clone(),
            status: self.status.clone(),
            force_canceled: self.force_canceled,
            status_details: self
                .status_details
                .as_ref()
                .map(|details| JobExecutionStatusDetails {
                    details_map: details
                        .iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect(),
                }),
            thing_arn: thing_arn(thing),
            queued_at: self.queued_at,
            started_at: self.started_at,
            last_updated_at: self.last_updated_at,
            execution_number: self.execution_number,
            version_number: self.version_number,
            approximate_seconds_before_timed_out: self.seconds_before_timed_out(now_ms),
        }
    }

    pub(crate) fn to_control_summary(&self) -> JobExecutionSummary {
        JobExecutionSummary {
            status: self.status.clone(),
            queued_at: self.queued_at,
            started_at: self.started_at,
            last_updated_at: self.last_updated_at,
            execution_number: self.execution_number,
            retry_attempt: self.retries.all,
        }
    }
}

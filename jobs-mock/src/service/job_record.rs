//! What the service holds about a job (as opposed to its executions): document, targets,
//! target selection, timeout, cancellation, and the job status derived from them.

use jobs_core::{Document, JobStatus, ThingName};
use serde::{Deserialize, Serialize};

use super::api::{AbortConfig, PresignedUrlConfig, RetryConfig, RolloutConfig};
use super::rollout::Rollout;
use super::state::ThingState;
use super::targets::Target;

/// In-progress timeout range in minutes (1 minute to 7 days).
pub(crate) const IN_PROGRESS_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1..=10_080;

/// How a job picks its targets (`targetSelection`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum TargetSelection {
    /// Runs once on the targets given at creation, then completes. The default, as on AWS.
    #[default]
    Snapshot,
    /// Never completes by itself: a thing that joins a target group (or is added as a target
    /// by AssociateTargetsWithJob) gets an execution, one that leaves has its QUEUED execution
    /// REMOVED, and a thing that becomes a target again after its execution ended runs the
    /// job again.
    Continuous,
}

/// The status of a job (`Job.status`), as opposed to the status of its executions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum JobState {
    /// Executions may still run (always, for a CONTINUOUS job that was not cancelled).
    InProgress,
    /// Cancelled by CancelJob.
    Canceled,
    /// A SNAPSHOT job whose every execution has ended.
    Completed,
}

/// The cancellation of a job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cancellation {
    pub(crate) force: bool,
    pub(crate) reason_code: Option<String>,
    pub(crate) comment: Option<String>,
}

/// One job.
#[derive(Debug, Clone)]
pub(crate) struct JobRecord {
    /// Service-wide creation sequence: the order of ListJobs.
    pub(crate) seq: u64,
    pub(crate) document: Document,
    /// The targets, in order, without repeats.
    pub(crate) targets: Vec<Target>,
    pub(crate) selection: TargetSelection,
    pub(crate) description: Option<String>,
    pub(crate) in_progress_timeout_minutes: Option<i64>,
    pub(crate) created_at: i64,
    pub(crate) last_updated_at: i64,
    pub(crate) cancellation: Option<Cancellation>,
    /// Set when the document has pre-signed URL placeholders (then with a role).
    pub(crate) presigned_url_config: Option<PresignedUrlConfig>,
    /// Whether the document has pre-signed URL placeholders.
    pub(crate) has_placeholders: bool,
    pub(crate) rollout: Option<Rollout>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) abort: Option<AbortConfig>,
}

/// A job as its creator gives it, validated; `JobsService::insert_job` adds the rest.
pub(crate) struct NewJob {
    pub(crate) document: Document,
    /// The targets, in order, without repeats.
    pub(crate) targets: Vec<Target>,
    pub(crate) selection: TargetSelection,
    pub(crate) description: Option<String>,
    pub(crate) in_progress_timeout_minutes: Option<i64>,
    pub(crate) presigned_url_config: Option<PresignedUrlConfig>,
    pub(crate) has_placeholders: bool,
    pub(crate) rollout: Option<RolloutConfig>,
    pub(crate) retry: Option<RetryConfig>,
    pub(crate) abort: Option<AbortConfig>,
}

/// The number of executions of a job in each status (`jobProcessDetails`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    pub(crate) queued: i64,
    pub(crate) in_progress: i64,
    pub(crate) succeeded: i64,
    pub(crate) failed: i64,
    pub(crate) rejected: i64,
    pub(crate) canceled: i64,
    pub(crate) removed: i64,
    pub(crate) timed_out: i64,
    /// The latest `lastUpdatedAt` of any execution.
    pub(crate) last_change: Option<i64>,
}

impl Counts {
    /// Counts the latest execution of the job on each thing.
    pub(crate) fn of<'a>(
        job: &jobs_core::JobId,
        things: impl IntoIterator<Item = &'a ThingState>,
    ) -> Self {
        let mut counts = Self::default();
        for execution in things.into_iter().filter_map(|state| state.get(job, None)) {
            let slot = match execution.status {
                JobStatus::Queued => &mut counts.queued,
                JobStatus::InProgress => &mut counts.in_progress,
                JobStatus::Succeeded => &mut counts.succeeded,
                JobStatus::Failed => &mut counts.failed,
                JobStatus::Rejected => &mut counts.rejected,
                JobStatus::Canceled => &mut counts.canceled,
                JobStatus::Removed => &mut counts.removed,
                JobStatus::TimedOut => &mut counts.timed_out,
                _ => continue,
            };
            *slot = slot.saturating_add(1);
            counts.last_change = counts.last_change.max(Some(execution.last_updated_at));
        }
        counts
    }

    pub(crate) fn pending(&self) -> i64 {
        self.queued.saturating_add(self.in_progress)
    }
}

impl JobRecord {
    /// Takes `thing` off the rollout's waiting list.
    pub(crate) fn withdraw(&mut self, thing: &ThingName) {
        if let Some(rollout) = &mut self.rollout {
            rollout.waiting.retain(|t| t != thing);
        }
    }

    /// The lifetime of the pre-signed URLs of its executions' documents, if it has any.
    pub(crate) fn url_lifetime_seconds(&self) -> Option<i64> {
        self.has_placeholders.then(|| {
            self.presigned_url_config.as_ref().map_or(
                super::api::DEFAULT_EXPIRES_IN_SEC,
                PresignedUrlConfig::expires_in,
            )
        })
    }

    /// The job's status, given the counts of its executions.
    pub(crate) fn state(&self, counts: &Counts) -> JobState {
        if self.cancellation.is_some() {
            JobState::Canceled
        } else if self.selection == TargetSelection::Snapshot && counts.pending() == 0 {
            JobState::Completed
        } else {
            JobState::InProgress
        }
    }

    /// When the job completed or was cancelled: the later of its own last change and its
    /// executions' (`None` while in progress).
    pub(crate) fn completed_at(&self, counts: &Counts) -> Option<i64> {
        match self.state(counts) {
            JobState::InProgress => None,
            JobState::Canceled | JobState::Completed => {
                Some(self.last_updated_at.max(counts.last_change.unwrap_or(0)))
            }
        }
    }
}

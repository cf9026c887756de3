//! The execution operations: DescribeJobExecution, ListJobExecutionsForJob,
//! ListJobExecutionsForThing, CancelJobExecution, DeleteJobExecution.

use std::collections::BTreeMap;

use jobs_core::{JobId, JobStatus, StatusDetails, ThingName};
use serde::{Deserialize, Serialize};

use super::super::jobs_service::{JobsService, Outgoing};
use super::super::state::{Execution, seconds};
use super::shapes::{Empty, JobExecution, JobExecutionSummaryForJob, JobExecutionSummaryForThing};
use super::{ApiError, ApiErrorKind, ControlOperation, Operation, page, sealed, thing_arn};

/// A status filter must name a known status.
fn check_filter(status: Option<&JobStatus>) -> Result<(), ApiError> {
    match status {
        Some(JobStatus::Unknown(other)) => {
            Err(ApiError::invalid(format!("unknown status {other:?}")))
        }
        _ => Ok(()),
    }
}

/// DescribeJobExecution (control plane): one execution in any status, terminal ones
/// included (unlike the device API's Describe).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DescribeJobExecution {
    /// The job ID.
    pub job_id: JobId,
    /// The thing.
    pub thing_name: ThingName,
    /// Which execution (absent: the latest).
    #[serde(default)]
    pub execution_number: Option<i64>,
}

impl DescribeJobExecution {
    /// A request for the latest execution of `job_id` on `thing_name`.
    pub fn new(job_id: JobId, thing_name: ThingName) -> Self {
        Self {
            job_id,
            thing_name,
            execution_number: None,
        }
    }
}

/// The output of DescribeJobExecution.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct DescribeJobExecutionOutput {
    /// The execution.
    pub execution: JobExecution,
}

impl sealed::Sealed for DescribeJobExecution {}

impl ControlOperation for DescribeJobExecution {
    const OPERATION: Operation = Operation::DescribeJobExecution;
    type Output = DescribeJobExecutionOutput;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<DescribeJobExecutionOutput, ApiError> {
        let execution = service
            .things
            .get(&self.thing_name)
            .and_then(|state| state.get(&self.job_id, self.execution_number))
            .ok_or_else(|| ApiError::no_execution(&self.job_id, &self.thing_name))?;
        Ok(DescribeJobExecutionOutput {
            execution: execution.to_control(&self.thing_name, now_ms),
        })
    }
}

/// ListJobExecutionsForJob: every execution of a job (every execution number), by thing name
/// then creation order, optionally filtered by status, in pages.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListJobExecutionsForJob {
    /// The job ID.
    pub job_id: JobId,
    /// Only executions in this status.
    #[serde(default)]
    pub status: Option<JobStatus>,
    /// At most this many (1–250; absent: all the rest).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

impl ListJobExecutionsForJob {
    /// A request for every execution of `job_id`.
    pub fn new(job_id: JobId) -> Self {
        Self {
            job_id,
            status: None,
            max_results: None,
            next_token: None,
        }
    }
}

/// The output of ListJobExecutionsForJob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListJobExecutionsForJobOutput {
    /// The executions of this page.
    pub execution_summaries: Vec<JobExecutionSummaryForJob>,
    /// The token of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListJobExecutionsForJob {}

impl ControlOperation for ListJobExecutionsForJob {
    const OPERATION: Operation = Operation::ListJobExecutionsForJob;
    type Output = ListJobExecutionsForJobOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListJobExecutionsForJobOutput, ApiError> {
        check_filter(self.status.as_ref())?;
        service.job_record(&self.job_id)?;
        let summaries: Vec<JobExecutionSummaryForJob> = service
            .things
            .iter()
            .flat_map(|(thing, state)| {
                state
                    .executions
                    .iter()
                    .filter(|e| e.job_id == self.job_id)
                    .map(move |e| (thing, e))
            })
            .filter(|(_, e)| self.status.as_ref().is_none_or(|s| *s == e.status))
            .map(|(thing, e)| JobExecutionSummaryForJob {
                thing_arn: thing_arn(thing),
                job_execution_summary: e.to_control_summary(),
            })
            .collect();
        let (execution_summaries, next_token) =
            page(summaries, self.max_results, self.next_token.as_deref())?;
        Ok(ListJobExecutionsForJobOutput {
            execution_summaries,
            next_token,
        })
    }
}

/// ListJobExecutionsForThing: every execution on a thing in creation order, optionally
/// filtered by status and job, in pages. A thing the service never saw has none.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct ListJobExecutionsForThing {
    /// The thing.
    pub thing_name: ThingName,
    /// Only executions in this status.
    #[serde(default)]
    pub status: Option<JobStatus>,
    /// Only executions of this job.
    #[serde(default)]
    pub job_id: Option<JobId>,
    /// At most this many (1–250; absent: all the rest).
    #[serde(default)]
    pub max_results: Option<u32>,
    /// Where the previous page ended.
    #[serde(default)]
    pub next_token: Option<String>,
}

impl ListJobExecutionsForThing {
    /// A request for every execution on `thing_name`.
    pub fn new(thing_name: ThingName) -> Self {
        Self {
            thing_name,
            status: None,
            job_id: None,
            max_results: None,
            next_token: None,
        }
    }
}

/// The output of ListJobExecutionsForThing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ListJobExecutionsForThingOutput {
    /// The executions of this page.
    pub execution_summaries: Vec<JobExecutionSummaryForThing>,
    /// The token of the next page, if there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl sealed::Sealed for ListJobExecutionsForThing {}

impl ControlOperation for ListJobExecutionsForThing {
    const OPERATION: Operation = Operation::ListJobExecutionsForThing;
    type Output = ListJobExecutionsForThingOutput;

    fn run(
        self,
        service: &mut JobsService,
        _now_ms: i64,
        _events: &mut Vec<Outgoing>,
    ) -> Result<ListJobExecutionsForThingOutput, ApiError> {
        check_filter(self.status.as_ref())?;
        let summaries: Vec<JobExecutionSummaryForThing> = service
            .things
            .get(&self.thing_name)
            .map(|state| state.executions.as_slice())
            .unwrap_or_default()
            .iter()
            .filter(|e| self.status.as_ref().is_none_or(|s| *s == e.status))
            .filter(|e| self.job_id.as_ref().is_none_or(|j| *j == e.job_id))
            .map(|e| JobExecutionSummaryForThing {
                job_id: e.job_id.clone(),
                job_execution_summary: e.to_control_summary(),
            })
            .collect();
        let (execution_summaries, next_token) =
            page(summaries, self.max_results, self.next_token.as_deref())?;
        Ok(ListJobExecutionsForThingOutput {
            execution_summaries,
            next_token,
        })
    }
}

/// CancelJobExecution: the latest execution of the job on the thing becomes CANCELED — a
/// QUEUED one always, an IN_PROGRESS one only with `force` (then marked `forceCanceled`, and
/// the device's next update of it is rejected with `InvalidStateTransition`). Its version does
/// not change; given `statusDetails` replace the stored ones.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct CancelJobExecution {
    /// The job ID.
    pub job_id: JobId,
    /// The thing.
    pub thing_name: ThingName,
    /// Also cancel an IN_PROGRESS execution. Defaults to `false`.
    #[serde(default)]
    pub force: Option<bool>,
    /// Refuse with VersionConflictException unless the execution has this version.
    #[serde(default)]
    pub expected_version: Option<i64>,
    /// New status details (the device API's rules: keys 1–128 of `[a-zA-Z0-9:_-]`, values
    /// 1–1024 characters, none of Unicode category Other).
    #[serde(default)]
    pub status_details: Option<BTreeMap<String, String>>,
}

impl CancelJobExecution {
    /// A request to cancel the execution of `job_id` on `thing_name`.
    pub fn new(job_id: JobId, thing_name: ThingName) -> Self {
        Self {
            job_id,
            thing_name,
            force: None,
            expected_version: None,
            status_details: None,
        }
    }
}

impl sealed::Sealed for CancelJobExecution {}

impl ControlOperation for CancelJobExecution {
    const OPERATION: Operation = Operation::CancelJobExecution;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let details = self
            .status_details
            .map(StatusDetails::from_pairs)
            .transpose()
            .map_err(|error| ApiError::invalid(format!("invalid statusDetails: {error}")))?;
        let force = self.force.unwrap_or(false);
        let (job, thing) = (&self.job_id, &self.thing_name);
        let execution = service
            .things
            .get(thing)
            .and_then(|state| state.get(job, None))
            .ok_or_else(|| ApiError::no_execution(job, thing))?;
        check_cancellable(execution, self.expected_version, force)?;
        service.mutate(thing, now_ms, events, |state| {
            if let Some(execution) = state.get_mut(job, None) {
                execution.cancel(seconds(now_ms));
                if details.is_some() {
                    execution.status_details = details;
                }
            }
        });
        Ok(Empty {})
    }
}

fn check_cancellable(
    execution: &Execution,
    expected_version: Option<i64>,
    force: bool,
) -> Result<(), ApiError> {
    if let Some(expected) = expected_version
        && expected != execution.version_number
    {
        return Err(ApiError::new(
            ApiErrorKind::VersionConflict,
            format!(
                "expectedVersion {expected} does not match the execution's version {}",
                execution.version_number
            ),
        ));
    }
    match execution.status {
        JobStatus::Queued => Ok(()),
        JobStatus::InProgress if force => Ok(()),
        JobStatus::InProgress => Err(ApiError::new(
            ApiErrorKind::InvalidStateTransition,
            "The job execution is IN_PROGRESS; set force to cancel it.",
        )),
        ref status => Err(ApiError::new(
            ApiErrorKind::InvalidStateTransition,
            format!("The job execution is {status} (terminal) and cannot be canceled."),
        )),
    }
}

/// DeleteJobExecution: forgets one execution. A terminal one always; a QUEUED or IN_PROGRESS
/// one only with `force` (the device's next request about it then gets `ResourceNotFound`).
/// Its execution number is not given out again.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
#[non_exhaustive]
pub struct DeleteJobExecution {
    /// The job ID.
    pub job_id: JobId,
    /// The thing.
    pub thing_name: ThingName,
    /// Which execution.
    pub execution_number: i64,
    /// Also delete a QUEUED or IN_PROGRESS execution. Defaults to `false`.
    #[serde(default)]
    pub force: Option<bool>,
}

impl DeleteJobExecution {
    /// A request to delete execution `execution_number` of `job_id` on `thing_name`.
    pub fn new(job_id: JobId, thing_name: ThingName, execution_number: i64) -> Self {
        Self {
            job_id,
            thing_name,
            execution_number,
            force: None,
        }
    }
}

impl sealed::Sealed for DeleteJobExecution {}

impl ControlOperation for DeleteJobExecution {
    const OPERATION: Operation = Operation::DeleteJobExecution;
    type Output = Empty;

    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Empty, ApiError> {
        let (job, thing, number) = (&self.job_id, &self.thing_name, self.execution_number);
        let execution = service
            .things
            .get(thing)
            .and_then(|state| state.get(job, Some(number)))
            .ok_or_else(|| ApiError::no_execution(job, thing))?;
        if execution.is_pending() && !self.force.unwrap_or(false) {
            return Err(ApiError::new(
                ApiErrorKind::InvalidStateTransition,
                format!(
                    "The job execution is {}; set force to delete it.",
                    execution.status
                ),
            ));
        }
        service.mutate(thing, now_ms, events, |state| {
            state
                .executions
                .retain(|e| !(&e.job_id == job && e.execution_number == number));
        });
        Ok(Empty {})
    }
}

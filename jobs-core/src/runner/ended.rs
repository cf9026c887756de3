//! [`Ended`]: what [`RunnerBuilder::on_ended`](super::RunnerBuilder::on_ended) is told about each
//! execution the runner took on.

use std::fmt;

use crate::model::{JobExecution, JobExecutionSummary};
use crate::{ExecutionNumber, JobId, JobStatus, ThingName};

/// One execution of a job on the thing: its job ID and execution number (`None` only if the
/// service sent none).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub(crate) job_id: JobId,
    pub(crate) number: Option<ExecutionNumber>,
}

impl Key {
    pub(crate) fn of(execution: &JobExecution) -> Self {
        Self {
            job_id: execution.job_id.clone(),
            number: execution.execution_number,
        }
    }

    pub(crate) fn of_summary(summary: &JobExecutionSummary) -> Self {
        Self {
            job_id: summary.job_id.clone(),
            number: summary.execution_number,
        }
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.number {
            Some(number) => write!(f, "{} (execution {number})", self.job_id),
            None => write!(f, "{}", self.job_id),
        }
    }
}

/// How an execution the runner took on ended, as far as the runner learned it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ending {
    /// The service holds the status this runner reported: the handler's outcome, or `FAILED`
    /// with the refusal as `reason` when the service refused that outcome for a reason no
    /// retry could fix.
    Reported(JobStatus),
    /// The service ended the execution before any report of this runner was applied
    /// (canceled, removed, timed out, deleted): its status when the service said it, `None`
    /// when it said only that the execution is terminal or gone (AWS refuses to describe a
    /// terminal execution, so a cancel seen by a describe gives `None`).
    EndedByService(Option<JobStatus>),
    /// A terminal report was sent whose fate is unknown (its acknowledgement or reply was
    /// lost), and the runner stopped, or the service would not say, before learning whether it
    /// was applied.
    Unconfirmed,
    /// Still `IN_PROGRESS` on the service: the runner stopped (or its
    /// [`Jobs`](crate::Jobs) was closed) before the outcome was reported, or abandoned a
    /// handler that did not return within the stop grace. A later runner resumes the execution.
    LeftInProgress,
}

/// What [`RunnerBuilder::on_ended`](super::RunnerBuilder::on_ended) receives: the execution
/// and how it ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Ended {
    /// The thing it ran for.
    pub thing_name: ThingName,
    /// The job's ID.
    pub job_id: JobId,
    /// The execution number, if the service sent one.
    pub execution_number: Option<ExecutionNumber>,
    /// How it ended.
    pub ending: Ending,
}

impl Ended {
    pub(crate) fn new(thing_name: ThingName, key: Key, ending: Ending) -> Self {
        Self {
            thing_name,
            job_id: key.job_id,
            execution_number: key.number,
            ending,
        }
    }
}

//! [`Operation`]: the four operations of the Jobs device API.

use std::fmt;

/// One of the four operations of the Jobs device API. It names a request topic, the replies to
/// it, and the call an [`Error`](crate::Error) is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// GetPendingJobExecutions on `…/jobs/get` ([`Jobs::list`](crate::Jobs::list)).
    GetPending,
    /// StartNextPendingJobExecution on `…/jobs/start-next`
    /// ([`Jobs::start_next`](crate::Jobs::start_next)).
    StartNext,
    /// DescribeJobExecution on `…/jobs/{job}/get` ([`Job::describe`](crate::Job::describe),
    /// [`Jobs::describe_next`](crate::Jobs::describe_next)).
    Describe,
    /// UpdateJobExecution on `…/jobs/{job}/update` ([`Job::update`](crate::Job::update)).
    Update,
}

impl Operation {
    /// Whether the operation's topic names a job (Describe and Update).
    pub fn has_job(self) -> bool {
        matches!(self, Self::Describe | Self::Update)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::GetPending => "get pending",
            Self::StartNext => "start next",
            Self::Describe => "describe",
            Self::Update => "update",
        })
    }
}

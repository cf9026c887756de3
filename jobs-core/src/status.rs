//! [`JobStatus`] and [`RejectCode`]: the two enumerations of the wire, with their unknown
//! values kept verbatim.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The status of a job execution.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting to be started.
    Queued,
    /// Started by the device.
    InProgress,
    /// Finished successfully (terminal).
    Succeeded,
    /// Failed; may be retried by a retry configuration (terminal).
    Failed,
    /// A step or in-progress timer expired (terminal).
    TimedOut,
    /// The device refused to run the job (terminal, never retried).
    Rejected,
    /// The thing is no longer a target of the job (terminal).
    Removed,
    /// The job or execution was cancelled (terminal).
    Canceled,
    /// A status this library does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(String),
}

impl JobStatus {
    /// True for statuses that end an execution. Unknown statuses count as not terminal.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Failed
                | Self::TimedOut
                | Self::Rejected
                | Self::Removed
                | Self::Canceled
        )
    }

    /// True for the statuses a device may set with Update: `IN_PROGRESS`, `SUCCEEDED`,
    /// `FAILED`, `REJECTED`.
    pub fn is_settable_by_device(&self) -> bool {
        matches!(
            self,
            Self::InProgress | Self::Succeeded | Self::Failed | Self::Rejected
        )
    }
}

/// Writes the wire spelling, for example `IN_PROGRESS`.
impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_wire_name(self, f)
    }
}

/// The `code` of a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RejectCode {
    /// The topic is inside the Jobs namespace but maps to no API.
    InvalidTopic,
    /// The payload is not valid UTF-8 JSON.
    InvalidJson,
    /// The payload's content is invalid; the message says why.
    InvalidRequest,
    /// The requested status is not allowed from the current one (or the execution is terminal).
    InvalidStateTransition,
    /// The execution does not exist.
    ResourceNotFound,
    /// `expectedVersion` differs from the stored version.
    VersionMismatch,
    /// The service failed internally; retry with backoff.
    InternalError,
    /// The request rate was exceeded; retry with backoff.
    RequestThrottled,
    /// Describe of an execution in a terminal state.
    TerminalStateReached,
    /// A code this library does not know, kept verbatim.
    #[serde(untagged)]
    Unknown(String),
}

impl RejectCode {
    /// True for the codes worth retrying with backoff: `RequestThrottled` and `InternalError`.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::RequestThrottled | Self::InternalError)
    }
}

/// Writes the wire spelling, for example `VersionMismatch`.
impl fmt::Display for RejectCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_wire_name(self, f)
    }
}

/// Writes a unit-like enum's serde spelling, so the spelling lives only in serde attributes.
fn write_wire_name<T: Serialize + fmt::Debug>(
    value: &T,
    f: &mut fmt::Formatter<'_>,
) -> fmt::Result {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => f.write_str(&name),
        _ => write!(f, "{value:?}"),
    }
}

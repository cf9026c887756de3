//! Errors: one [`Error`] for every call, with small typed parts.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::model::{ExecutionState, JobStatus, RejectCode};
use crate::transport::TransportError;

/// The Jobs operation a call performed; part of [`Error::Timeout`] and [`Error::Rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Operation {
    /// Subscribing to the thing's reply and event topics.
    Subscribe,
    /// GetPendingJobExecutions ([`Jobs::list`](crate::Jobs::list)).
    GetPending,
    /// StartNextPendingJobExecution ([`Jobs::start_next`](crate::Jobs::start_next)).
    StartNext,
    /// DescribeJobExecution ([`Job::describe`](crate::Job::describe), [`Jobs::describe_next`](crate::Jobs::describe_next)).
    Describe,
    /// UpdateJobExecution ([`Job::update`](crate::Job::update)).
    Update,
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Subscribe => "subscribe",
            Self::GetPending => "get pending",
            Self::StartNext => "start next",
            Self::Describe => "describe",
            Self::Update => "update",
        })
    }
}

/// What the service said on a `/rejected` topic.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Rejection {
    /// The error code.
    pub code: RejectCode,
    /// The service's explanation, if any.
    pub message: Option<String>,
    /// The execution's current state; sent with `VersionMismatch` and `InvalidStateTransition`.
    pub execution_state: Option<ExecutionState>,
}

/// Why a name or value was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameError {
    /// The value is empty.
    Empty,
    /// The value is longer than allowed.
    TooLong {
        /// Its length in characters (bytes for a client token, which is ASCII).
        len: usize,
        /// The maximum length.
        max: usize,
    },
    /// The value contains a character outside the allowed set.
    InvalidCharacter {
        /// The offending character.
        character: char,
        /// Its byte offset.
        position: usize,
    },
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("must not be empty"),
            Self::TooLong { len, max } => {
                write!(f, "is {len} characters long, more than {max}")
            }
            Self::InvalidCharacter {
                character,
                position,
            } => write!(
                f,
                "{character:?} (U+{:04X}) at byte {position} is not allowed",
                u32::from(*character)
            ),
        }
    }
}

/// Input refused before anything was published.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A thing name outside 1–128 characters of `[a-zA-Z0-9:_-]`.
    ThingName {
        /// The refused value.
        value: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// A job ID outside 1–64 characters of `[a-zA-Z0-9_-]`.
    JobId {
        /// The refused value.
        value: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// A `statusDetails` key outside 1–128 characters of `[a-zA-Z0-9:_-]`.
    StatusDetailKey {
        /// The refused key.
        key: String,
        /// What is wrong with it.
        reason: NameError,
    },
    /// A `statusDetails` value outside 1–1024 characters, or with a control character.
    StatusDetailValue {
        /// The key whose value was refused.
        key: String,
        /// What is wrong with the value.
        reason: NameError,
    },
    /// A step timeout outside 1–10080 minutes.
    StepTimeout {
        /// The refused number of minutes.
        minutes: i64,
    },
    /// Cancelling the step timer (`-1`) is only possible on Update.
    StepTimeoutCancelOutsideUpdate,
    /// A device may only set `IN_PROGRESS`, `SUCCEEDED`, `FAILED` or `REJECTED`.
    StatusNotSettable(JobStatus),
    /// The encoded request is larger than the 128 KB AWS IoT accepts.
    PayloadTooLarge {
        /// The request's size in bytes.
        size: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// This client already has a [`Jobs`](crate::Jobs) for the thing; clone that one instead.
    DuplicateThing(String),
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ThingName { value, reason } => write!(f, "thing name {value:?} {reason}"),
            Self::JobId { value, reason } => write!(f, "job id {value:?} {reason}"),
            Self::StatusDetailKey { key, reason } => {
                write!(f, "status detail key {key:?} {reason}")
            }
            Self::StatusDetailValue { key, reason } => {
                write!(f, "status detail value of {key:?} {reason}")
            }
            Self::StepTimeout { minutes } => {
                write!(f, "step timeout of {minutes} minutes is outside 1 to 10080")
            }
            Self::StepTimeoutCancelOutsideUpdate => {
                f.write_str("a step timer can only be cancelled by an update")
            }
            Self::StatusNotSettable(status) => write!(f, "a device cannot set status {status}"),
            Self::PayloadTooLarge { size, limit } => {
                write!(f, "request of {size} bytes exceeds the {limit} byte limit")
            }
            Self::DuplicateThing(thing) => write!(f, "thing {thing:?} is already registered"),
        }
    }
}

impl StdError for InvalidInput {}

/// Any failure of a Jobs call.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The service answered on the `/rejected` topic.
    Rejected {
        /// The operation that was rejected.
        operation: Operation,
        /// What the service said (boxed: it is large and errors travel by value).
        rejection: Box<Rejection>,
    },
    /// Neither an accepted nor a rejected reply arrived in time. The request may still have been
    /// applied by the service.
    Timeout {
        /// The operation that timed out.
        operation: Operation,
        /// How long the call waited.
        waited: Duration,
    },
    /// The transport failed: offline, connection lost mid-call, or no acknowledgement.
    Transport {
        /// The operation that failed.
        operation: Operation,
        /// The transport's error.
        source: TransportError,
    },
    /// A reply arrived but could not be decoded.
    Decode {
        /// The topic of the undecodable reply.
        topic: String,
        /// The decoder's error.
        source: serde_json::Error,
    },
    /// A request could not be encoded. The library's own request types always encode; this
    /// reports the impossible instead of panicking.
    Encode {
        /// The operation whose request failed to encode.
        operation: Operation,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// Input was refused before anything was published.
    InvalidInput(InvalidInput),
}

impl Error {
    /// The rejection, if the service rejected the request.
    pub fn rejection(&self) -> Option<&Rejection> {
        match self {
            Self::Rejected { rejection, .. } => Some(rejection),
            _ => None,
        }
    }

    /// True if no reply arrived in time.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout { .. })
    }

    /// True if retrying later, with backoff, may succeed: the service throttled the request or
    /// failed internally (`RequestThrottled`, `InternalError`), or the transport was offline,
    /// lost the connection or timed out. Everything else is final.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Rejected { rejection, .. } => rejection.code.is_retryable(),
            Self::Timeout { .. } => true,
            Self::Transport { source, .. } => matches!(
                source,
                TransportError::NotConnected
                    | TransportError::ConnectionLost
                    | TransportError::Timeout
            ),
            _ => false,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rejected {
                operation,
                rejection,
            } => {
                write!(f, "{operation} rejected with {}", rejection.code)?;
                match &rejection.message {
                    Some(message) => write!(f, ": {message}"),
                    None => Ok(()),
                }
            }
            Self::Timeout { operation, waited } => {
                write!(f, "{operation} got no reply within {waited:?}")
            }
            Self::Transport { operation, .. } => write!(f, "{operation} failed in the transport"),
            Self::Decode { topic, .. } => write!(f, "undecodable reply on {topic}"),
            Self::Encode { operation, .. } => write!(f, "{operation} request could not be encoded"),
            Self::InvalidInput(_) => f.write_str("invalid input"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Transport { source, .. } => Some(source),
            Self::Decode { source, .. } | Self::Encode { source, .. } => Some(source),
            Self::InvalidInput(source) => Some(source),
            _ => None,
        }
    }
}

impl From<InvalidInput> for Error {
    fn from(error: InvalidInput) -> Self {
        Self::InvalidInput(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send_sync_static<T: Send + Sync + 'static>() {}

    #[test]
    fn errors_are_send_sync_and_static() {
        assert_send_sync_static::<Error>();
        assert_send_sync_static::<TransportError>();
        assert_send_sync_static::<InvalidInput>();
    }

    #[test]
    fn display_does_not_repeat_the_source() {
        let error = Error::from(InvalidInput::StepTimeout { minutes: 0 });
        assert_eq!(error.to_string(), "invalid input");
        let source = error.source().map(ToString::to_string);
        assert_eq!(
            source.as_deref(),
            Some("step timeout of 0 minutes is outside 1 to 10080")
        );
    }
}

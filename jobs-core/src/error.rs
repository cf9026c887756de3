//! Errors: one [`Error`] for every call, with small typed parts.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use crate::Operation;
use crate::model::ExecutionState;
use crate::names::ThingName;
use crate::transport::TransportError;
use crate::{JobStatus, RejectCode};

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
    /// A `statusDetails` value outside 1–1024 characters, or with a character of Unicode
    /// category Other (`\p{C}`).
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
    /// This client already has a [`Jobs`](crate::Jobs) for the thing; clone that one instead
    /// (clones share the thing's state), or [`close`](crate::Jobs::close) it first.
    DuplicateThing(ThingName),
    /// The thing's [`Jobs`](crate::Jobs) was closed with [`Jobs::close`](crate::Jobs::close);
    /// build a new one to use it again.
    Closed(ThingName),
    /// Serving the thing would need more subscriptions than the client's budget
    /// ([`ClientBuilder::max_subscriptions`](crate::ClientBuilder::max_subscriptions); AWS IoT
    /// Core allows 50 per connection). Nothing was sent. Close things no longer served, or use
    /// a strategy that shares filters ([`Subscriptions`](crate::Subscriptions)).
    SubscriptionBudget {
        /// The budget.
        budget: usize,
        /// Subscriptions held by things being served.
        in_use: usize,
        /// Subscriptions the thing would add.
        wanted: usize,
    },
    /// A builder setting that makes no sense, refused by `build` (never clamped silently).
    Setting {
        /// The setting, named as its builder method (`timeout`, `max_concurrent`, `backoff`, …).
        name: &'static str,
        /// What is wrong with it.
        problem: SettingProblem,
    },
}

/// What is wrong with a builder setting ([`InvalidInput::Setting`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SettingProblem {
    /// It must not be zero.
    Zero,
    /// A backoff's maximum delay is below its initial delay.
    MaxBelowInitial,
    /// It must be a positive, finite number (and a burst at least 1).
    NotPositive,
}

impl fmt::Display for SettingProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Zero => "must not be zero",
            Self::MaxBelowInitial => "its maximum delay is below its initial delay",
            Self::NotPositive => "must be a positive, finite number",
        })
    }
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ThingName { value, reason } => {
                write!(f, "invalid thing name {value:?}: {reason}")
            }
            Self::JobId { value, reason } => write!(f, "invalid job id {value:?}: {reason}"),
            Self::StatusDetailKey { key, reason } => {
                write!(f, "invalid status detail key {key:?}: {reason}")
            }
            Self::StatusDetailValue { key, reason } => {
                write!(f, "invalid status detail value of {key:?}: {reason}")
            }
            Self::StepTimeout { minutes } => {
                write!(
                    f,
                    "invalid step timeout: {minutes} minutes is outside 1 to 10080"
                )
            }
            Self::StepTimeoutCancelOutsideUpdate => {
                f.write_str("a step timer can only be cancelled by an update")
            }
            Self::StatusNotSettable(status) => write!(f, "a device cannot set status {status}"),
            Self::PayloadTooLarge { size, limit } => {
                write!(f, "request of {size} bytes exceeds the {limit} byte limit")
            }
            Self::DuplicateThing(thing) => write!(
                f,
                "thing {thing} already has a Jobs on this client: clone that one (clones share its state) or close it first"
            ),
            Self::Closed(thing) => write!(f, "the Jobs of thing {thing} was closed"),
            Self::Setting { name, problem } => write!(f, "invalid setting {name}: {problem}"),
            Self::SubscriptionBudget {
                budget,
                in_use,
                wanted,
            } => write!(
                f,
                "{wanted} more subscriptions would exceed the budget of {budget} on this connection ({in_use} in use)"
            ),
        }
    }
}

impl StdError for InvalidInput {}

/// Why a reply or a job document could not be decoded.
#[derive(Debug)]
pub struct DecodeError {
    kind: DecodeKind,
}

#[derive(Debug)]
enum DecodeKind {
    /// Not JSON, or JSON of the wrong shape: the parser's own explanation.
    Json(serde_json::Error),
    /// A field the operation needs is absent.
    MissingField(&'static str),
    /// A field holds a value that contradicts the request.
    Unexpected {
        field: &'static str,
        expected: String,
        found: String,
    },
}

impl DecodeError {
    pub(crate) fn json(error: serde_json::Error) -> Self {
        Self {
            kind: DecodeKind::Json(error),
        }
    }

    pub(crate) fn missing(field: &'static str) -> Self {
        Self {
            kind: DecodeKind::MissingField(field),
        }
    }

    pub(crate) fn unexpected(field: &'static str, expected: &str, found: &str) -> Self {
        Self {
            kind: DecodeKind::Unexpected {
                field,
                expected: expected.to_owned(),
                found: found.to_owned(),
            },
        }
    }

    /// The field that was missing, when that is what was wrong.
    pub fn missing_field(&self) -> Option<&'static str> {
        match self.kind {
            DecodeKind::MissingField(field) => Some(field),
            _ => None,
        }
    }
}

/// Says what was wrong; for malformed JSON, in the parser's words (which name the field and
/// the position).
impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            DecodeKind::Json(error) => write!(f, "{error}"),
            DecodeKind::MissingField(field) => write!(f, "missing field {field}"),
            DecodeKind::Unexpected {
                field,
                expected,
                found,
            } => write!(f, "{field} is {found:?}, expected {expected:?}"),
        }
    }
}

impl StdError for DecodeError {}

/// Any failure of a Jobs call.
///
/// `Display` says what went wrong in one line, including the parts of this crate
/// ([`InvalidInput`], [`TransportError`], [`DecodeError`]); `source()` returns only what those
/// wrap from elsewhere (a backend's own error), so printing the chain never repeats a line.
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
    /// The call's deadline passed before its reply arrived (or before the broker acknowledged
    /// its SUBSCRIBE or PUBLISH). The request may still have been applied by the service —
    /// unless the deadline passed before the request was published, which the client never
    /// does afterwards.
    Timeout {
        /// The operation that timed out; `None` while subscribing or unsubscribing the thing's
        /// topics ([`Jobs::new`](crate::Jobs::new), [`Jobs::close`](crate::Jobs::close)).
        operation: Option<Operation>,
        /// The call's timeout.
        waited: Duration,
    },
    /// The transport failed: offline, connection lost mid-call, a refused subscription, a
    /// transport that already serves another client.
    Transport {
        /// The operation that failed; `None` outside a Jobs request (installing the client's
        /// sink, subscribing or unsubscribing the thing's topics).
        operation: Option<Operation>,
        /// The transport's error.
        source: TransportError,
    },
    /// A reply for this call arrived (its topic and client token match) but its content is
    /// malformed or incomplete. Replies that cannot be attributed to a call are dropped and
    /// logged at debug level instead; the call then ends by its timeout.
    Decode {
        /// The topic of the reply.
        topic: String,
        /// What is wrong with it.
        reason: DecodeError,
    },
    /// A job document does not fit the type asked of [`Document::parse`](crate::Document::parse).
    Document(DecodeError),
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

    /// True if the call's deadline passed (or a transport gave up waiting for an
    /// acknowledgement).
    pub fn is_timeout(&self) -> bool {
        matches!(
            self,
            Self::Timeout { .. }
                | Self::Transport {
                    source: TransportError::Timeout,
                    ..
                }
        )
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
            Self::Timeout {
                operation: Some(operation),
                waited,
            } => write!(f, "{operation} got no reply within {waited:?}"),
            Self::Timeout {
                operation: None,
                waited,
            } => write!(
                f,
                "the broker did not acknowledge the subscription within {waited:?}"
            ),
            Self::Transport {
                operation: Some(operation),
                source,
            } => write!(f, "{operation} failed: {source}"),
            Self::Transport {
                operation: None,
                source,
            } => write!(f, "transport failed: {source}"),
            Self::Decode { topic, reason } => write!(f, "undecodable reply on {topic}: {reason}"),
            Self::Document(reason) => write!(f, "job document does not fit: {reason}"),
            Self::Encode { operation, .. } => write!(f, "{operation} request could not be encoded"),
            Self::InvalidInput(input) => write!(f, "{input}"),
        }
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Transport { source, .. } => source.source(),
            Self::Encode { source, .. } => Some(source),
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
    fn every_variant_says_what_was_wrong_in_one_line() {
        let thing = crate::ThingName::new("x/+/#").unwrap_err();
        let decode = serde_json::from_str::<crate::model::ExecutionReply>(
            r#"{"execution":{"status":"QUEUED"}}"#,
        )
        .unwrap_err();
        let cases: Vec<(Error, &str)> = vec![
            (
                Error::Rejected {
                    operation: Operation::Update,
                    rejection: Box::new(Rejection {
                        code: RejectCode::VersionMismatch,
                        message: Some("expected version 3, current version 4".into()),
                        execution_state: None,
                    }),
                },
                "update rejected with VersionMismatch: expected version 3, current version 4",
            ),
            (
                Error::Timeout {
                    operation: Some(Operation::GetPending),
                    waited: Duration::from_millis(50),
                },
                "get pending got no reply within 50ms",
            ),
            (
                Error::Timeout {
                    operation: None,
                    waited: Duration::from_millis(100),
                },
                "the broker did not acknowledge the subscription within 100ms",
            ),
            (
                Error::Transport {
                    operation: None,
                    source: TransportError::SubscriptionRefused {
                        filter: "$aws/things/t/jobs/notify".into(),
                    },
                },
                "transport failed: subscription to $aws/things/t/jobs/notify refused",
            ),
            (
                Error::Decode {
                    topic: "$aws/things/t/jobs/start-next/accepted".into(),
                    reason: DecodeError::json(decode),
                },
                "undecodable reply on $aws/things/t/jobs/start-next/accepted: missing field `jobId`",
            ),
            (
                Error::Decode {
                    topic: "$aws/things/t/jobs/j/get/accepted".into(),
                    reason: DecodeError::missing("execution"),
                },
                "undecodable reply on $aws/things/t/jobs/j/get/accepted: missing field execution",
            ),
            (
                Error::InvalidInput(thing),
                "invalid thing name \"x/+/#\": '/' (U+002F) at byte 1 is not allowed",
            ),
            (
                InvalidInput::Setting {
                    name: "backoff",
                    problem: SettingProblem::MaxBelowInitial,
                }
                .into(),
                "invalid setting backoff: its maximum delay is below its initial delay",
            ),
        ];
        for (error, starts) in cases {
            let text = error.to_string();
            assert!(text.starts_with(starts), "{text:?} vs {starts:?}");
            assert!(!text.contains('\n'), "{text:?}");
        }
    }

    #[test]
    fn display_says_what_is_wrong_in_one_line_and_the_chain_does_not_repeat_it() {
        let error = Error::from(InvalidInput::StepTimeout { minutes: 0 });
        assert_eq!(
            error.to_string(),
            "invalid step timeout: 0 minutes is outside 1 to 10080"
        );
        assert!(error.source().is_none());
        let error = Error::Transport {
            operation: Some(Operation::GetPending),
            source: TransportError::NotConnected,
        };
        assert_eq!(error.to_string(), "get pending failed: not connected");
        assert!(error.source().is_none());
        let error = Error::Transport {
            operation: None,
            source: TransportError::backend("socket closed by peer"),
        };
        assert_eq!(
            error.to_string(),
            "transport failed: the MQTT backend failed"
        );
        assert_eq!(
            error.source().map(ToString::to_string).as_deref(),
            Some("socket closed by peer")
        );
    }
}

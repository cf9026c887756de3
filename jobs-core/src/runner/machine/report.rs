//! The terminal report of one execution: the handler's outcome, sent until the service has
//! it, never applied twice, never to another execution, never in a storm.
//!
//! Every update names the execution number, so a retry can only reach the execution the
//! handler ran: once that execution is terminal (our outcome applied, or the service ended
//! it) the service refuses any further update with `InvalidStateTransition` and its state.
//! That is why a report whose fate is unknown (a lost PUBACK or reply) is simply sent again:
//! the answer is either "accepted" (the first never arrived) or the refusal that shows which
//! status the service holds.
//!
//! | answer to the update | next |
//! |---|---|
//! | accepted | ended: [`Ending::Reported`] |
//! | refused with a terminal `executionState` | ended: `Reported` if it is our status, else [`Ending::EndedByService`] |
//! | `InvalidStateTransition` / `TerminalStateReached` / `ResourceNotFound` without a state | ended: [`Ending::Unconfirmed`] if an earlier attempt may have been applied, else `EndedByService(None)` |
//! | `RequestThrottled`, `InternalError`, a timeout, a transport error, a reply that does not decode | the same update again |
//! | any other refusal (`InvalidRequest`, `VersionMismatch`, an unknown code, a request refused locally) | resolve: describe the execution |
//!
//! | answer to the resolving describe | next |
//! |---|---|
//! | terminal status | ended as above |
//! | `TerminalStateReached` / `ResourceNotFound` | ended as above (no state) |
//! | still pending | the update again: the same outcome after the first refusal (a re-read may be all a `VersionMismatch` needed), `FAILED` with the refusal as `reason` from the second on |
//! | anything else | the describe again |
//!
//! Each request after the first waits the next delay of the [`Backoff`](crate::runner::Backoff)
//! (the series is never reset while the report lasts). With the default backoff (1 s doubling to
//! 1 minute, jitter between half and all of each delay), a service that refuses forever gets at
//! most 7 requests about the execution in its first minute and at most 2 a minute from its
//! third minute on — the unit tests count them.

use log::{debug, info, warn};

use super::{Ending, Key, Reply, Request};

use crate::runner::context::{Outcome, describe_refused_as_ended};
use crate::{Error, JobStatus, RejectCode, TransportError};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    Update,
    Resolve,
}

/// One execution's report in progress.
#[derive(Debug)]
pub(crate) struct Report {
    /// What is sent: the handler's outcome, or `FAILED` once that was refused for good.
    outcome: Outcome,
    /// The handler's own status.
    original: JobStatus,
    step: Step,
    /// Why the service refused the outcome (the reason of the downgraded `FAILED`).
    refusal: Option<String>,
    /// How many times the service refused the report for a reason a retry cannot fix; from
    /// the second, `FAILED` with the refusal as reason is sent instead.
    refusals: u32,
    /// The outcome was replaced by `FAILED` with the refusal as reason.
    downgraded: bool,
    /// An update went out whose fate is unknown: the service may hold it.
    maybe_applied: bool,
}

/// How a failed request counts for the report.
#[derive(Debug, PartialEq, Eq)]
enum Failure {
    /// Worth sending again; `maybe_applied` when the request may have reached the service.
    Retry { maybe_applied: bool },
    /// The execution is terminal: its status when the service said it.
    Terminal(Option<JobStatus>),
    /// Refused for a reason sending the same again cannot fix.
    Refused(String),
}

impl Report {
    pub(crate) fn new(outcome: Outcome) -> Self {
        Self {
            original: outcome.status.clone(),
            outcome,
            step: Step::Update,
            refusal: None,
            refusals: 0,
            downgraded: false,
            maybe_applied: false,
        }
    }

    pub(crate) fn maybe_applied(&self) -> bool {
        self.maybe_applied
    }

    /// The request to send next about `key`.
    pub(crate) fn request(&self, key: Key) -> Request {
        match self.step {
            Step::Update => Request::Report {
                key,
                status: self.outcome.status.clone(),
                details: self.outcome.details.clone(),
            },
            Step::Resolve => Request::Describe {
                key,
                document: false,
            },
        }
    }

    /// Takes the answer to the last request; `Some` when the report is over.
    pub(crate) fn answer(&mut self, key: &Key, answer: Result<Reply, Error>) -> Option<Ending> {
        match self.step {
            Step::Update => self.updated(key, answer),
            Step::Resolve => self.resolved(key, answer),
        }
    }

    fn updated(&mut self, key: &Key, answer: Result<Reply, Error>) -> Option<Ending> {
        let error = match answer {
            Ok(_) => {
                info!("{key} ended: reported {}", self.outcome.status);
                return Some(Ending::Reported(self.outcome.status.clone()));
            }
            Err(error) => error,
        };
        match classify(&error) {
            Failure::Retry { maybe_applied } => {
                self.maybe_applied |= maybe_applied;
                debug!(
                    "reporting {} of {key} failed: {error}; retrying",
                    self.outcome.status
                );
                None
            }
            Failure::Terminal(status) => Some(self.terminal(key, status)),
            Failure::Refused(why) => {
                warn!(
                    "the service refused {} of {key}: {why}; checking the execution",
                    self.outcome.status
                );
                self.refusal = Some(why);
                self.refusals = self.refusals.saturating_add(1);
                self.step = Step::Resolve;
                None
            }
        }
    }

    fn resolved(&mut self, key: &Key, answer: Result<Reply, Error>) -> Option<Ending> {
        match answer {
            Ok(Reply::Execution(Some(execution))) => match execution.status {
                Some(status) if status.is_terminal() => Some(self.terminal(key, Some(status))),
                _ => {
                    // Still pending: after a second refusal, report FAILED with the refusal as
                    // its reason.
                    if self.refusals >= 2 && !self.downgraded {
                        let why = self.refusal.as_deref().unwrap_or("refused");
                        self.outcome = Outcome::failed().with_details(crate::runner::reason(
                            &format!("the service refused {}: {why}", self.original),
                        ));
                        self.downgraded = true;
                    }
                    self.step = Step::Update;
                    None
                }
            },
            Err(error) if describe_refused_as_ended(&error) => Some(self.terminal(key, None)),
            Ok(_) => None,
            Err(error) => {
                debug!("checking {key} failed: {error}; checking again later");
                None
            }
        }
    }

    /// The execution is terminal with `status` (if the service said it).
    fn terminal(&self, key: &Key, status: Option<JobStatus>) -> Ending {
        match status {
            Some(status) if status == self.outcome.status || status == self.original => {
                info!("{key} ended: reported {status}");
                Ending::Reported(status)
            }
            Some(status) => {
                info!(
                    "{key} was ended by the service ({status}); {} not reported",
                    self.original
                );
                Ending::EndedByService(Some(status))
            }
            None if self.maybe_applied => {
                info!("{key} ended; the service did not say whether with this runner's report");
                Ending::Unconfirmed
            }
            None => {
                info!(
                    "{key} was ended by the service; {} not reported",
                    self.original
                );
                Ending::EndedByService(None)
            }
        }
    }
}

/// How a failed terminal update counts. Every transport failure is worth retrying (paced):
/// `NotConnected` and a refused re-subscription sent nothing; a timeout, a lost connection, a
/// backend failure (a full request queue among them) or a reply that does not decode may have
/// reached the service.
fn classify(error: &Error) -> Failure {
    match error {
        Error::Rejected { rejection, .. } => {
            if rejection.code.is_retryable() {
                return Failure::Retry {
                    maybe_applied: false,
                };
            }
            let state = rejection
                .execution_state
                .as_ref()
                .and_then(|state| state.status.clone());
            match state {
                Some(status) if status.is_terminal() => Failure::Terminal(Some(status)),
                None if matches!(
                    rejection.code,
                    RejectCode::InvalidStateTransition
                        | RejectCode::TerminalStateReached
                        | RejectCode::ResourceNotFound
                ) =>
                {
                    Failure::Terminal(None)
                }
                _ => Failure::Refused(match &rejection.message {
                    Some(message) => format!("{}: {message}", rejection.code),
                    None => rejection.code.to_string(),
                }),
            }
        }
        Error::Timeout { .. } | Error::Decode { .. } => Failure::Retry {
            maybe_applied: true,
        },
        Error::Transport { source, .. } => Failure::Retry {
            maybe_applied: !matches!(
                source,
                TransportError::NotConnected
                    | TransportError::SubscriptionRefused { .. }
                    | TransportError::SinkInstalled
            ),
        },
        other => Failure::Refused(other.to_string()),
    }
}

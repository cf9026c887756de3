//! Acquisition: how the machine finds work. A round lists the pending executions (GetPending),
//! then takes on those it does not know yet, in the service's order, while there is room:
//! - an IN_PROGRESS one is resumed: described (its number named) for its document;
//! - a QUEUED one is started with start-next when the list shows nothing IN_PROGRESS and the
//!   runner holds nothing (the protocol's own way), otherwise with an IN_PROGRESS update naming
//!   its execution number (start-next would return the IN_PROGRESS execution again), then
//!   described for its document and timer.
//!
//! Rounds are wanted on events that show unknown work, after a reconnect, on the resync
//! interval and when a handler returns. A round that found nothing new, or failed, delays the
//! next one by the backoff (growing while that repeats, forgotten after a quiet `max`); a
//! productive round or a freed slot lets the next go at once.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Key, Listed, Reply, Request};
use crate::model::JobExecution;
use crate::runner::context::describe_refused_as_ended;
use crate::runner::pacing::{Backoff, Jitter, Pacer};
use crate::{Error, JobStatus};

/// One request of a round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    List,
    StartNext,
    /// Start a QUEUED execution by an IN_PROGRESS update.
    Start(Key),
    /// Describe an IN_PROGRESS execution to resume it.
    Resume(Key),
    /// Describe an execution this round started, for its document and timer.
    Fetch(Key),
}

impl Step {
    pub(crate) fn request(&self) -> Request {
        match self {
            Self::List => Request::List,
            Self::StartNext => Request::StartNext,
            Self::Start(key) => Request::Start(key.clone()),
            Self::Resume(key) | Self::Fetch(key) => Request::Describe {
                key: key.clone(),
                document: true,
            },
        }
    }
}

/// What a round took on.
#[derive(Debug)]
pub(crate) enum Taken {
    /// Run its handler.
    Run {
        execution: JobExecution,
        resumed: bool,
    },
    /// The service's reply about it could not be decoded (a job document that does not parse,
    /// for example): nothing can run it, so it is reported `REJECTED` with the reason.
    Unreadable { key: Key, why: String },
}

/// The list of one round and what is left of it.
#[derive(Debug, Default)]
struct Round {
    /// Executions of the list not yet looked at.
    candidates: VecDeque<Listed>,
    /// Keys the list showed IN_PROGRESS (to tell whether start-next resumed one).
    listed_in_progress: Vec<Key>,
    /// A follow-up request (fetching a started execution's document, starting a resumed one
    /// that turned out QUEUED).
    follow_up: Option<Step>,
    /// The round took something on.
    productive: bool,
}

impl Round {
    fn is_used_up(&self) -> bool {
        self.follow_up.is_none() && self.candidates.is_empty()
    }
}

#[derive(Debug)]
pub(crate) struct Acquisition {
    wanted: bool,
    pacer: Pacer,
    round: Option<Round>,
    stopped: bool,
}

impl Acquisition {
    /// An acquisition that wants a round at once.
    pub(crate) fn wanted() -> Self {
        Self {
            wanted: true,
            pacer: Pacer::new(),
            round: None,
            stopped: false,
        }
    }

    pub(crate) fn want(&mut self) {
        self.wanted = true;
    }

    /// A handler returned: look for the next execution at once.
    pub(crate) fn room_freed(&mut self) {
        self.wanted = true;
        self.pacer.reset();
    }

    pub(crate) fn stop(&mut self) {
        self.stopped = true;
        self.round = None;
    }

    /// Whether the acquisition's pacing lets a request go (also gates re-subscribing).
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.pacer.ready(now)
    }

    /// When the acquisition's pacing next lets a request go (`None`: now).
    pub(crate) fn not_before(&self) -> Option<Instant> {
        self.pacer.not_before()
    }

    /// When a round paced by the backoff may start (`None`: no round is waiting for time).
    pub(crate) fn next_wake(&self, room: bool) -> Option<Instant> {
        if self.stopped || !room || self.round.is_some() || !self.wanted {
            return None;
        }
        self.pacer.not_before()
    }

    /// A request failed (offline, timed out, throttled): the round ends and another is wanted,
    /// paced.
    pub(crate) fn failed(&mut self, now: Instant, backoff: &Backoff, jitter: &mut Jitter) {
        self.round = None;
        self.pacer.sent(now, backoff, jitter);
        self.wanted = true;
    }

    /// Ends the current round: a productive one lets the next go at once, another waits.
    fn end_round(&mut self, now: Instant, backoff: &Backoff, jitter: &mut Jitter) {
        match self.round.take() {
            Some(round) if round.productive => self.pacer.reset(),
            Some(_) => self.pacer.sent(now, backoff, jitter),
            None => {}
        }
    }

    /// The next request of the acquisition, if one is due. `holds_any`: the runner holds an
    /// execution (so start-next would return that one).
    pub(crate) fn next(
        &mut self,
        now: Instant,
        backoff: &Backoff,
        jitter: &mut Jitter,
        room: bool,
        holds_any: bool,
        known: impl Fn(&Key) -> bool,
    ) -> Option<Step> {
        // Without room the round waits (its list stays) until a handler or a pool thread frees.
        if self.stopped || !room {
            return None;
        }
        if let Some(round) = &mut self.round {
            if let Some(step) = round.follow_up.take() {
                return Some(step);
            }
            while let Some(candidate) = round.candidates.pop_front() {
                if known(&candidate.key) {
                    continue;
                }
                return Some(if candidate.in_progress {
                    Step::Resume(candidate.key)
                } else if holds_any || !round.listed_in_progress.is_empty() {
                    Step::Start(candidate.key)
                } else {
                    Step::StartNext
                });
            }
            self.end_round(now, backoff, jitter);
        }
        self.pacer.forget_if_idle(now, backoff.max());
        if !self.wanted || !self.pacer.ready(now) {
            return None;
        }
        self.wanted = false;
        self.round = Some(Round::default());
        Some(Step::List)
    }

    /// Takes the answer to `step`; returns what the round took on, if anything.
    pub(crate) fn answer(
        &mut self,
        step: Step,
        answer: Result<Reply, Error>,
        now: Instant,
        backoff: &Backoff,
        jitter: &mut Jitter,
        known: impl Fn(&Key) -> bool,
    ) -> Option<Taken> {
        let Some(round) = &mut self.round else {
            return None;
        };
        let taken = match (step, answer) {
            (Step::List, Ok(Reply::Listed(listed))) => {
                round.listed_in_progress = listed
                    .iter()
                    .filter(|l| l.in_progress)
                    .map(|l| l.key.clone())
                    .collect();
                round.candidates = listed.into_iter().filter(|l| !known(&l.key)).collect();
                None
            }
            (Step::StartNext, Ok(Reply::Execution(Some(execution)))) => {
                let key = Key::of(&execution);
                if known(&key) {
                    // start-next returned an execution this runner already has: nothing new.
                    round.candidates.clear();
                    None
                } else {
                    let resumed = round.listed_in_progress.contains(&key);
                    Some(Taken::Run { execution, resumed })
                }
            }
            (Step::StartNext, Ok(_)) => {
                round.candidates.clear();
                None
            }
            (Step::Resume(key), Ok(Reply::Execution(Some(execution)))) => {
                match execution.status {
                    Some(JobStatus::InProgress) => Some(Taken::Run {
                        execution,
                        resumed: true,
                    }),
                    Some(JobStatus::Queued) => {
                        round.follow_up = Some(Step::Start(key));
                        None
                    }
                    // Ended since it was listed.
                    _ => None,
                }
            }
            (Step::Start(key), Ok(_)) => {
                // Started: describe it for its document and timer.
                round.follow_up = Some(Step::Fetch(key));
                None
            }
            (Step::Fetch(_), Ok(Reply::Execution(Some(execution)))) => Some(Taken::Run {
                execution,
                resumed: false,
            }),
            (Step::List | Step::StartNext, Err(error)) => {
                log_failure("looking for jobs", &error);
                self.failed(now, backoff, jitter);
                return None;
            }
            (Step::Start(key) | Step::Resume(key) | Step::Fetch(key), Err(error)) => {
                if matches!(error, Error::Decode { .. }) {
                    Some(Taken::Unreadable {
                        key,
                        why: error.to_string(),
                    })
                } else if describe_refused_as_ended(&error) || error.rejection().is_some() {
                    // Ended or taken elsewhere since it was listed, or refused: skip it.
                    log::debug!("not taking on {key}: {error}");
                    None
                } else {
                    log_failure(&format!("taking on {key}"), &error);
                    self.failed(now, backoff, jitter);
                    return None;
                }
            }
            (step, Ok(reply)) => {
                log::debug!("unexpected answer to {step:?}: {reply:?}");
                None
            }
        };
        if taken.is_some() {
            round.productive = true;
        }
        if round.is_used_up() {
            self.end_round(now, backoff, jitter);
        }
        taken
    }
}

/// Logs a failed search: at debug level while offline (expected, and retried when the
/// connection is back), as a warning otherwise.
fn log_failure(what: &str, error: &Error) {
    if matches!(
        error,
        Error::Transport {
            source: crate::TransportError::NotConnected | crate::TransportError::ConnectionLost,
            ..
        }
    ) {
        log::debug!("{what} failed: {error}; retrying");
    } else {
        log::warn!("{what} failed: {error}; retrying");
    }
}

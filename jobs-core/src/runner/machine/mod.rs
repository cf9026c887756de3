//! The runner's decisions as a pure state machine: inputs (events, answers to its requests,
//! handlers that returned, stop, time) in; actions (one request at a time, handler starts,
//! cancels, endings, exit) out. No threads, no I/O, no clock of its own: the
//! [driver](super::driver) passes `now` and executes the actions.
//!
//! The rules it keeps, each unit-tested here without threads:
//! - Everything about an execution names it by job ID **and execution number** ([`Key`]); an
//!   event or answer about another execution of the same job never ends, cancels or completes
//!   it.
//! - Requests about one execution are paced by the backoff over its whole report (never reset
//!   per attempt), so a service that refuses forever gets a bounded trickle (see
//!   [`report`]), and a held execution is never started again by an acquisition.
//! - Acquisition rounds (list, then start or resume) are paced too: a round that found nothing
//!   new, or failed, delays the next by the backoff, so events that bring no work cannot make
//!   the runner poll in a loop.
//! - After a stop, nothing starts; reports continue until the stop deadline, and whatever is
//!   left then ends as [`Ending::LeftInProgress`] (or [`Ending::Unconfirmed`]).

mod acquire;
mod report;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use super::context::{Outcome, describe_refused_as_ended};
use super::ended::{Ending, Key};
use super::pacing::{Backoff, Jitter, Pacer};
use crate::model::JobExecution;
use crate::{Error, Event, JobStatus, StatusDetails};

use acquire::Acquisition;
use report::Report;

/// How many ended executions the machine remembers, so that it never takes one on again.
const FINISHED_MEMORY: usize = 1024;

/// The settings the machine decides by.
#[derive(Debug, Clone)]
pub(crate) struct Settings {
    pub(crate) max_concurrent: usize,
    pub(crate) backoff: Backoff,
    pub(crate) stop_grace: Duration,
    pub(crate) resync_interval: Duration,
}

/// What happens to the machine.
#[derive(Debug)]
pub(crate) enum Input {
    /// A `notify` or `notify-next` event of the thing.
    Event(Event),
    /// The connection came back without its session: subscriptions must be restored, and
    /// events may have been missed.
    Reconnected,
    /// The answer to the request the machine last asked for.
    Answer(Result<Reply, Error>),
    /// The request the machine last asked for was not sent: no time was left before the stop
    /// deadline.
    Skipped,
    /// A handler returned (or its thread ended without returning: a failed outcome).
    HandlerDone {
        key: Key,
        outcome: Outcome,
        /// Set when the handler's own progress report learned that the service ended the
        /// execution: the status, if the service said it.
        ended_by_service: Option<Option<JobStatus>>,
    },
    /// [`StopHandle::stop`](super::StopHandle::stop) was called at `at`.
    Stop { at: Instant },
    /// The thing's [`Jobs`](crate::Jobs) was closed.
    Closed,
}

/// A pending execution as listed by GetPending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) key: Key,
    pub(crate) in_progress: bool,
}

/// A successful answer.
#[derive(Debug)]
pub(crate) enum Reply {
    /// The thing's filters are subscribed.
    Subscribed,
    /// GetPending: IN_PROGRESS first, then QUEUED, in the service's order.
    Listed(Vec<Listed>),
    /// StartNext (`None`: nothing pending), Start and Describe.
    Execution(Option<JobExecution>),
    /// The terminal update was accepted.
    Updated,
}

/// A request for the driver to send with the [`Jobs`](crate::Jobs) API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Request {
    /// Restore the thing's subscriptions (no publish).
    Resubscribe,
    /// GetPendingJobExecutions.
    List,
    /// StartNextPendingJobExecution (with the runner's step timeout).
    StartNext,
    /// Start this QUEUED execution: an IN_PROGRESS update naming its execution number (with the
    /// runner's step timeout), asking for the job document.
    Start(Key),
    /// DescribeJobExecution of this execution (its number named).
    Describe { key: Key, document: bool },
    /// The terminal UpdateJobExecution of this execution (its number named).
    Report {
        key: Key,
        status: JobStatus,
        details: Option<StatusDetails>,
    },
}

/// What the driver does next.
#[derive(Debug)]
pub(crate) enum Action {
    /// Send this request and feed its answer back with [`Input::Answer`].
    Send(Request),
    /// Run the handler of this execution on a thread of its own.
    StartHandler {
        execution: JobExecution,
        resumed: bool,
    },
    /// Set the cancellation signal of this running execution: the service ended it.
    Cancel(Key),
    /// Tell every running handler that the runner is stopping.
    Stopping,
    /// Call the `on_ended` hook: this execution is over for this runner.
    Ended { key: Key, ending: Ending },
    /// Return from `run`.
    Exit(Exit),
}

/// Why `run` returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    Stopped,
    Closed,
}

/// An execution the runner holds: its handler runs, or its outcome is being reported.
#[derive(Debug)]
struct Held {
    phase: Phase,
    /// Spaces the requests about this execution: checks while the handler runs, then the
    /// report (a fresh series).
    pacer: Pacer,
    /// An event or a resync asked whether the service still has it pending.
    check_wanted: bool,
    /// Set once the service ended it (a check, or the handler's progress report, said so),
    /// with the status if the service said it.
    ended_by_service: Option<Option<JobStatus>>,
}

#[derive(Debug)]
enum Phase {
    Running,
    Reporting(Report),
}

/// The request in flight, and what its answer is for.
#[derive(Debug)]
enum InFlight {
    Resubscribe,
    Acquire(acquire::Step),
    Check(Key),
    Report(Key),
}

/// The runner's state machine. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Machine {
    settings: Settings,
    jitter: Jitter,
    held: HashMap<Key, Held>,
    finished: HashSet<Key>,
    finished_order: VecDeque<Key>,
    actions: VecDeque<Action>,
    in_flight: Option<InFlight>,
    acquisition: Acquisition,
    resubscribe: bool,
    next_resync: Instant,
    /// Set by a stop: the instant the stop grace ends.
    stop_deadline: Option<Instant>,
    /// The runner's handler threads have room for one more (several things share them).
    pool_room: bool,
    exited: bool,
}

impl Machine {
    /// A machine that acquires work at once.
    pub(crate) fn new(settings: Settings, now: Instant, jitter: Jitter) -> Self {
        let next_resync = later(now, settings.resync_interval);
        Self {
            settings,
            jitter,
            held: HashMap::new(),
            finished: HashSet::new(),
            finished_order: VecDeque::new(),
            actions: VecDeque::new(),
            in_flight: None,
            acquisition: Acquisition::wanted(),
            resubscribe: false,
            next_resync,
            stop_deadline: None,
            pool_room: true,
            exited: false,
        }
    }

    /// Tells the machine whether the runner's shared handler threads have room for another
    /// handler: without room it takes nothing new on (its own `max_concurrent` aside).
    pub(crate) fn set_pool_room(&mut self, room: bool) {
        self.pool_room = room;
    }

    /// Takes in what happened at `now`.
    pub(crate) fn handle(&mut self, input: Input, now: Instant) {
        if self.exited {
            return;
        }
        match input {
            Input::Event(event) => self.event(&event),
            Input::Reconnected => {
                self.resubscribe = true;
                self.resync();
            }
            Input::Answer(answer) => self.answer(answer, now),
            Input::Skipped => self.in_flight = None,
            Input::HandlerDone {
                key,
                outcome,
                ended_by_service,
            } => self.handler_done(key, outcome, ended_by_service),
            Input::Stop { at } => self.stop(at),
            Input::Closed => self.exit(Exit::Closed),
        }
    }

    /// The next action due at `now`, if any. Call until `None`, then wait for an input or
    /// [`next_wake`](Self::next_wake). While a request is in flight only non-request actions
    /// come out.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Action> {
        if let Some(action) = self.actions.pop_front() {
            return Some(action);
        }
        if self.exited || self.in_flight.is_some() {
            return None;
        }
        if let Some(deadline) = self.stop_deadline {
            self.wind_down(now, deadline);
            if let Some(action) = self.actions.pop_front() {
                return Some(action);
            }
        } else if now >= self.next_resync {
            self.next_resync = later(now, self.settings.resync_interval);
            self.resync();
        }
        let request = self.next_request(now)?;
        Some(Action::Send(request))
    }

    /// When [`poll`](Self::poll) may next have something without a new input.
    pub(crate) fn next_wake(&self) -> Option<Instant> {
        if self.exited || self.in_flight.is_some() || !self.actions.is_empty() {
            return None;
        }
        let reports = self.held.values().filter_map(|held| match held.phase {
            Phase::Reporting(_) => held.pacer.not_before(),
            Phase::Running => held.check_wanted.then(|| held.pacer.not_before()).flatten(),
        });
        let wakes = reports.chain(match self.stop_deadline {
            Some(deadline) => Some(deadline),
            None => Some(self.next_resync),
        });
        let wakes = wakes.chain(self.acquisition.next_wake(self.room()));
        // A re-subscription waits for the acquisition's pacing only.
        let resubscribe = (self.resubscribe && self.stop_deadline.is_none())
            .then(|| self.acquisition.not_before())
            .flatten();
        wakes.chain(resubscribe).min()
    }

    /// When the stop grace ends, once stopped: requests sent after the stop must not wait
    /// past it.
    pub(crate) fn stop_deadline(&self) -> Option<Instant> {
        self.stop_deadline
    }

    fn room(&self) -> bool {
        let running = self
            .held
            .values()
            .filter(|held| matches!(held.phase, Phase::Running))
            .count();
        self.stop_deadline.is_none() && self.pool_room && running < self.settings.max_concurrent
    }

    fn is_known(&self, key: &Key) -> bool {
        self.held.contains_key(key) || self.finished.contains(key)
    }

    /// An event: checks the running executions it does not show as pending, and acquires when
    /// it shows an execution the runner does not know.
    fn event(&mut self, event: &Event) {
        match event {
            Event::JobsChanged(changed) => {
                let pending: Vec<Key> = changed
                    .jobs
                    .in_progress
                    .iter()
                    .chain(&changed.jobs.queued)
                    .map(Key::of_summary)
                    .collect();
                // The service lists at most 10 (15 with scheduling); a full list may leave out
                // executions that are still pending.
                let complete = pending.len() < 10;
                if complete {
                    self.check_running_except(|key| pending.contains(key));
                }
                if !complete || pending.iter().any(|key| !self.is_known(key)) {
                    self.acquisition.want();
                }
            }
            Event::NextJobChanged(next) => match &next.execution {
                Some(head) => {
                    let head = Key::of(head);
                    self.check_running_except(|key| *key == head);
                    if !self.is_known(&head) {
                        self.acquisition.want();
                    }
                }
                None => self.check_running_except(|_| false),
            },
        }
    }

    fn check_running_except(&mut self, pending: impl Fn(&Key) -> bool) {
        for (key, held) in &mut self.held {
            if matches!(held.phase, Phase::Running)
                && held.ended_by_service.is_none()
                && !pending(key)
            {
                held.check_wanted = true;
            }
        }
    }

    /// A reconnect or the resync interval: check everything, look for work.
    fn resync(&mut self) {
        self.check_running_except(|_| false);
        self.acquisition.want();
    }

    fn handler_done(
        &mut self,
        key: Key,
        outcome: Outcome,
        ended_by_service: Option<Option<JobStatus>>,
    ) {
        // A handler finished: there is room for the next execution at once.
        self.acquisition.room_freed();
        let Some(held) = self.held.get_mut(&key) else {
            return;
        };
        if held.ended_by_service.is_none() {
            held.ended_by_service = ended_by_service;
        }
        if let Some(status) = held.ended_by_service.clone() {
            self.end(&key, Ending::EndedByService(status));
            return;
        }
        held.check_wanted = false;
        held.pacer.reset();
        held.phase = Phase::Reporting(Report::new(outcome));
    }

    fn stop(&mut self, at: Instant) {
        if self.stop_deadline.is_some() {
            return;
        }
        self.stop_deadline = Some(later(at, self.settings.stop_grace));
        self.acquisition.stop();
        if self
            .held
            .values()
            .any(|held| matches!(held.phase, Phase::Running))
        {
            self.actions.push_back(Action::Stopping);
        }
    }

    /// After a stop: ends what can no longer be done before `deadline`, and exits once nothing
    /// is left.
    fn wind_down(&mut self, now: Instant, deadline: Instant) {
        let abandoned: Vec<Key> = self
            .held
            .iter()
            .filter(|(_, held)| {
                now >= deadline
                    || match held.phase {
                        // A report that may not go before the deadline will not go at all.
                        Phase::Reporting(_) => {
                            held.pacer.not_before().is_some_and(|at| at >= deadline)
                        }
                        Phase::Running => false,
                    }
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in abandoned {
            let ending = self.unfinished_ending(&key);
            self.end(&key, ending);
        }
        if self.held.is_empty() {
            self.exit(Exit::Stopped);
        }
    }

    /// Ends everything held and exits.
    fn exit(&mut self, exit: Exit) {
        if self.exited {
            return;
        }
        let keys: Vec<Key> = self.held.keys().cloned().collect();
        for key in keys {
            let ending = self.unfinished_ending(&key);
            self.end(&key, ending);
        }
        self.in_flight = None;
        self.exited = true;
        self.actions.push_back(Action::Exit(exit));
    }

    /// How an execution the runner gives up on (stop, close) ended: as the service said if it
    /// ended it; unconfirmed if a report of unknown fate went out; else left in progress.
    fn unfinished_ending(&self, key: &Key) -> Ending {
        match self.held.get(key) {
            Some(Held {
                ended_by_service: Some(status),
                ..
            }) => Ending::EndedByService(status.clone()),
            Some(Held {
                phase: Phase::Reporting(report),
                ..
            }) if report.maybe_applied() => Ending::Unconfirmed,
            _ => Ending::LeftInProgress,
        }
    }

    /// The execution is over for this runner: remembered, and reported to the hook once.
    fn end(&mut self, key: &Key, ending: Ending) {
        if self.held.remove(key).is_none() {
            return;
        }
        if self.finished.insert(key.clone()) {
            self.finished_order.push_back(key.clone());
        }
        while self.finished_order.len() > FINISHED_MEMORY {
            if let Some(old) = self.finished_order.pop_front() {
                self.finished.remove(&old);
            }
        }
        self.actions.push_back(Action::Ended {
            key: key.clone(),
            ending,
        });
    }

    /// The request to send now, in order: restore subscriptions, reports, checks, acquisition.
    fn next_request(&mut self, now: Instant) -> Option<Request> {
        let backoff = self.settings.backoff;
        if self.resubscribe && self.stop_deadline.is_none() && self.acquisition.ready(now) {
            self.resubscribe = false;
            self.in_flight = Some(InFlight::Resubscribe);
            return Some(Request::Resubscribe);
        }
        // A check after a long quiet spell goes at once, whatever came before.
        for held in self.held.values_mut() {
            if matches!(held.phase, Phase::Running) {
                held.pacer.forget_if_idle(now, backoff.max());
            }
        }
        // The report (or check) that has waited longest goes first.
        let due = self
            .held
            .iter()
            .filter(|(_, held)| match held.phase {
                Phase::Reporting(_) => true,
                Phase::Running => held.check_wanted && self.stop_deadline.is_none(),
            })
            .filter(|(_, held)| held.pacer.ready(now))
            .min_by_key(|(_, held)| held.pacer.not_before())
            .map(|(key, _)| key.clone());
        if let Some(key) = due
            && let Some(held) = self.held.get_mut(&key)
        {
            held.pacer.sent(now, &backoff, &mut self.jitter);
            return Some(match &held.phase {
                Phase::Reporting(report) => {
                    self.in_flight = Some(InFlight::Report(key.clone()));
                    report.request(key)
                }
                Phase::Running => {
                    held.check_wanted = false;
                    self.in_flight = Some(InFlight::Check(key.clone()));
                    Request::Describe {
                        key,
                        document: false,
                    }
                }
            });
        }
        let room = self.room();
        let holds_any = !self.held.is_empty();
        let (held, finished) = (&self.held, &self.finished);
        let step =
            self.acquisition
                .next(now, &backoff, &mut self.jitter, room, holds_any, |key| {
                    held.contains_key(key) || finished.contains(key)
                })?;
        let request = step.request();
        self.in_flight = Some(InFlight::Acquire(step));
        Some(request)
    }

    fn answer(&mut self, answer: Result<Reply, Error>, now: Instant) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        if matches!(
            &answer,
            Err(Error::InvalidInput(crate::InvalidInput::Closed(_)))
        ) {
            self.exit(Exit::Closed);
            return;
        }
        match in_flight {
            InFlight::Resubscribe => {
                if answer.is_err() {
                    self.resubscribe = true;
                    self.acquisition
                        .failed(now, &self.settings.backoff, &mut self.jitter);
                }
            }
            InFlight::Check(key) => self.checked(key, answer),
            InFlight::Report(key) => self.reported(key, answer),
            InFlight::Acquire(step) => {
                let (held, finished) = (&self.held, &self.finished);
                let outcome = self.acquisition.answer(
                    step,
                    answer,
                    now,
                    &self.settings.backoff,
                    &mut self.jitter,
                    |key| held.contains_key(key) || finished.contains(key),
                );
                if let Some(taken) = outcome {
                    self.take_on(taken);
                }
            }
        }
    }

    /// A check of a running execution came back.
    fn checked(&mut self, key: Key, answer: Result<Reply, Error>) {
        let Some(held) = self.held.get_mut(&key) else {
            return;
        };
        let ended = match answer {
            Ok(Reply::Execution(Some(execution))) => {
                execution.status.filter(JobStatus::is_terminal).map(Some)
            }
            Ok(_) => None,
            Err(error) if describe_refused_as_ended(&error) => Some(None),
            Err(error) => {
                log::debug!("checking {key} failed: {error}");
                if error.is_retryable() {
                    held.check_wanted = true;
                }
                None
            }
        };
        if let Some(status) = ended {
            log::info!("{key} was ended by the service; canceling its handler");
            held.ended_by_service = Some(status);
            self.actions.push_back(Action::Cancel(key));
        }
    }

    /// An answer to a terminal report (or its resolving describe) came back.
    fn reported(&mut self, key: Key, answer: Result<Reply, Error>) {
        let Some(Held {
            phase: Phase::Reporting(report),
            ..
        }) = self.held.get_mut(&key)
        else {
            return;
        };
        if let Some(ending) = report.answer(&key, answer) {
            self.end(&key, ending);
        }
    }

    /// Takes on an execution an acquisition found: runs its handler, or reports it at once
    /// when it cannot be read.
    fn take_on(&mut self, taken: acquire::Taken) {
        match taken {
            acquire::Taken::Run { execution, resumed } => {
                let key = Key::of(&execution);
                self.held.insert(
                    key,
                    Held {
                        phase: Phase::Running,
                        pacer: Pacer::new(),
                        check_wanted: false,
                        ended_by_service: None,
                    },
                );
                self.actions
                    .push_back(Action::StartHandler { execution, resumed });
            }
            acquire::Taken::Unreadable { key, why } => {
                log::warn!("{key} cannot be read ({why}); rejecting it");
                let outcome = Outcome::rejected().with_details(super::reason(&format!(
                    "the execution could not be read: {why}"
                )));
                self.held.insert(
                    key,
                    Held {
                        phase: Phase::Reporting(Report::new(outcome)),
                        pacer: Pacer::new(),
                        check_wanted: false,
                        ended_by_service: None,
                    },
                );
            }
        }
    }
}

/// `now + duration`, or a year on when that does not fit (longer than any run).
fn later(now: Instant, duration: Duration) -> Instant {
    now.checked_add(duration)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

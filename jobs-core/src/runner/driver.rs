//! The threaded driver around the [`Machine`]s: the loop of [`Runner::run`](super::Runner::run),
//! for one thing or for every thing of a gateway.
//!
//! One machine per thing. On the calling thread, the loop feeds each machine what happened
//! (events and wake-ups from the things' watchers, answers to its requests, handlers that
//! returned, a stop), carries out the machines' actions (hands requests to the request
//! threads, handlers to the handler threads, sets cancellation signals, calls the `on_ended`
//! hook under `catch_unwind`) and waits, with no fixed tick, on all its wake-ups at once until
//! the earliest machine timer. A bounded number of request threads send the requests with the
//! blocking [`Jobs`] API (each machine has at most one in flight), and a bounded pool of
//! handler threads runs the handlers. After a stop every request is bounded by what is left of
//! the stop grace.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Select, Sender};
use log::{info, warn};

use super::context::Cancellation;
use super::ended::{Ended, Ending, Key};
use super::machine::{Action, Exit, Input, Listed, Machine, Reply, Request};
use super::worker::{Done, Worker};
use super::{Config, StopHandle};
use crate::shared::Notice;
use crate::{
    Describe, Error, InvalidInput, Job, JobStatus, Jobs, StartNext, StepTimeout, Update, engine,
};

/// What the loop needs besides the machines.
pub(crate) struct Driver<'a> {
    pub(crate) config: Arc<Config>,
    pub(crate) step_timeout: Option<StepTimeout>,
    pub(crate) stop: &'a StopHandle,
    pub(crate) stop_rx: &'a Receiver<()>,
    pub(crate) stop_grace: Duration,
    pub(crate) handler_threads: usize,
    pub(crate) request_threads: usize,
}

/// One thing served by the loop.
struct Thing {
    jobs: Jobs,
    machine: Machine,
    /// Cancellation signals of its handlers that run.
    running: HashMap<Key, Cancellation>,
    epoch: u64,
    exit: Option<Exit>,
}

/// A request handed to the request threads.
struct Work {
    thing: usize,
    jobs: Jobs,
    request: Request,
    step_timeout: Option<StepTimeout>,
    /// The runner's stop, read when the request is sent: a request must not wait past the
    /// end of the stop grace, also one queued before the stop (the request threads take
    /// requests in order, at the connection's pace).
    stop: StopHandle,
    stop_grace: Duration,
}

/// The loop's own state.
struct Loop {
    things: Vec<Thing>,
    notices: Receiver<(usize, Notice)>,
    done_rx: Receiver<(usize, Done)>,
    answers: Receiver<(usize, Input)>,
    work: Sender<Work>,
    handlers: Sender<(usize, Worker)>,
    handlers_running: usize,
    stop_seen: bool,
}

impl Driver<'_> {
    /// Runs the loop until every machine has exited.
    pub(crate) fn run(&self, things: Vec<(Jobs, Machine)>) -> Result<(), Error> {
        let count = things.len();
        let (notice_tx, notices) = crossbeam_channel::bounded(1024 + 2 * count);
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let (answer_tx, answers) = crossbeam_channel::unbounded();
        let (work, work_rx) = crossbeam_channel::unbounded::<Work>();
        let (handlers, handler_rx) = crossbeam_channel::unbounded::<(usize, Worker)>();
        let things: Vec<Thing> = things
            .into_iter()
            .enumerate()
            .map(|(index, (jobs, machine))| {
                jobs.shared().watch(notice_tx.clone(), index);
                Thing {
                    epoch: jobs.client.router.epoch(),
                    jobs,
                    machine,
                    running: HashMap::new(),
                    exit: None,
                }
            })
            .collect();
        for n in 0..self.request_threads {
            let (work_rx, answer_tx) = (work_rx.clone(), answer_tx.clone());
            spawn(&format!("jobs-runner-requests-{n}"), move || {
                for work in work_rx {
                    let answer = send(&work);
                    if answer_tx.send((work.thing, answer)).is_err() {
                        return;
                    }
                }
            })?;
        }
        for n in 0..self.handler_threads {
            let (handler_rx, done_tx) = (handler_rx.clone(), done_tx.clone());
            spawn(&format!("jobs-runner-handlers-{n}"), move || {
                for (thing, worker) in handler_rx {
                    let done_tx = done_tx.clone();
                    worker.run(move |done| done_tx.send((thing, done)).is_ok());
                }
            })?;
        }
        let mut state = Loop {
            things,
            notices,
            done_rx,
            answers,
            work,
            handlers,
            handlers_running: 0,
            stop_seen: false,
        };
        loop {
            // Until nothing happens: an input taken after the last poll must be polled for
            // before the loop sleeps.
            let mut busy = true;
            while busy {
                busy = self.take_inputs(&mut state);
                for index in 0..state.things.len() {
                    busy |= self.poll_thing(&mut state, index);
                }
            }
            if state.things.iter().all(|thing| thing.exit.is_some()) {
                return outcome(&state);
            }
            self.wait(&mut state);
        }
    }

    /// Carries out every action one machine has now; true if there was any.
    fn poll_thing(&self, state: &mut Loop, index: usize) -> bool {
        let mut acted = false;
        loop {
            let room = state.handlers_running < self.handler_threads;
            let Some(thing) = state.things.get_mut(index) else {
                return acted;
            };
            if thing.exit.is_some() {
                return acted;
            }
            thing.machine.set_pool_room(room);
            let Some(action) = thing.machine.poll(Instant::now()) else {
                return acted;
            };
            acted = true;
            self.act(state, index, action);
        }
    }

    /// Feeds the machines everything that happened, without blocking; true if anything was.
    fn take_inputs(&self, state: &mut Loop) -> bool {
        let now = Instant::now();
        let mut took = false;
        if !state.stop_seen
            && let Some(at) = self.stop.requested_at()
        {
            state.stop_seen = true;
            took = true;
            for thing in &mut state.things {
                thing.machine.handle(Input::Stop { at }, now);
            }
        }
        while let Ok((index, done)) = state.done_rx.try_recv() {
            took = true;
            state.handlers_running = state.handlers_running.saturating_sub(1);
            if let Some(thing) = state.things.get_mut(index) {
                thing.running.remove(&done.key);
                thing.machine.handle(
                    Input::HandlerDone {
                        key: done.key,
                        outcome: done.outcome,
                        ended_by_service: done.ended_by_service,
                    },
                    now,
                );
            }
        }
        while let Ok((index, answer)) = state.answers.try_recv() {
            took = true;
            if let Some(thing) = state.things.get_mut(index) {
                thing.machine.handle(answer, now);
            }
        }
        while let Ok((index, notice)) = state.notices.try_recv() {
            took = true;
            if let (Some(thing), Notice::Event(event)) = (state.things.get_mut(index), notice) {
                thing.machine.handle(Input::Event(*event), now);
            }
        }
        for thing in &mut state.things {
            if thing.exit.is_none() && thing.jobs.shared().closed.load(Ordering::Acquire) {
                took = true;
                thing.machine.handle(Input::Closed, now);
            }
            let epoch = thing.jobs.client.router.epoch();
            if epoch != thing.epoch {
                took = true;
                thing.epoch = epoch;
                thing.machine.handle(Input::Reconnected, now);
            }
        }
        took
    }

    /// Carries out one action of thing `index`.
    fn act(&self, state: &mut Loop, index: usize, action: Action) {
        let Some(thing) = state.things.get_mut(index) else {
            return;
        };
        match action {
            Action::Send(request) => {
                let work = Work {
                    thing: index,
                    jobs: thing.jobs.clone(),
                    request,
                    step_timeout: self.step_timeout,
                    stop: self.stop.clone(),
                    stop_grace: self.stop_grace,
                };
                if state.work.send(work).is_err() {
                    thing.machine.handle(Input::Skipped, Instant::now());
                }
            }
            Action::StartHandler { execution, resumed } => {
                let key = Key::of(&execution);
                let cancellation = Cancellation::default();
                if thing.machine.stop_deadline().is_some() {
                    cancellation.stop();
                }
                let worker = Worker {
                    config: Arc::clone(&self.config),
                    jobs: thing.jobs.clone(),
                    execution,
                    resumed,
                    cancellation: cancellation.clone(),
                };
                thing.running.insert(key.clone(), cancellation);
                state.handlers_running += 1;
                if state.handlers.send((index, worker)).is_err() {
                    warn!("no handler thread is left for {key}");
                }
            }
            Action::Cancel(key) => {
                if let Some(cancellation) = thing.running.get(&key) {
                    cancellation.cancel();
                }
            }
            Action::Stopping => {
                for cancellation in thing.running.values() {
                    cancellation.stop();
                }
            }
            Action::Ended { key, ending } => {
                if thing.running.remove(&key).is_some() {
                    // Its thread is left to finish on its own; the slot is counted free.
                    state.handlers_running = state.handlers_running.saturating_sub(1);
                    warn!(
                        "abandoning the handler of {key}: it did not return within the stop grace"
                    );
                } else if ending == Ending::LeftInProgress {
                    info!("{key} left in progress: the runner stopped before it was reported");
                }
                if let Some(hook) = &self.config.on_ended {
                    let ended = Ended::new(thing.jobs.thing_name().clone(), key, ending);
                    if catch_unwind(AssertUnwindSafe(|| hook(&ended))).is_err() {
                        warn!("the on_ended hook panicked for {}", ended.job_id);
                    }
                }
            }
            Action::Exit(exit) => thing.exit = Some(exit),
        }
    }

    /// Waits until something happens or the earliest machine timer is due.
    fn wait(&self, state: &mut Loop) {
        let room = state.handlers_running < self.handler_threads;
        let wake = state
            .things
            .iter_mut()
            .filter(|thing| thing.exit.is_none())
            .filter_map(|thing| {
                thing.machine.set_pool_room(room);
                thing.machine.next_wake()
            })
            .min();
        let timeout = wake.map(|at| at.saturating_duration_since(Instant::now()));
        let mut select = Select::new();
        // Once the stop was seen its channel stays ready; it is not waited on again.
        if !state.stop_seen {
            select.recv(self.stop_rx);
        }
        select.recv(&state.notices);
        select.recv(&state.done_rx);
        select.recv(&state.answers);
        match timeout {
            Some(timeout) => {
                let _ = select.ready_timeout(timeout);
            }
            None => {
                select.ready();
            }
        }
    }
}

/// `run`'s result once every machine exited: `Ok` if the runner was stopped, else the closed
/// thing's error.
fn outcome(state: &Loop) -> Result<(), Error> {
    for thing in &state.things {
        if thing.exit == Some(Exit::Stopped) {
            return Ok(());
        }
    }
    match state.things.first() {
        Some(thing) => Err(InvalidInput::Closed(thing.jobs.thing_name().clone()).into()),
        None => Ok(()),
    }
}

fn spawn(name: &str, run: impl FnOnce() + Send + 'static) -> Result<(), Error> {
    thread::Builder::new()
        .name(name.to_owned())
        .spawn(run)
        .map(drop)
        .map_err(|error| crate::Error::Transport {
            operation: None,
            source: crate::TransportError::backend(error),
        })
}

/// Sends one request with the blocking API, waiting at most the thing's timeout (and, after a
/// stop, at most until the stop grace ends, also for a request queued before the stop: with no
/// time left it sends nothing).
fn send(work: &Work) -> Input {
    let stop_deadline = work
        .stop
        .requested_at()
        .and_then(|at| at.checked_add(work.stop_grace));
    let timeout = match stop_deadline {
        Some(deadline) => work
            .jobs
            .timeout()
            .min(deadline.saturating_duration_since(Instant::now())),
        None => work.jobs.timeout(),
    };
    if timeout.is_zero() {
        return Input::Skipped;
    }
    Input::Answer(answer(work, &work.jobs.with_timeout(timeout), timeout))
}

fn answer(work: &Work, jobs: &Jobs, timeout: Duration) -> Result<Reply, Error> {
    match work.request.clone() {
        Request::Resubscribe => {
            engine::ensure_subscribed(
                &jobs.client,
                jobs.shared(),
                None,
                engine::Deadline::after(timeout),
            )?;
            Ok(Reply::Subscribed)
        }
        Request::List => Ok(Reply::Listed(
            jobs.list()?
                .iter()
                .map(|job| Listed {
                    key: Key {
                        job_id: job.id().clone(),
                        number: job.execution_number(),
                    },
                    in_progress: job.status() == Some(&JobStatus::InProgress),
                })
                .collect(),
        )),
        Request::StartNext => {
            let mut options = StartNext::new();
            if let Some(step) = work.step_timeout {
                options = options.step_timeout(step);
            }
            let job = jobs.start_next_with(options)?;
            Ok(Reply::Execution(job.map(Job::into_execution)))
        }
        Request::Start(key) => {
            let mut update = numbered(Update::new(JobStatus::InProgress), &key);
            if let Some(step) = work.step_timeout {
                update = update.step_timeout(step);
            }
            Job::numbered(jobs.clone(), key.job_id, key.number).update_with(update)?;
            Ok(Reply::Updated)
        }
        Request::Describe { key, document } => {
            let mut describe = Describe::new().include_job_document(document);
            if let Some(number) = key.number {
                describe = describe.execution_number(number);
            }
            let mut job = Job::numbered(jobs.clone(), key.job_id, key.number);
            job.describe_with(describe)?;
            Ok(Reply::Execution(Some(job.into_execution())))
        }
        Request::Report {
            key,
            status,
            details,
        } => {
            let mut update = numbered(Update::new(status), &key);
            if let Some(details) = details {
                update = update.status_details(details);
            }
            Job::numbered(jobs.clone(), key.job_id, key.number).update_with(update)?;
            Ok(Reply::Updated)
        }
    }
}

/// An update that names `key`'s execution number.
fn numbered(update: Update, key: &Key) -> Update {
    match key.number {
        Some(number) => update.execution_number(number),
        None => update,
    }
}

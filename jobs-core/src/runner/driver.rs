//! The threaded driver around the [`Machine`]: the loop of [`Runner::run`](super::Runner::run).
//!
//! On the calling thread it feeds the machine what happened (events and wake-ups from the
//! thing's watcher, handlers that returned, a stop), carries out the machine's actions (sends
//! each request with the blocking [`Jobs`] API, starts handler threads, sets cancellation
//! signals, calls the `on_ended` hook under `catch_unwind`) and waits, with no fixed tick, on
//! all its wake-ups at once until the machine's next timer. After a stop every request is
//! bounded by what is left of the stop grace.

use std::collections::HashMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
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

/// What the loop needs besides the machine.
pub(crate) struct Driver<'a> {
    pub(crate) config: Arc<Config>,
    pub(crate) jobs: &'a Jobs,
    pub(crate) step_timeout: Option<StepTimeout>,
    pub(crate) stop: &'a StopHandle,
    pub(crate) stop_rx: &'a Receiver<()>,
}

/// The loop's own state.
struct Loop {
    machine: Machine,
    notices: Receiver<Notice>,
    done_tx: Sender<Done>,
    done_rx: Receiver<Done>,
    /// Cancellation signals of the handlers that run.
    running: HashMap<Key, Cancellation>,
    epoch: u64,
    stop_seen: bool,
}

impl Driver<'_> {
    /// Runs the loop until the machine exits.
    pub(crate) fn run(&self, machine: Machine) -> Result<(), Error> {
        let shared = self.jobs.shared();
        let (done_tx, done_rx) = crossbeam_channel::unbounded();
        let mut state = Loop {
            machine,
            notices: shared.watch(),
            done_tx,
            done_rx,
            running: HashMap::new(),
            epoch: self.jobs.client.router.epoch(),
            stop_seen: false,
        };
        loop {
            self.take_inputs(&mut state);
            while let Some(action) = state.machine.poll(Instant::now()) {
                if let Some(exit) = self.act(&mut state, action) {
                    return match exit {
                        Exit::Stopped => Ok(()),
                        Exit::Closed => {
                            Err(InvalidInput::Closed(self.jobs.thing_name().clone()).into())
                        }
                    };
                }
                self.take_inputs(&mut state);
            }
            self.wait(&state);
        }
    }

    /// Feeds the machine everything that happened without blocking.
    fn take_inputs(&self, state: &mut Loop) {
        let now = Instant::now();
        if !state.stop_seen
            && let Some(at) = self.stop.requested_at()
        {
            state.stop_seen = true;
            state.machine.handle(Input::Stop { at }, now);
        }
        while let Ok(done) = state.done_rx.try_recv() {
            state.running.remove(&done.key);
            state.machine.handle(
                Input::HandlerDone {
                    key: done.key,
                    outcome: done.outcome,
                    ended_by_service: done.ended_by_service,
                },
                now,
            );
        }
        while let Ok(notice) = state.notices.try_recv() {
            if let Notice::Event(event) = notice {
                state.machine.handle(Input::Event(*event), now);
            }
        }
        let shared = self.jobs.shared();
        if shared.closed.load(Ordering::Acquire) {
            state.machine.handle(Input::Closed, now);
        }
        let epoch = self.jobs.client.router.epoch();
        if epoch != state.epoch {
            state.epoch = epoch;
            state.machine.handle(Input::Reconnected, now);
        }
    }

    /// Carries out one action; `Some` when the loop ends.
    fn act(&self, state: &mut Loop, action: Action) -> Option<Exit> {
        match action {
            Action::Send(request) => {
                let now = Instant::now();
                let timeout = match state.machine.stop_deadline() {
                    Some(deadline) => self
                        .jobs
                        .timeout()
                        .min(deadline.saturating_duration_since(now)),
                    None => self.jobs.timeout(),
                };
                let input = if timeout.is_zero() {
                    Input::Skipped
                } else {
                    Input::Answer(self.send(request, timeout))
                };
                state.machine.handle(input, Instant::now());
            }
            Action::StartHandler { execution, resumed } => {
                let key = Key::of(&execution);
                let cancellation = Cancellation::default();
                let worker = Worker {
                    config: Arc::clone(&self.config),
                    jobs: self.jobs.clone(),
                    execution,
                    resumed,
                    cancellation: cancellation.clone(),
                };
                let tx = state.done_tx.clone();
                let spawned = thread::Builder::new()
                    .name(format!("jobs-runner-{}", key.job_id))
                    .spawn(move || worker.run(tx));
                match spawned {
                    Ok(_) => {
                        if state.machine.stop_deadline().is_some() {
                            cancellation.stop();
                        }
                        state.running.insert(key, cancellation);
                    }
                    Err(error) => {
                        warn!("could not start a thread for {key}: {error}");
                        state
                            .machine
                            .handle(Input::SpawnFailed(key), Instant::now());
                    }
                }
            }
            Action::Cancel(key) => {
                if let Some(cancellation) = state.running.get(&key) {
                    cancellation.cancel();
                }
            }
            Action::Stopping => {
                for cancellation in state.running.values() {
                    cancellation.stop();
                }
            }
            Action::Ended { key, ending } => {
                if state.running.remove(&key).is_some() {
                    warn!(
                        "abandoning the handler of {key}: it did not return within the stop grace"
                    );
                } else if ending == Ending::LeftInProgress {
                    info!("{key} left in progress: the runner stopped before it was reported");
                }
                if let Some(hook) = &self.config.on_ended {
                    let ended = Ended::new(key, ending);
                    if catch_unwind(AssertUnwindSafe(|| hook(&ended))).is_err() {
                        warn!("the on_ended hook panicked for {}", ended.job_id);
                    }
                }
            }
            Action::Exit(exit) => return Some(exit),
        }
        None
    }

    /// Sends one request with the blocking API, waiting at most `timeout`.
    fn send(&self, request: Request, timeout: Duration) -> Result<Reply, Error> {
        let jobs = self.jobs.with_timeout(timeout);
        match request {
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
                if let Some(step) = self.step_timeout {
                    options = options.step_timeout(step);
                }
                let job = jobs.start_next_with(options)?;
                Ok(Reply::Execution(job.map(Job::into_execution)))
            }
            Request::Start(key) => {
                let mut update = numbered(Update::new(JobStatus::InProgress), &key);
                if let Some(step) = self.step_timeout {
                    update = update.step_timeout(step);
                }
                Job::numbered(jobs, key.job_id, key.number).update_with(update)?;
                Ok(Reply::Updated)
            }
            Request::Describe { key, document } => {
                let mut describe = Describe::new().include_job_document(document);
                if let Some(number) = key.number {
                    describe = describe.execution_number(number);
                }
                let mut job = Job::numbered(jobs, key.job_id, key.number);
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
                Job::numbered(jobs, key.job_id, key.number).update_with(update)?;
                Ok(Reply::Updated)
            }
        }
    }

    /// Waits until something happens or the machine's next timer is due.
    fn wait(&self, state: &Loop) {
        let wake = state.machine.next_wake();
        let timeout = wake.map(|at| at.saturating_duration_since(Instant::now()));
        // Once the stop was seen its channel stays ready; it is not waited on again.
        let never = crossbeam_channel::never();
        let stop_rx = if state.stop_seen {
            &never
        } else {
            self.stop_rx
        };
        wait_for_any(stop_rx, &state.notices, &state.done_rx, timeout);
    }
}

/// An update that names `key`'s execution number.
fn numbered(update: Update, key: &Key) -> Update {
    match key.number {
        Some(number) => update.execution_number(number),
        None => update,
    }
}

/// Blocks until one of the channels is ready (without taking anything) or `timeout` passes
/// (`None`: no timeout).
fn wait_for_any(
    stop: &Receiver<()>,
    notices: &Receiver<Notice>,
    done: &Receiver<Done>,
    timeout: Option<Duration>,
) {
    let mut select = crossbeam_channel::Select::new();
    select.recv(stop);
    select.recv(notices);
    select.recv(done);
    match timeout {
        Some(timeout) => {
            let _ = select.ready_timeout(timeout);
        }
        None => {
            select.ready();
        }
    }
}

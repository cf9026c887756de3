//! One device: a thread that runs the device's [`Runner`], builds a new one after each crash or
//! reboot (the old one stopped, its running handlers abandoned), and the handler the runners
//! run, which records every call and side effect in the ledger.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};
use jobs_core::runner::{Backoff, Context, Ended, Ending, HandlerError, Outcome, Runner};
use jobs_core::{Jobs, StatusDetails, StepTimeout};
use parking_lot::Mutex;

use crate::bounded::{self, Bounded};
use crate::chaos::Outages;
use crate::control::{Command, EndBy};
use crate::dice::Dice;
use crate::ledger::{Cause, Generation, Key, Ledger, Returned, Teardown};
use crate::plan::{Act, Doc, FAILURE, OPERATION, Plan};

/// The timeout of every `Jobs` call of the devices.
pub(crate) const JOBS_TIMEOUT: Duration = Duration::from_secs(2);

/// How much longer than its documented bound (stop grace + one `Jobs` timeout) a runner may
/// take to return after a stop before the soak declares it stuck.
const JOIN_SLACK: Duration = Duration::from_secs(5);

/// The longest a handler waits for a cancel, a timeout or an outage.
pub(crate) const HANDLER_WAIT: Duration = Duration::from_secs(60);

/// The payload of the handlers' deliberate panics.
const DELIBERATE_PANIC: &str = "soak: deliberate panic";

/// What the devices and their handlers share.
pub(crate) struct Shared {
    pub(crate) ledger: Arc<Mutex<Ledger>>,
    pub(crate) simulator: Arc<jobs_mock::service::Simulator>,
    pub(crate) plan: Arc<Plan>,
    pub(crate) outages: Arc<Outages>,
    pub(crate) control: Sender<Command>,
    /// Commands sent to the control thread and not yet carried out.
    pub(crate) control_pending: Arc<AtomicUsize>,
    /// Disconnected at the final release: abandoned handlers still waiting return.
    pub(crate) release: Receiver<()>,
    pub(crate) generations: AtomicU64,
    /// OTA mode: the file server and the destinations.
    pub(crate) ota: Option<Arc<crate::ota::Ota>>,
}

impl Shared {
    pub(crate) fn command(&self, command: Command) {
        self.control_pending.fetch_add(1, Ordering::AcqRel);
        if self.control.send(command).is_err() {
            self.control_pending.fetch_sub(1, Ordering::AcqRel);
            self.ledger
                .lock()
                .problem("the control thread is gone".to_owned());
        }
    }
}

/// A device thread.
pub(crate) struct Device {
    reboot: Sender<()>,
    thread: Bounded<()>,
}

impl Device {
    /// Starts the device's first runner; the device runs until `finish` is disconnected.
    pub(crate) fn start(
        jobs: Jobs,
        shared: Arc<Shared>,
        finish: Receiver<()>,
        dice: Dice,
    ) -> Result<Self, String> {
        let (reboot, reboots) = crossbeam_channel::bounded(1);
        let name = format!("soak-device-{}", jobs.thing_name());
        let thread = bounded::spawn(name, move || {
            run_device(&jobs, &shared, &finish, &reboots, dice);
        })?;
        Ok(Self { reboot, thread })
    }

    /// Stops the device's runner and builds a new one, as a reboot would.
    pub(crate) fn reboot(&self) {
        // A reboot already asked for, or a device that ended, needs none.
        let _ = self.reboot.try_send(());
    }

    /// Waits for the device thread (after `finish` was disconnected).
    pub(crate) fn join_within(self, timeout: Duration) -> Result<(), String> {
        self.thread.join_within(timeout)
    }
}

/// The longest stop grace a runner gets (each gets a random one from 0 to this).
const MAX_GRACE: Duration = Duration::from_millis(400);

/// The longest a device thread may take to stop its runner: the longest grace, one `Jobs`
/// timeout, the slack and half a second for the device's own bookkeeping.
pub(crate) const DEVICE_STOP_BOUND: Duration = MAX_GRACE
    .saturating_add(JOBS_TIMEOUT)
    .saturating_add(JOIN_SLACK)
    .saturating_add(Duration::from_millis(500));

fn run_device(
    jobs: &Jobs,
    shared: &Arc<Shared>,
    finish: &Receiver<()>,
    reboots: &Receiver<()>,
    mut dice: Dice,
) {
    let thing = jobs.thing_name().to_string();
    let (crash_tx, crashes) = crossbeam_channel::unbounded::<Generation>();
    loop {
        let generation = shared.generations.fetch_add(1, Ordering::AcqRel) + 1;
        let grace = dice.millis(0, u64::try_from(MAX_GRACE.as_millis()).unwrap_or(0));
        let (torn_down_tx, torn_down) = crossbeam_channel::bounded::<()>(0);
        let env = Arc::new(Env {
            thing: thing.clone(),
            generation,
            shared: Arc::clone(shared),
            crash: crash_tx.clone(),
            torn_down,
            dice: Mutex::new(dice.fork()),
        });
        let runner = match build_runner(jobs, &env, grace) {
            Ok(runner) => runner,
            Err(error) => {
                shared
                    .ledger
                    .lock()
                    .problem(format!("building a runner for {thing} failed: {error}"));
                return;
            }
        };
        let stop = runner.stop_handle();
        let running =
            match bounded::spawn(format!("soak-runner-{generation}"), move || runner.run()) {
                Ok(running) => running,
                Err(error) => {
                    shared.ledger.lock().problem(error);
                    return;
                }
            };
        let cause = loop {
            select! {
                recv(crashes) -> crashed => if crashed == Ok(generation) { break Cause::Crash },
                recv(reboots) -> _ => break Cause::Reboot,
                recv(finish) -> _ => break Cause::Final,
            }
        };
        let stopped_at = Instant::now();
        stop.stop();
        let bound = grace + JOBS_TIMEOUT + JOIN_SLACK;
        match running.join_within(bound) {
            Ok(Ok(())) => {}
            Ok(Err(error)) => shared.ledger.lock().runner_errors.push(format!(
                "the runner of {thing} (generation {generation}) returned {error}"
            )),
            Err(stuck) => {
                shared.ledger.lock().problem(format!(
                    "the runner of {thing} (generation {generation}), stopped by a {cause}: {stuck}"
                ));
                return;
            }
        }
        shared.ledger.lock().teardowns.push(Teardown {
            generation,
            cause,
            stopped_at,
            grace,
            took: stopped_at.elapsed(),
        });
        drop(torn_down_tx);
        if cause == Cause::Final {
            return;
        }
    }
}

/// What one runner's handler and hook know.
pub(crate) struct Env {
    thing: String,
    pub(crate) generation: Generation,
    pub(crate) shared: Arc<Shared>,
    /// Tears down the runner of this generation (a crash on purpose).
    pub(crate) crash: Sender<Generation>,
    /// Disconnected once this runner's `run` returned.
    pub(crate) torn_down: Receiver<()>,
    pub(crate) dice: Mutex<Dice>,
}

fn build_runner(jobs: &Jobs, env: &Arc<Env>, grace: Duration) -> Result<Runner, jobs_core::Error> {
    let handler_env = Arc::clone(env);
    let hook_env = Arc::clone(env);
    Runner::builder(jobs)
        .backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .resync_interval(Duration::from_secs(2))
        .max_concurrent(2)
        .stop_grace(grace)
        .handler(OPERATION, move |ctx| work(ctx, &handler_env))
        .on_ended(move |ended| on_ended(ended, &hook_env))
        .build()
}

fn key_of(thing: &str, job: &jobs_core::JobId, number: Option<jobs_core::ExecutionNumber>) -> Key {
    Key {
        thing: thing.to_owned(),
        job: job.to_string(),
        number: number.map_or(0, |n| n.get()),
    }
}

/// The hook: records the ending, and queues the re-run of a re-run job once its execution 1
/// is over.
fn on_ended(ended: &Ended, env: &Env) {
    let key = key_of(&env.thing, &ended.job_id, ended.execution_number);
    let rerun = ended.ending != Ending::LeftInProgress
        && key.number == 1
        && env
            .shared
            .plan
            .get(&key.job)
            .and_then(|plan| plan.rerun.then(|| plan.run(1)).flatten())
            .is_some_and(|run| run.act != Act::Cancel);
    env.shared
        .ledger
        .lock()
        .endings
        .push(crate::ledger::EndRecord {
            key: key.clone(),
            generation: env.generation,
            ending: ended.ending.clone(),
            at: Instant::now(),
        });
    if rerun {
        let after = env.dice.lock().millis(0, 500);
        env.shared.command(Command::Rerun { key, after });
    }
}

/// The handler. Records the call and does the side effect (unless it resumes an execution
/// whose effect is already done), then acts as the plan says.
fn work(ctx: &Context, env: &Env) -> Result<Outcome, HandlerError> {
    let shared = &env.shared;
    let key = key_of(&env.thing, ctx.job_id(), ctx.execution_number());
    if key.number == 0 {
        shared
            .ledger
            .lock()
            .problem_about(&key, format!("{key}: the handler got no execution number"));
    }
    let doc: Doc = ctx.parse_document()?;
    let Some(run) = shared
        .plan
        .get(&key.job)
        .filter(|plan| plan.runs == doc.runs)
        .and_then(|plan| plan.run(key.number))
        .cloned()
    else {
        shared
            .ledger
            .lock()
            .problem_about(&key, format!("{key}: the plan has no such execution"));
        return Err("no such execution in the plan".into());
    };
    let call = shared
        .ledger
        .lock()
        .start_call(&key, env.generation, ctx.resumed());
    let returned = |how| shared.ledger.lock().returned(call, how);

    if run.act == Act::Download {
        return crate::ota::handler::download(ctx, env, &key, &doc, run.crash, call);
    }
    if run.crash && crash(&key, env) {
        returned(Returned::Released);
        // Never reported: the runner that ran this handler is gone.
        return Ok(Outcome::rejected());
    }
    match run.act {
        Act::Cancel | Act::Remove | Act::Delete => {
            if shared.ledger.lock().cancels_asked.insert(key.clone()) {
                let after = env.dice.lock().millis(0, 1500);
                let rerun = shared.plan.get(&key.job).is_some_and(|plan| plan.rerun);
                let how = match run.act {
                    Act::Remove => EndBy::Remove,
                    Act::Delete => EndBy::Delete,
                    _ => EndBy::Cancel,
                };
                shared.command(Command::Cancel {
                    key,
                    after,
                    rerun,
                    how,
                });
            }
            returned(wait_until_ended(ctx, env));
            return Ok(Outcome::failed());
        }
        Act::Timeout => {
            if !arm_timer(ctx, env) {
                returned(Returned::TimerNotArmed);
                return Ok(Outcome::failed());
            }
            returned(wait_until_ended(ctx, env));
            return Ok(Outcome::failed());
        }
        Act::Succeed | Act::Fail | Act::Panic | Act::Reject | Act::CancelLate | Act::Download => {}
    }
    if let Some(kind) = run.outage {
        shared.outages.wait_down(kind, HANDLER_WAIT);
    } else {
        let _ = shared.release.recv_timeout(Duration::from_millis(run.ms));
    }
    returned(Returned::Outcome);
    if run.act == Act::CancelLate && !ctx.is_stopping() {
        cancel_while_down(&key, shared);
    }
    match run.act {
        Act::Fail => Err(FAILURE.into()),
        // Unwinds without the panic hook's message; the runner catches it as any panic.
        Act::Panic => std::panic::resume_unwind(Box::new(DELIBERATE_PANIC)),
        Act::Reject => Ok(Outcome::rejected()),
        _ => Ok(Outcome::succeeded()),
    }
}

/// Cancels the execution (CancelJobExecution, force) if the broker is down, so the report the
/// runner is about to send can only reach the service after the cancel; records whether it
/// did. Only the first handler of the execution whose runner is not stopping tries.
fn cancel_while_down(key: &Key, shared: &Shared) {
    if !shared.ledger.lock().cancels_asked.insert(key.clone()) {
        return;
    }
    let made = shared.outages.is_down() && {
        match crate::control::cancel(&shared.simulator, key) {
            Ok(()) => true,
            Err(problem) => {
                shared.ledger.lock().problem_about(key, problem);
                false
            }
        }
    };
    let mut ledger = shared.ledger.lock();
    let entry = ledger.late_cancels.entry(key.clone()).or_default();
    *entry |= made;
}

/// Crashes the execution's first run: tears down the runner with this handler still running,
/// and holds the handler until that runner's `run` returned (as the process would be gone),
/// then for a while or until the final release. False if the execution already crashed once.
fn crash(key: &Key, env: &Env) -> bool {
    {
        let mut ledger = env.shared.ledger.lock();
        if ledger.crashed.contains_key(key) {
            return false;
        }
        ledger.crashed.insert(key.clone(), env.generation);
    }
    let _ = env.crash.send(env.generation);
    // Bounded: the device declares a runner stuck well before this.
    let _ = env.torn_down.recv_timeout(HANDLER_WAIT);
    let hold = {
        let mut dice = env.dice.lock();
        if dice.chance(50) {
            dice.millis(0, 3000)
        } else {
            HANDLER_WAIT
        }
    };
    let _ = env.shared.release.recv_timeout(hold);
    true
}

/// Starts a 1-minute step timer (retrying through outages); false if it could not.
fn arm_timer(ctx: &Context, env: &Env) -> bool {
    let (Ok(details), Ok(step)) = (
        StatusDetails::from_pairs([("step", "timed")]),
        StepTimeout::minutes(1),
    ) else {
        return false;
    };
    let deadline = Instant::now() + HANDLER_WAIT;
    while Instant::now() < deadline {
        match ctx.progress_with_step_timeout(details.clone(), step) {
            Ok(()) => {
                env.shared.ledger.lock().timers_armed += 1;
                return true;
            }
            // The service ended it meanwhile (an earlier attempt armed the timer and it fired).
            Err(_) if ctx.is_canceled() => return true,
            Err(_) => {
                if env.shared.release.recv_timeout(Duration::from_millis(300))
                    == Err(RecvTimeoutError::Disconnected)
                {
                    return false;
                }
            }
        }
    }
    false
}

/// Waits until the service ends the execution (the cancellation signal), or the final
/// release. Ignores the runner's stop, as a handler that cannot be interrupted; gives up after
/// [`HANDLER_WAIT`] unless its runner stopped (then it is abandoned: no runner will set the
/// signal, and it waits for the release).
fn wait_until_ended(ctx: &Context, env: &Env) -> Returned {
    let deadline = Instant::now() + HANDLER_WAIT;
    loop {
        if ctx.is_canceled() {
            return Returned::Canceled;
        }
        if Instant::now() >= deadline && !ctx.is_stopping() {
            return Returned::GaveUp;
        }
        if env.shared.release.recv_timeout(Duration::from_millis(20))
            == Err(RecvTimeoutError::Disconnected)
        {
            return Returned::Released;
        }
    }
}

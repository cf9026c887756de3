//! The cloud side of the chaos: a thread that cancels running executions (CancelJobExecution
//! with `force`) and re-targets continuous jobs (AssociateTargetsWithJob), each after a delay.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use jobs_core::{JobId, ThingName};
use jobs_mock::service::Simulator;
use jobs_mock::service::api::{AssociateTargetsWithJob, CancelJobExecution, DeleteJobExecution};
use parking_lot::Mutex;

use crate::bounded::{self, Bounded};
use crate::ledger::{Key, Ledger};

/// How often a re-run waiting for execution 1 to end looks again.
const RECHECK: Duration = Duration::from_millis(200);

/// How the soak ends a running execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EndBy {
    /// CancelJobExecution with `force`: `CANCELED`.
    Cancel,
    /// The thing removed from the job's targets: `REMOVED`.
    Remove,
    /// DeleteJobExecution with `force`: gone.
    Delete,
}

/// What the control thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Cancel this running execution after `after`; then, for a re-run job, queue its
    /// execution 2 at once (while execution 1's handler may still run).
    Cancel {
        key: Key,
        after: Duration,
        rerun: bool,
        /// How the execution is ended.
        how: EndBy,
    },
    /// Queue execution 2 of this job on this thing after `after`, once the service ended
    /// execution 1 (asked again by each ending of execution 1 that is not `LeftInProgress`;
    /// done once).
    Rerun { key: Key, after: Duration },
    /// Stop; commands still waiting are problems.
    Quit,
}

/// Starts the control thread.
pub(crate) fn start(
    simulator: Arc<Simulator>,
    ledger: Arc<Mutex<Ledger>>,
    commands: Receiver<Command>,
    pending: Arc<AtomicUsize>,
) -> Result<Bounded<()>, String> {
    bounded::spawn("soak-control", move || {
        let mut due: Vec<(Instant, Command)> = Vec::new();
        let mut rerun = HashSet::new();
        loop {
            let now = Instant::now();
            let next = due.iter().map(|(at, _)| *at).min();
            let wait = next.map_or(Duration::from_secs(3600), |at| {
                at.saturating_duration_since(now)
            });
            match commands.recv_timeout(wait) {
                Ok(Command::Quit) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(command) => {
                    let after = match &command {
                        Command::Cancel { after, .. } | Command::Rerun { after, .. } => *after,
                        Command::Quit => Duration::ZERO,
                    };
                    due.push((Instant::now() + after, command));
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            let (ready, later): (Vec<_>, Vec<_>) = due.into_iter().partition(|(at, _)| *at <= now);
            due = later;
            for (_, command) in ready {
                match carry_out(&simulator, &ledger, &mut rerun, command) {
                    Some(again) => due.push((Instant::now() + RECHECK, again)),
                    None => {
                        pending.fetch_sub(1, Ordering::AcqRel);
                    }
                }
            }
        }
        for (_, command) in due {
            ledger
                .lock()
                .problem(format!("a command was never carried out: {command:?}"));
        }
    })
}

fn ids(key: &Key) -> Result<(JobId, ThingName), String> {
    Ok((
        JobId::new(key.job.clone()).map_err(|e| e.to_string())?,
        ThingName::new(key.thing.clone()).map_err(|e| e.to_string())?,
    ))
}

/// Carries out `command`; returns it if it must wait (execution 1 of a re-run not ended yet).
fn carry_out(
    simulator: &Simulator,
    ledger: &Mutex<Ledger>,
    rerun: &mut HashSet<Key>,
    command: Command,
) -> Option<Command> {
    let about = match &command {
        Command::Cancel { key, .. } | Command::Rerun { key, .. } => Some(key.clone()),
        Command::Quit => None,
    };
    let result = match command {
        Command::Cancel {
            key,
            rerun: again,
            how,
            ..
        } => {
            let ended = match how {
                EndBy::Cancel => cancel(simulator, &key).map(|()| ledger.lock().cancels_made += 1),
                EndBy::Remove => {
                    remove_thing(simulator, &key).map(|()| ledger.lock().removals_made += 1)
                }
                EndBy::Delete => delete(simulator, &key).map(|()| {
                    ledger.lock().deletions_made.insert(key.clone());
                }),
            };
            ended.and_then(|()| {
                if again && rerun.insert(key.clone()) {
                    associate(simulator, ledger, &key)
                } else {
                    Ok(())
                }
            })
        }
        Command::Rerun { key, after } => {
            if rerun.contains(&key) {
                // Another ending of execution 1 asked already.
                return None;
            }
            let ended = ids(&key).map(|(job, thing)| {
                simulator
                    .execution(&thing, &job)
                    .is_none_or(|e| e.execution_number != key.number || e.status.is_terminal())
            });
            match ended {
                // An unconfirmed report: wait until the service ended execution 1.
                Ok(false) => return Some(Command::Rerun { key, after }),
                Ok(true) => {
                    rerun.insert(key.clone());
                    associate(simulator, ledger, &key)
                }
                Err(problem) => Err(problem),
            }
        }
        Command::Quit => Ok(()),
    };
    if let Err(problem) = result {
        match &about {
            Some(key) => ledger.lock().problem_about(key, problem),
            None => ledger.lock().problem(problem),
        }
    }
    None
}

/// Cancels the execution with CancelJobExecution (force).
pub(crate) fn cancel(simulator: &Simulator, key: &Key) -> Result<(), String> {
    let (job, thing) = ids(key)?;
    let mut request = CancelJobExecution::new(job, thing);
    request.force = Some(true);
    simulator
        .call(request)
        .map(|_| ())
        .map_err(|error| format!("CancelJobExecution of {key} was refused: {error}"))
}

/// Deletes the execution with DeleteJobExecution (force).
fn delete(simulator: &Simulator, key: &Key) -> Result<(), String> {
    let (job, thing) = ids(key)?;
    let mut request = DeleteJobExecution::new(job, thing, key.number);
    request.force = Some(true);
    simulator
        .call(request)
        .map(|_| ())
        .map_err(|error| format!("DeleteJobExecution of {key} was refused: {error}"))
}

/// Removes the thing from the job's targets: its execution becomes `REMOVED`.
fn remove_thing(simulator: &Simulator, key: &Key) -> Result<(), String> {
    let (job, thing) = ids(key)?;
    simulator.remove_thing(&job, &thing).map_err(|error| {
        format!(
            "removing {} from {} was refused: {error}",
            key.thing, key.job
        )
    })
}

fn associate(simulator: &Simulator, ledger: &Mutex<Ledger>, key: &Key) -> Result<(), String> {
    let (job, thing) = ids(key)?;
    simulator
        .call(AssociateTargetsWithJob::new(
            job.clone(),
            vec![crate::plan::thing_arn(thing.as_str())],
        ))
        .map_err(|error| format!("AssociateTargetsWithJob of {key} was refused: {error}"))?;
    match simulator.execution(&thing, &job) {
        Some(latest) if latest.execution_number == key.number + 1 => {
            ledger
                .lock()
                .reruns_queued
                .insert(key.clone(), Instant::now());
            Ok(())
        }
        latest => Err(format!(
            "AssociateTargetsWithJob of {key} queued no new execution (latest: {:?})",
            latest.map(|e| (e.execution_number, e.status))
        )),
    }
}

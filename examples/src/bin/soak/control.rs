//! The cloud side of the chaos: a thread that cancels running executions (CancelJobExecution
//! with `force`) and re-targets continuous jobs (AssociateTargetsWithJob), each after a delay.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError};
use jobs_core::{JobId, ThingName};
use jobs_mock::service::Simulator;
use jobs_mock::service::api::{AssociateTargetsWithJob, CancelJobExecution};
use parking_lot::Mutex;

use crate::bounded::{self, Bounded};
use crate::ledger::{Key, Ledger};

/// What the control thread is asked to do.
#[derive(Debug)]
pub(crate) enum Command {
    /// Cancel this running execution after `after`; then, for a re-run job, queue its
    /// execution 2 at once (while execution 1's handler may still run).
    Cancel {
        key: Key,
        after: Duration,
        rerun: bool,
    },
    /// Queue execution 2 of this job on this thing after `after` (execution 1 ended).
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
                carry_out(&simulator, &ledger, command);
                pending.fetch_sub(1, Ordering::AcqRel);
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

fn carry_out(simulator: &Simulator, ledger: &Mutex<Ledger>, command: Command) {
    let result = match command {
        Command::Cancel { key, rerun, .. } => cancel(simulator, ledger, &key).and_then(|()| {
            if rerun {
                associate(simulator, ledger, &key)
            } else {
                Ok(())
            }
        }),
        Command::Rerun { key, .. } => associate(simulator, ledger, &key),
        Command::Quit => Ok(()),
    };
    if let Err(problem) = result {
        ledger.lock().problem(problem);
    }
}

fn cancel(simulator: &Simulator, ledger: &Mutex<Ledger>, key: &Key) -> Result<(), String> {
    let (job, thing) = ids(key)?;
    let mut request = CancelJobExecution::new(job, thing);
    request.force = Some(true);
    simulator
        .call(request)
        .map_err(|error| format!("CancelJobExecution of {key} was refused: {error}"))?;
    ledger.lock().cancels_made += 1;
    Ok(())
}

fn associate(simulator: &Simulator, ledger: &Mutex<Ledger>, key: &Key) -> Result<(), String> {
    let (job, thing) = ids(key)?;
    simulator
        .call(AssociateTargetsWithJob::new(
            job.clone(),
            vec![thing.to_string()],
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

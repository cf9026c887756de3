//! The terminal report: one outcome, reported until the service has it, never applied twice.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::context::{Cancellation, Outcome, describe_refused_as_ended, ended_by_service};
use crate::{Describe, Job, JobStatus};

/// Capped exponential backoff with jitter for retrying a terminal report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Retries after `initial`, doubling up to `max`; each wait is drawn between half the
    /// current delay and the full delay (jitter), so a fleet that lost its connection together
    /// does not retry in step.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max: max.max(initial),
        }
    }

    fn delays(self) -> impl Iterator<Item = Duration> {
        let random = RandomState::new();
        let mut next = self.initial;
        (0u64..).map(move |n| {
            let delay = next;
            next = next.saturating_mul(2).min(self.max);
            let mut hasher = random.build_hasher();
            hasher.write_u64(n);
            let half = delay / 2;
            let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
            half + Duration::from_nanos(hasher.finish() % nanos.saturating_add(1))
        })
    }
}

impl Default for Backoff {
    /// 1 s, doubling up to 1 minute.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

/// How a terminal report ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reported {
    /// The service holds the outcome (this attempt or an earlier one was applied).
    Applied,
    /// The service ended the execution itself (canceled, removed, timed out, deleted), or it
    /// is terminal and nobody can tell whose status it holds; nothing more is sent.
    EndedByService(Option<JobStatus>),
    /// Gave up: the runner stopped before the service acknowledged, or the service refused the
    /// report for good. The execution may still be IN_PROGRESS.
    GaveUp,
    /// The handler returned after its runner stopped and abandoned it: nothing was sent.
    Abandoned,
}

/// What the service says of an execution whose report may or may not have been applied.
enum Check {
    Applied,
    Ended(Option<JobStatus>),
    NotYet,
    Unknown,
}

/// Reports `outcome` on `job` until the service has it. Before each retry it describes the
/// execution: if an earlier attempt was applied (or the service ended the execution), nothing
/// is sent again. Gives up once `give_up` says so (the runner is stopping and its grace is over).
pub(crate) fn report(
    job: &mut Job,
    outcome: &Outcome,
    backoff: Backoff,
    cancellation: &Cancellation,
    give_up: impl Fn() -> Option<Instant>,
) -> Reported {
    let mut delays = backoff.delays();
    loop {
        if give_up().is_some_and(|at| Instant::now() >= at) {
            // Abandoned by a stopped runner: its outcome is dropped, never reported late.
            return Reported::Abandoned;
        }
        let error = match job.update(outcome.status.clone(), outcome.details.as_ref()) {
            Ok(()) => return Reported::Applied,
            Err(error) => error,
        };
        if ended_by_service(&error) {
            // A terminal execution refuses updates with its state: ours if an earlier attempt
            // was applied, the service's if it canceled, removed or timed it out.
            let status = error
                .rejection()
                .and_then(|r| r.execution_state.as_ref())
                .and_then(|state| state.status.clone());
            return match status {
                Some(status) if status == outcome.status => Reported::Applied,
                status => Reported::EndedByService(status),
            };
        }
        if !error.is_retryable() {
            warn!(
                "reporting {} of {} failed for good: {error}",
                outcome.status,
                job.id()
            );
            return Reported::GaveUp;
        }
        debug!(
            "reporting {} of {} failed: {error}; retrying",
            outcome.status,
            job.id()
        );
        // Wait, then learn whether the failed attempt was applied before trying again.
        loop {
            let delay = delays.next().unwrap_or(backoff.max);
            let wake = Instant::now() + delay;
            let mut stopping = cancellation.is_stopping();
            loop {
                let limit = give_up().map_or(wake, |at| at.min(wake));
                if Instant::now() >= limit {
                    break;
                }
                let (canceled, now_stopping) = cancellation.wait_for_change(limit, stopping);
                if canceled {
                    return Reported::EndedByService(None);
                }
                stopping = now_stopping;
            }
            if give_up().is_some_and(|at| Instant::now() >= at) {
                info!(
                    "giving up reporting {} of {}: stopping",
                    outcome.status,
                    job.id()
                );
                return Reported::GaveUp;
            }
            match check(job, outcome) {
                Check::Applied => return Reported::Applied,
                Check::Ended(status) => return Reported::EndedByService(status),
                Check::NotYet => break,
                Check::Unknown => {}
            }
        }
    }
}

fn check(job: &mut Job, outcome: &Outcome) -> Check {
    match job.describe_with(Describe::new().include_job_document(false)) {
        Ok(()) => match job.status() {
            Some(status) if *status == outcome.status => Check::Applied,
            Some(status) if status.is_terminal() => Check::Ended(Some(status.clone())),
            _ => Check::NotYet,
        },
        // AWS refuses to describe a terminal execution: it holds our outcome or the service's
        // own status, and either way it takes no more updates.
        Err(error) if describe_refused_as_ended(&error) => Check::Ended(None),
        Err(error) => {
            debug!("could not check {}: {error}", job.id());
            Check::Unknown
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap_with_jitter_in_the_upper_half() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let delays: Vec<Duration> = backoff.delays().take(5).collect();
        let caps = [100, 200, 400, 400, 400];
        for (delay, cap) in delays.iter().zip(caps) {
            let cap = Duration::from_millis(cap);
            assert!(*delay >= cap / 2 && *delay <= cap, "{delay:?} vs {cap:?}");
        }
    }
}

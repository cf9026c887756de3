//! What the service does on its own after each change: `jobExecutionsRetryConfig` (FAILED and
//! TIMED_OUT executions retried as new executions) and `abortConfig` (a job cancelled when too
//! many executions failed), with the rollout's releases.

use jobs_core::{JobId, JobStatus, ThingName};

use super::api::{FailureType, RetryConfig};
use super::job_record::Cancellation;
use super::jobs_service::{JobsService, Outgoing};
use super::state::seconds;

/// How many times an execution's predecessors were retried, per failure type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RetryCounts {
    /// Retries of any type: the execution's `retryAttempt`.
    pub(crate) all: i64,
    pub(crate) failed: i64,
    pub(crate) timed_out: i64,
}

impl RetryCounts {
    fn used(&self, kind: FailureType) -> i64 {
        match kind {
            FailureType::Failed => self.failed,
            FailureType::TimedOut => self.timed_out,
            _ => self.all,
        }
    }

    fn after(mut self, failure: FailureType) -> Self {
        self.all = self.all.saturating_add(1);
        match failure {
            FailureType::Failed => self.failed = self.failed.saturating_add(1),
            FailureType::TimedOut => self.timed_out = self.timed_out.saturating_add(1),
            _ => {}
        }
        self
    }
}

/// Whether a retry of an execution that ended with `status` is allowed by `config` after
/// `counts`: the failure type it counts under, if so.
fn retry_allowed(
    config: &RetryConfig,
    status: &JobStatus,
    counts: RetryCounts,
) -> Option<FailureType> {
    let failure = match status {
        JobStatus::Failed => FailureType::Failed,
        JobStatus::TimedOut => FailureType::TimedOut,
        _ => return None,
    };
    let (criterion, limit) = config.retries_for(failure)?;
    (counts.used(criterion) < limit).then_some(failure)
}

impl JobsService {
    /// Everything the service does on its own at `now_ms` after a change: rollout windows that
    /// came, retries of executions that just failed or timed out, aborts. Appends the events.
    pub(crate) fn settle(&mut self, now_ms: i64, events: &mut Vec<Outgoing>) {
        self.release_rollouts(now_ms, events);
        self.retry_failures(now_ms, events);
        self.check_aborts(now_ms, events);
    }

    /// Queues a retry of each FAILED or TIMED_OUT execution not looked at yet, as the job's
    /// retry configuration allows.
    fn retry_failures(&mut self, now_ms: i64, events: &mut Vec<Outgoing>) {
        // Every request settles: without a retry configuration there is nothing to scan.
        if self.jobs.values().all(|r| r.retry.is_none()) {
            return;
        }
        let mut retries: Vec<(JobId, ThingName, RetryCounts)> = Vec::new();
        for (thing, state) in &mut self.things {
            for execution in &mut state.executions {
                if execution.retry_checked
                    || !matches!(execution.status, JobStatus::Failed | JobStatus::TimedOut)
                {
                    continue;
                }
                execution.retry_checked = true;
                let Some(record) = self.jobs.get(&execution.job_id) else {
                    continue;
                };
                if record.cancellation.is_some() {
                    continue;
                }
                let Some(config) = &record.retry else {
                    continue;
                };
                if let Some(failure) = retry_allowed(config, &execution.status, execution.retries) {
                    retries.push((
                        execution.job_id.clone(),
                        thing.clone(),
                        execution.retries.after(failure),
                    ));
                }
            }
        }
        for (job, thing, counts) in retries {
            let latest_failed = self
                .things
                .get(&thing)
                .and_then(|state| state.get(&job, None))
                .is_some_and(|e| matches!(e.status, JobStatus::Failed | JobStatus::TimedOut));
            if latest_failed {
                self.queue_retry(&job, &thing, counts, now_ms, events);
            }
        }
    }

    /// Cancels (as CancelJob without `force`) every job whose abort criteria are met.
    fn check_aborts(&mut self, now_ms: i64, events: &mut Vec<Outgoing>) {
        if self.jobs.values().all(|r| r.abort.is_none()) {
            return;
        }
        let mut aborted: Vec<(JobId, String)> = Vec::new();
        for (id, record) in &self.jobs {
            let Some(config) = &record.abort else {
                continue;
            };
            if record.cancellation.is_some() {
                continue;
            }
            let latest: Vec<&JobStatus> = self
                .things
                .values()
                .filter_map(|state| state.get(id, None))
                .map(|e| &e.status)
                .collect();
            let executed = i64::try_from(latest.len()).unwrap_or(i64::MAX);
            for criteria in &config.criteria_list {
                let failed = latest
                    .iter()
                    .filter(|status| match criteria.failure_type {
                        FailureType::Failed => **status == &JobStatus::Failed,
                        FailureType::Rejected => **status == &JobStatus::Rejected,
                        FailureType::TimedOut => **status == &JobStatus::TimedOut,
                        FailureType::All => matches!(
                            status,
                            JobStatus::Failed | JobStatus::Rejected | JobStatus::TimedOut
                        ),
                    })
                    .count();
                let failed = i64::try_from(failed).unwrap_or(i64::MAX);
                #[expect(
                    clippy::cast_precision_loss,
                    reason = "thing counts are far below 2^52"
                )]
                let percent = failed as f64 * 100.0 / executed.max(1) as f64;
                if executed >= criteria.min_number_of_executed_things
                    && failed > 0
                    && percent >= criteria.threshold_percentage
                {
                    aborted.push((
                        id.clone(),
                        format!(
                            "aborted by abortConfig: {failed} of {executed} things {:?} \
                             (threshold {}%)",
                            criteria.failure_type, criteria.threshold_percentage
                        ),
                    ));
                    break;
                }
            }
        }
        for (job, comment) in aborted {
            log::info!("job {job} {comment}");
            self.cancel_executions(&job, false, now_ms, events);
            if let Some(record) = self.jobs.get_mut(&job) {
                record.cancellation = Some(Cancellation {
                    force: false,
                    reason_code: None,
                    comment: Some(comment),
                });
                record.last_updated_at = seconds(now_ms);
            }
        }
    }
}

//! `jobExecutionsRolloutConfig`: executions queued at a capped rate, in one-minute windows
//! counted from the job's creation on the service's clock.

use std::collections::VecDeque;

use jobs_core::{JobId, JobStatus, ThingName};

use super::api::RolloutConfig;
use super::jobs_service::{JobsService, Outgoing};

/// One minute in milliseconds.
const MINUTE_MS: i64 = 60_000;

/// The rollout of one job: the things waiting for their execution, and the budget of the
/// current one-minute window.
#[derive(Debug, Clone)]
pub(crate) struct Rollout {
    config: RolloutConfig,
    /// The start of window 0 (the job's creation), milliseconds.
    origin_ms: i64,
    /// The window `used` counts in.
    window: i64,
    /// Executions queued in `window`.
    used: i64,
    /// The current rate per minute.
    rate: i64,
    /// Executions queued, and SUCCEEDED count, when the rate last grew.
    notified: i64,
    notified_at_increase: i64,
    succeeded_at_increase: i64,
    /// Things waiting for their execution, in arrival order.
    pub(crate) waiting: VecDeque<ThingName>,
}

impl Rollout {
    pub(crate) fn new(config: RolloutConfig, origin_ms: i64) -> Self {
        let rate = match (&config.exponential_rate, config.maximum_per_minute) {
            (Some(exp), Some(max)) => exp.base_rate_per_minute.min(max),
            (Some(exp), None) => exp.base_rate_per_minute,
            (None, Some(max)) => max,
            (None, None) => i64::MAX,
        };
        Self {
            config,
            origin_ms,
            window: 0,
            used: 0,
            rate,
            notified: 0,
            notified_at_increase: 0,
            succeeded_at_increase: 0,
            waiting: VecDeque::new(),
        }
    }

    /// The configuration.
    pub(crate) fn config(&self) -> &RolloutConfig {
        &self.config
    }

    fn window_of(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(self.origin_ms).div_euclid(MINUTE_MS)
    }

    /// Moves to the window of `now_ms` (growing the rate at each window boundary crossed, as
    /// the criteria allow) and returns how many executions may still be queued in it.
    fn budget(&mut self, now_ms: i64, succeeded: i64) -> i64 {
        let window = self.window_of(now_ms);
        if window > self.window {
            self.window = window;
            self.used = 0;
            self.grow(succeeded);
        }
        self.rate.saturating_sub(self.used).max(0)
    }

    /// Grows an exponential rate once its criteria are met since the last increase.
    fn grow(&mut self, succeeded: i64) {
        let Some(exp) = &self.config.exponential_rate else {
            return;
        };
        let criteria = &exp.rate_increase_criteria;
        let notified = criteria
            .number_of_notified_things
            .is_some_and(|n| self.notified.saturating_sub(self.notified_at_increase) >= n);
        let succeeded_enough = criteria
            .number_of_succeeded_things
            .is_some_and(|n| succeeded.saturating_sub(self.succeeded_at_increase) >= n);
        if notified || succeeded_enough {
            // Rounded down, but always at least one more (our choice).
            let grown = (self.rate as f64 * exp.increment_factor).floor();
            let grown = if grown.is_finite() && grown < i64::MAX as f64 {
                (grown as i64).max(self.rate.saturating_add(1))
            } else {
                i64::MAX
            };
            self.rate = self
                .config
                .maximum_per_minute
                .map_or(grown, |max| grown.min(max));
            self.notified_at_increase = self.notified;
            self.succeeded_at_increase = succeeded;
        }
    }

    fn take(&mut self) {
        self.used = self.used.saturating_add(1);
        self.notified = self.notified.saturating_add(1);
    }

    /// When the next window starts, if things are waiting for it.
    pub(crate) fn next_release(&self) -> Option<i64> {
        (!self.waiting.is_empty()).then(|| {
            self.origin_ms
                .saturating_add(self.window.saturating_add(1).saturating_mul(MINUTE_MS))
        })
    }
}

impl JobsService {
    /// The SUCCEEDED count of `job` (for exponential rollouts).
    fn succeeded(&self, job: &JobId) -> i64 {
        self.counts(job).succeeded
    }

    /// Queues an execution of `job` on `thing` now, or puts the thing on the rollout's waiting
    /// list when this minute's budget is spent (or others are waiting before it).
    pub(crate) fn offer(
        &mut self,
        job: &JobId,
        thing: &ThingName,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) {
        let succeeded = self.succeeded(job);
        let Some(record) = self.jobs.get_mut(job) else {
            return;
        };
        if let Some(rollout) = &mut record.rollout {
            if rollout.waiting.contains(thing) {
                return;
            }
            if !rollout.waiting.is_empty() || rollout.budget(now_ms, succeeded) == 0 {
                rollout.waiting.push_back(thing.clone());
                return;
            }
            rollout.take();
        }
        self.queue_execution(job, thing, now_ms, events);
    }

    /// Queues the executions whose rollout window has come, window by window up to `now_ms`,
    /// appending the events.
    pub(crate) fn release_rollouts(&mut self, now_ms: i64, events: &mut Vec<Outgoing>) {
        let due: Vec<JobId> = self
            .jobs
            .iter()
            .filter(|(_, r)| {
                r.rollout
                    .as_ref()
                    .and_then(Rollout::next_release)
                    .is_some_and(|at| at <= now_ms)
            })
            .map(|(id, _)| id.clone())
            .collect();
        for job in due {
            loop {
                let succeeded = self.succeeded(&job);
                let Some(rollout) = self.jobs.get_mut(&job).and_then(|r| r.rollout.as_mut()) else {
                    break;
                };
                let Some(at) = rollout.next_release().filter(|at| *at <= now_ms) else {
                    break;
                };
                let mut budget = rollout.budget(at, succeeded);
                let mut released = Vec::new();
                while budget > 0 {
                    let Some(thing) = rollout.waiting.pop_front() else {
                        break;
                    };
                    rollout.take();
                    budget -= 1;
                    released.push(thing);
                }
                for thing in released {
                    self.queue_execution(&job, &thing, now_ms, events);
                }
            }
        }
    }

    /// The earliest rollout window that has things waiting for it, in milliseconds.
    pub(crate) fn next_rollout_release(&self) -> Option<i64> {
        self.jobs
            .values()
            .filter_map(|r| r.rollout.as_ref().and_then(Rollout::next_release))
            .min()
    }

    /// Whether `thing` waits for its execution of `job` in a rollout.
    pub(crate) fn is_waiting(&self, job: &JobId, thing: &ThingName) -> bool {
        self.jobs
            .get(job)
            .and_then(|r| r.rollout.as_ref())
            .is_some_and(|r| r.waiting.contains(thing))
    }

    /// How many things wait for their execution of `job` (counted as QUEUED by DescribeJob:
    /// our choice).
    pub(crate) fn waiting_count(&self, job: &JobId) -> i64 {
        self.jobs
            .get(job)
            .and_then(|r| r.rollout.as_ref())
            .map_or(0, |r| i64::try_from(r.waiting.len()).unwrap_or(i64::MAX))
    }

    /// A pending execution, or a place on the waiting list.
    pub(crate) fn has_pending(&self, job: &JobId, thing: &ThingName) -> bool {
        self.is_waiting(job, thing)
            || self
                .things
                .get(thing)
                .and_then(|state| state.get(job, None))
                .is_some_and(|e| matches!(e.status, JobStatus::Queued | JobStatus::InProgress))
    }
}

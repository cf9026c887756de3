//! Pacing: [`Backoff`] (capped exponential delays with jitter) and the [`Pacer`] that spaces the
//! runner's requests about one thing by it. Pure: time is passed in, and the jitter comes from a
//! seeded generator, so the state machine's tests are deterministic.

use std::time::{Duration, Instant};

/// Capped exponential backoff with jitter: how the runner spaces its retries.
///
/// The `n`-th delay (from 0) is `initial × 2ⁿ`, capped at `max`, and each wait is drawn between
/// half that delay and the full delay, so a fleet that lost its connection together does not
/// retry in step. [`RunnerBuilder::build`](super::RunnerBuilder::build) refuses a zero initial
/// delay and a maximum below the initial delay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
}

impl Backoff {
    /// Waits `initial` first, doubling up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The first delay.
    pub const fn initial(&self) -> Duration {
        self.initial
    }

    /// The longest delay.
    pub const fn max(&self) -> Duration {
        self.max
    }

    /// The `attempt`-th delay (from 0) before jitter: `initial × 2^attempt`, capped at `max`.
    pub(crate) fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 1u32.checked_shl(attempt).unwrap_or(u32::MAX);
        self.initial.saturating_mul(factor).min(self.max)
    }

    /// The `attempt`-th delay with jitter: between half the ceiling and the ceiling, where in
    /// that range given by `unit` (in `[0, 1)`).
    pub(crate) fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let ceiling = self.ceiling(attempt);
        let half = ceiling / 2;
        half + (ceiling - half).mul_f64(unit.clamp(0.0, 1.0))
    }
}

impl Default for Backoff {
    /// 1 s, doubling up to 1 minute.
    fn default() -> Self {
        Self::new(Duration::from_secs(1), Duration::from_secs(60))
    }
}

/// A small, seeded pseudo-random generator (xorshift64*) for jitter: no dependency, and
/// reproducible in tests.
#[derive(Debug, Clone)]
pub(crate) struct Jitter(u64);

impl Jitter {
    /// A generator seeded with `seed` (0 is replaced, as xorshift would stay at 0).
    pub(crate) fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9E37_79B9_7F4A_7C15
        } else {
            seed
        })
    }

    /// A generator seeded from the process's random hasher keys.
    pub(crate) fn from_entropy() -> Self {
        use std::hash::{BuildHasher, Hasher, RandomState};
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Self::new(hasher.finish())
    }

    /// A generator for another user, seeded from this one's sequence.
    pub(crate) fn fork(&mut self) -> Self {
        Self::new(self.0 ^ (self.unit().to_bits()).rotate_left(17))
    }

    /// The next value in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let value = self.0.wrapping_mul(0x2545_F491_4F6C_DD1D);
        // The top 53 bits make an exact f64 in [0, 1).
        (value >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Spaces a series of requests by a [`Backoff`]: the first may go at once, each later one only
/// after the next delay. The attempt count grows until [`reset`](Self::reset), so a series
/// that keeps failing settles at one request per `max` (between `max / 2` and `max` apart).
#[derive(Debug, Clone)]
pub(crate) struct Pacer {
    attempts: u32,
    not_before: Option<Instant>,
}

impl Pacer {
    pub(crate) fn new() -> Self {
        Self {
            attempts: 0,
            not_before: None,
        }
    }

    /// Whether a request may go at `now`.
    pub(crate) fn ready(&self, now: Instant) -> bool {
        self.not_before.is_none_or(|at| now >= at)
    }

    /// When the next request may go (`None`: now).
    pub(crate) fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Records that a request went at `now`: the next one waits the next delay.
    pub(crate) fn sent(&mut self, now: Instant, backoff: &Backoff, jitter: &mut Jitter) {
        let delay = backoff.delay(self.attempts, jitter.unit());
        self.not_before = Some(now.checked_add(delay).unwrap_or(now));
        self.attempts = self.attempts.saturating_add(1);
    }

    /// Starts a new series when the last delay ended at least `idle` ago: a series that went
    /// quiet is over, so one request after a long pause goes at once.
    pub(crate) fn forget_if_idle(&mut self, now: Instant, idle: Duration) {
        if self
            .not_before
            .and_then(|at| at.checked_add(idle))
            .is_some_and(|quiet| now >= quiet)
        {
            self.reset();
        }
    }

    /// Starts a new series: the next request may go at once.
    pub(crate) fn reset(&mut self) {
        self.attempts = 0;
        self.not_before = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_with_jitter_in_the_upper_half() {
        let backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(400));
        let mut jitter = Jitter::new(7);
        for (attempt, cap) in [100, 200, 400, 400, 400].into_iter().enumerate() {
            let cap = Duration::from_millis(cap);
            for _ in 0..100 {
                let delay = backoff.delay(attempt as u32, jitter.unit());
                assert!(delay >= cap / 2 && delay <= cap, "{delay:?} vs {cap:?}");
            }
        }
        assert_eq!(backoff.ceiling(200), Duration::from_millis(400));
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_spreads() {
        let mut jitter = Jitter::new(0);
        let values: Vec<f64> = (0..10_000).map(|_| jitter.unit()).collect();
        assert!(values.iter().all(|v| (0.0..1.0).contains(v)));
        let low = values.iter().filter(|v| **v < 0.5).count();
        assert!((4_000..6_000).contains(&low), "{low}");
    }

    #[test]
    fn a_pacer_lets_the_first_request_go_and_spaces_the_rest_until_reset() {
        let backoff = Backoff::new(Duration::from_secs(1), Duration::from_secs(4));
        let mut jitter = Jitter::new(3);
        let mut pacer = Pacer::new();
        let start = Instant::now();
        assert!(pacer.ready(start));
        pacer.sent(start, &backoff, &mut jitter);
        assert!(!pacer.ready(start));
        assert!(pacer.ready(start + Duration::from_secs(1)));
        pacer.reset();
        assert!(pacer.ready(start));
    }
}

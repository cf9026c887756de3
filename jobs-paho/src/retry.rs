//! [`ConnectRetry`]: an opt-in retry of the first connect, with capped exponential backoff
//! and jitter, the shape the AWS IoT device SDKs use.

use std::hash::{BuildHasher, RandomState};
use std::time::{Duration, Instant};

use log::warn;

use crate::PahoTransportBuilder;
use crate::error::ConnectError;
use crate::transport::PahoTransport;

/// How [`PahoTransportBuilder::build`] retries the first connect: while the failure may pass
/// ([`ConnectError::is_transient`]) and the total time allows, it waits a backoff that starts
/// at `initial`, doubles up to `max` and is jittered (a random value between half and all of
/// it, so that a fleet restarted together does not reconnect in step), then tries again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct ConnectRetry {
    total: Duration,
    initial: Duration,
    max: Duration,
}

impl ConnectRetry {
    /// Retries for up to `total` from the start of `build` (the last attempt ends by then,
    /// bounded by the connect timeout), waiting 1 s, then 2 s, 4 s, … up to 30 s between
    /// attempts. A `total` of zero makes one attempt.
    pub fn for_up_to(total: Duration) -> Self {
        Self {
            total,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }

    /// The backoff between attempts: `initial`, doubling up to `max` (any durations; `max`
    /// below `initial` is read as `initial`). Defaults to 1 s and 30 s.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial = initial;
        self.max = max.max(initial);
        self
    }

    /// How long `build` may keep trying.
    pub fn total(&self) -> Duration {
        self.total
    }
}

/// Runs `attempt` until it succeeds, fails for good, or the retry's total time is over.
pub(crate) fn connect(
    builder: &PahoTransportBuilder,
    retry: ConnectRetry,
    mut attempt: impl FnMut(&PahoTransportBuilder) -> Result<PahoTransport, ConnectError>,
) -> Result<PahoTransport, ConnectError> {
    let start = Instant::now();
    let end = start.checked_add(retry.total);
    let mut backoff = retry.initial;
    let mut attempts = 1_u32;
    loop {
        let error = match attempt(builder) {
            Ok(transport) => return Ok(transport),
            Err(error) => error,
        };
        if !error.is_transient() {
            return Err(error);
        }
        let pause = jitter(backoff);
        let next = Instant::now().checked_add(pause);
        let in_time = matches!((next, end), (Some(next), Some(end)) if next < end);
        if !in_time {
            return Err(error);
        }
        warn!(
            "connect attempt {attempts} to {} failed: {error}; retrying in {pause:.1?}",
            builder.server_uri()
        );
        std::thread::sleep(pause);
        attempts = attempts.saturating_add(1);
        backoff = backoff.saturating_mul(2).min(retry.max);
    }
}

/// A random duration between half and all of `backoff`.
fn jitter(backoff: Duration) -> Duration {
    let random = RandomState::new().hash_one(Instant::now());
    // The low 16 bits as a fraction in [0, 1).
    let fraction = f64::from(u16::try_from(random & 0xffff).unwrap_or(0)) / 65_536.0;
    backoff.mul_f64(0.5 + fraction / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_between_half_and_all_of_the_backoff() {
        for _ in 0..100 {
            let pause = jitter(Duration::from_secs(2));
            assert!(pause >= Duration::from_secs(1) && pause <= Duration::from_secs(2));
        }
    }

    #[test]
    fn a_backoff_maximum_below_the_initial_is_read_as_the_initial() {
        let retry = ConnectRetry::for_up_to(Duration::from_secs(5))
            .backoff(Duration::from_millis(500), Duration::from_millis(100));
        assert_eq!(retry.max, Duration::from_millis(500));
    }
}

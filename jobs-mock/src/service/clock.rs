//! [`Clock`]: the simulator's time source — virtual (moved only by the test), or real time,
//! optionally running a whole number of times faster.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The time source of a [`JobsService`](super::JobsService), in milliseconds since the Unix
/// epoch. Timer deadlines keep this precision; timestamps on the wire are whole seconds (the
/// unit of every Jobs timestamp), rounded down.
///
/// - A **virtual** clock starts at a fixed instant and moves only when
///   [`JobsService::advance_clock`](super::JobsService::advance_clock) says so: tests and
///   walkthroughs are deterministic, and timers fire exactly when the test advances past them.
/// - A **real** clock ([`system`](Self::system), [`scaled`](Self::scaled)) starts at the
///   current system time and then runs `factor` times faster than real time (1 for the
///   system clock), plus whatever [`advance_clock`](super::JobsService::advance_clock) added.
///   Timers are then fired by the [`Simulator`](super::Simulator)'s worker thread. With a
///   factor above 1 every timestamp the service reports runs ahead of the wall clock: after
///   `t` real seconds it reads start + `factor` × `t`.
///
/// Cloning is cheap; clones share the clock's time (and what was added to it).
#[derive(Debug, Clone)]
pub struct Clock {
    kind: Kind,
    /// Milliseconds added by [`advance`](Self::advance), shared by clones.
    offset_ms: Arc<AtomicI64>,
}

#[derive(Debug, Clone)]
enum Kind {
    Virtual {
        start_ms: i64,
    },
    Real {
        origin: Instant,
        origin_ms: i64,
        factor: u32,
    },
}

impl Clock {
    /// A virtual clock standing at `epoch_seconds` until advanced.
    pub fn virtual_at(epoch_seconds: i64) -> Self {
        Self::with_kind(Kind::Virtual {
            start_ms: epoch_seconds.saturating_mul(1000),
        })
    }

    /// The system clock (real time). A system clock set before 1970 starts at 0.
    pub fn system() -> Self {
        Self::scaled(NonZeroU32::MIN)
    }

    /// A clock that starts at the current system time and runs `factor` times faster than
    /// real time: a 1-minute timer fires after 60 / `factor` real seconds.
    pub fn scaled(factor: NonZeroU32) -> Self {
        let origin_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_millis()).ok())
            .unwrap_or(0);
        Self::with_kind(Kind::Real {
            origin: Instant::now(),
            origin_ms,
            factor: factor.get(),
        })
    }

    fn with_kind(kind: Kind) -> Self {
        Self {
            kind,
            offset_ms: Arc::new(AtomicI64::new(0)),
        }
    }

    /// True for a virtual clock.
    pub fn is_virtual(&self) -> bool {
        matches!(self.kind, Kind::Virtual { .. })
    }

    /// How many times faster than real time a real clock runs (1 for the system clock);
    /// `None` for a virtual clock.
    pub fn factor(&self) -> Option<u32> {
        match self.kind {
            Kind::Virtual { .. } => None,
            Kind::Real { factor, .. } => Some(factor),
        }
    }

    /// The current time in whole seconds since the Unix epoch (rounded down).
    pub fn now(&self) -> i64 {
        self.now_millis().div_euclid(1000)
    }

    /// The current time in milliseconds since the Unix epoch.
    pub fn now_millis(&self) -> i64 {
        let base = match &self.kind {
            Kind::Virtual { start_ms } => *start_ms,
            Kind::Real {
                origin,
                origin_ms,
                factor,
            } => {
                let elapsed = origin.elapsed().saturating_mul(*factor);
                origin_ms.saturating_add(i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX))
            }
        };
        base.saturating_add(self.offset_ms.load(Ordering::Acquire))
    }

    /// Moves the clock forward by `by` (millisecond precision, saturating) and returns the new
    /// time in milliseconds. A real clock keeps running from there.
    pub(crate) fn advance(&self, by: Duration) -> i64 {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let mut current = self.offset_ms.load(Ordering::Acquire);
        loop {
            let next = current.saturating_add(by);
            match self.offset_ms.compare_exchange(
                current,
                next,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => return self.now_millis(),
                Err(actual) => current = actual,
            }
        }
    }

    /// How long in real time until the clock reads `deadline_ms`: zero if it already does;
    /// `None` on a virtual clock, which never gets there by itself.
    pub fn real_time_until(&self, deadline_ms: i64) -> Option<Duration> {
        let factor = self.factor()?;
        let left = u64::try_from(deadline_ms.saturating_sub(self.now_millis())).unwrap_or(0);
        // Rounded up, so that a timer checked after this wait has expired.
        Some(Duration::from_millis(left.div_ceil(u64::from(factor))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_virtual_clock_stands_still_until_advanced_and_clones_share_it() {
        let clock = Clock::virtual_at(1_750_000_000);
        let clone = clock.clone();
        assert_eq!(clock.now(), 1_750_000_000);
        assert_eq!(
            clock.advance(Duration::from_millis(90_500)),
            1_750_000_090_500
        );
        assert_eq!(clone.now(), 1_750_000_090);
        assert_eq!(clone.now_millis(), 1_750_000_090_500);
        assert!(clock.is_virtual());
        assert_eq!(clock.real_time_until(1_750_000_100_000), None);
    }

    #[test]
    fn the_system_clock_reads_seconds_and_can_be_advanced() {
        let clock = Clock::system();
        let before = clock.now();
        assert!(before > 1_600_000_000 && before < 100_000_000_000);
        clock.advance(Duration::from_secs(3600));
        assert!(clock.now() >= before + 3600);
        assert!(!clock.is_virtual());
        assert_eq!(clock.factor(), Some(1));
    }

    #[test]
    fn a_scaled_clock_runs_factor_times_faster_than_real_time() {
        let factor = 1000;
        let clock = Clock::scaled(NonZeroU32::new(factor).unwrap());
        let before = clock.now_millis();
        let start = Instant::now();
        while start.elapsed() < Duration::from_millis(3) {
            std::hint::spin_loop();
        }
        let real = start.elapsed();
        let after = clock.now_millis();
        let expected = i64::try_from((real * factor).as_millis()).unwrap();
        // Each reading truncates to a millisecond.
        assert!(
            after - before >= expected - 1,
            "{after} - {before} vs {expected}"
        );
    }

    #[test]
    fn a_scaled_clock_turns_virtual_waits_into_shorter_real_ones() {
        let clock = Clock::scaled(NonZeroU32::new(600).unwrap());
        let now = clock.now_millis();
        let wait = clock.real_time_until(now + 60_000).unwrap();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        assert_eq!(clock.real_time_until(now - 1), Some(Duration::ZERO));
    }
}

//! [`Clock`]: the simulator's time source, virtual (advanced by tests) or the system clock.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The time source of a [`JobsService`](super::JobsService), in whole seconds since the Unix
/// epoch (the unit of every Jobs timestamp).
///
/// - A **virtual** clock starts at a fixed instant and moves only when
///   [`JobsService::advance_clock`](super::JobsService::advance_clock) says so: tests and
///   walkthroughs are deterministic, and timers fire exactly when the test advances past them.
/// - The **system** clock follows real time, for a simulator hosted on a live broker; timers
///   are then fired by the [`Simulator`](super::Simulator)'s worker thread.
///
/// Cloning is cheap; clones of a virtual clock share its time.
#[derive(Debug, Clone)]
pub struct Clock {
    kind: Kind,
}

#[derive(Debug, Clone)]
enum Kind {
    Virtual(Arc<AtomicI64>),
    System,
}

impl Clock {
    /// A virtual clock standing at `epoch_seconds` until advanced.
    pub fn virtual_at(epoch_seconds: i64) -> Self {
        Self {
            kind: Kind::Virtual(Arc::new(AtomicI64::new(epoch_seconds))),
        }
    }

    /// The system clock (real time).
    pub fn system() -> Self {
        Self { kind: Kind::System }
    }

    /// True for a virtual clock.
    pub fn is_virtual(&self) -> bool {
        matches!(self.kind, Kind::Virtual(_))
    }

    /// The current time in seconds since the Unix epoch. A system clock set before 1970 reads 0.
    pub fn now(&self) -> i64 {
        match &self.kind {
            Kind::Virtual(seconds) => seconds.load(Ordering::Acquire),
            Kind::System => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .ok()
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .unwrap_or(0),
        }
    }

    /// Moves a virtual clock forward by `seconds` (saturating) and returns the new time;
    /// `None` for the system clock, which cannot be moved.
    pub(crate) fn advance(&self, seconds: i64) -> Option<i64> {
        match &self.kind {
            Kind::Virtual(now) => {
                let mut current = now.load(Ordering::Acquire);
                loop {
                    let next = current.saturating_add(seconds);
                    match now.compare_exchange(current, next, Ordering::AcqRel, Ordering::Acquire) {
                        Ok(_) => return Some(next),
                        Err(actual) => current = actual,
                    }
                }
            }
            Kind::System => None,
        }
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
        assert_eq!(clock.advance(90), Some(1_750_000_090));
        assert_eq!(clone.now(), 1_750_000_090);
        assert!(clock.is_virtual());
    }

    #[test]
    fn the_system_clock_reads_seconds_and_cannot_be_advanced() {
        let clock = Clock::system();
        assert!(clock.now() > 1_600_000_000 && clock.now() < 100_000_000_000);
        assert_eq!(clock.advance(1), None);
        assert!(!clock.is_virtual());
    }
}

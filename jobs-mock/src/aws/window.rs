//! [`SlidingWindow`]: the publish-rate quota of one client, shared by the
//! [`MockBroker`](crate::MockBroker)'s AWS mode and the mosquitto plugin (which compiles this
//! file into itself; it uses only `std`).

use std::collections::VecDeque;
use std::time::Duration;

/// At most `limit` admissions in any window of length `span`: an event at time `t` is
/// admitted if fewer than `limit` events were admitted in the half-open interval
/// `(t - span, t]`. Refused events do not count.
///
/// Times are durations since any fixed origin, never decreasing (a clock's elapsed time).
/// Memory: one `Duration` per admission in the window, at most `limit`.
#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    limit: usize,
    span: Duration,
    /// Admission times in the current window, oldest first.
    admitted: VecDeque<Duration>,
}

impl SlidingWindow {
    /// A window admitting `limit` events per `span`.
    pub(crate) fn new(limit: usize, span: Duration) -> Self {
        Self {
            limit,
            span,
            admitted: VecDeque::new(),
        }
    }

    /// Admits an event at `now` (and counts it) or refuses it.
    pub(crate) fn admit(&mut self, now: Duration) -> bool {
        while let Some(&oldest) = self.admitted.front() {
            if now.saturating_sub(oldest) >= self.span {
                self.admitted.pop_front();
            } else {
                break;
            }
        }
        if self.admitted.len() < self.limit {
            self.admitted.push_back(now);
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn the_window_admits_its_limit_in_any_span_and_slides() {
        let mut window = SlidingWindow::new(3, 1000 * MS);
        assert!(window.admit(Duration::ZERO));
        assert!(window.admit(10 * MS));
        assert!(window.admit(10 * MS));
        assert!(!window.admit(10 * MS));
        assert!(!window.admit(999 * MS));
        // t = 1000 ms: the admission at 0 leaves the window (t - span, t].
        assert!(window.admit(1000 * MS));
        assert!(!window.admit(1009 * MS));
        assert!(window.admit(1010 * MS));
        assert!(window.admit(1010 * MS));
        assert!(!window.admit(1010 * MS));
    }

    #[test]
    fn refused_events_do_not_count() {
        let mut window = SlidingWindow::new(1, 1000 * MS);
        assert!(window.admit(Duration::ZERO));
        for t in 1..1000 {
            assert!(!window.admit(t * MS));
        }
        assert!(window.admit(1000 * MS));
    }

    #[test]
    fn a_zero_limit_admits_nothing() {
        assert!(!SlidingWindow::new(0, MS).admit(Duration::ZERO));
    }
}

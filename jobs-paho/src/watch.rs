//! [`ConnectionWatch`]: what the connection's history says. When the broker closes the
//! connection right after each connect, the likeliest cause is another client connecting
//! with the same client ID (MQTT brokers, AWS IoT among them, drop the older connection on
//! such a takeover, and both clients then reconnect in turn); the only symptom otherwise is a
//! stream of "connection lost" lines. It also tells reconnect events whether the session was
//! resumed, where that is known.

use std::time::{Duration, Instant};

use log::warn;
use parking_lot::Mutex;

/// A connection that lasted less than this counts as closed right after its connect.
const SHORT_LIVED: Duration = Duration::from_secs(10);
/// After how many short-lived connections in a row the warning is logged (and again every
/// this many).
const WARN_EVERY: u32 = 3;

/// Watches connects and losses of one transport; called from Paho's callbacks (a lock held
/// for a few instructions, never across a call out).
#[derive(Debug)]
pub(crate) struct ConnectionWatch {
    uri: String,
    client_id: String,
    clean_session: bool,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    connected_at: Option<Instant>,
    short_lived: u32,
}

impl ConnectionWatch {
    pub(crate) fn new(uri: &str, client_id: &str, clean_session: bool) -> Self {
        Self {
            uri: uri.to_owned(),
            client_id: client_id.to_owned(),
            clean_session,
            state: Mutex::new(State::default()),
        }
    }

    /// A connect completed. Returns the `session_present` to report: `Some(false)` with a
    /// clean session (the broker never resumes one), `None` otherwise (Paho does not tell).
    pub(crate) fn connected(&self) -> Option<bool> {
        self.state.lock().connected_at = Some(Instant::now());
        (self.clean_session).then_some(false)
    }

    /// The connection was lost or closed by the broker; warns when it keeps happening right
    /// after each connect.
    pub(crate) fn lost(&self) {
        if let Some(count) = self.lost_at(Instant::now()) {
            warn!(
                "the connection to {} was closed within {SHORT_LIVED:?} of each of the last \
                 {count} connects: another client is probably connecting with the same client \
                 ID {:?} (the broker drops the older connection; AWS IoT does too). Give every \
                 connection its own client ID.",
                self.uri, self.client_id
            );
        }
    }

    /// Counts a loss at `now`; `Some(count)` when it is time to warn.
    fn lost_at(&self, now: Instant) -> Option<u32> {
        let mut state = self.state.lock();
        let short = state
            .connected_at
            .take()
            .is_some_and(|at| now.saturating_duration_since(at) < SHORT_LIVED);
        state.short_lived = if short {
            state.short_lived.saturating_add(1)
        } else {
            0
        };
        let count = state.short_lived;
        (count > 0 && count.is_multiple_of(WARN_EVERY)).then_some(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn three_connections_closed_right_after_connecting_warn_and_a_long_one_resets() {
        let watch = ConnectionWatch::new("tcp://h:1", "pump-07", true);
        let start = Instant::now();
        let mut warnings = Vec::new();
        for i in 0..7 {
            watch.state.lock().connected_at = Some(start);
            warnings.push(watch.lost_at(start + Duration::from_secs(1)).is_some());
            if i == 3 {
                // A connection that lived long: the count starts again.
                watch.state.lock().connected_at = Some(start);
                assert_eq!(watch.lost_at(start + Duration::from_secs(60)), None);
            }
        }
        assert_eq!(
            warnings,
            [false, false, true, false, false, false, true],
            "the 3rd short-lived connection warns; after a long one, the 3rd again"
        );
    }

    #[test]
    fn a_loss_without_a_connect_is_not_short_lived() {
        let watch = ConnectionWatch::new("tcp://h:1", "d", false);
        for _ in 0..5 {
            assert_eq!(watch.lost_at(Instant::now()), None);
        }
        assert_eq!(watch.connected(), None);
        assert_eq!(
            ConnectionWatch::new("tcp://h:1", "d", true).connected(),
            Some(false)
        );
    }
}

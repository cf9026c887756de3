//! [`Observations`]: what the broker received from each transport under test, packet by
//! packet, for the rules that check the wire (QoS, RETAIN, keep-alive, every filter sent).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

/// One packet a client sent to the broker, as the harness saw it on its way.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Seen {
    /// CONNECT, with the keep-alive the client asked for.
    Connect {
        /// The keep-alive interval (MQTT: the longest the client may stay silent).
        keep_alive: Duration,
    },
    /// PUBLISH.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        payload: Vec<u8>,
        /// The QoS on the wire (0, 1 or 2).
        qos: u8,
        /// The RETAIN flag.
        retain: bool,
    },
    /// SUBSCRIBE: every filter with the QoS requested for it, in order.
    Subscribe {
        /// The filters and their requested QoS (0, 1 or 2).
        filters: Vec<(String, u8)>,
    },
    /// UNSUBSCRIBE.
    Unsubscribe {
        /// The filters.
        filters: Vec<String>,
    },
    /// PUBACK: the client acknowledged an inbound QoS 1 message.
    PubAck,
    /// PINGREQ.
    PingReq,
    /// DISCONNECT.
    Disconnect,
}

/// What the broker received from each client, by client ID, in order, with when it arrived:
/// filled by a harness that sees its transports' packets (a proxy in front of the broker, or
/// a wrapper around an in-memory transport) and read by the rules. Cheap to clone; clones
/// share the record.
#[derive(Clone, Default)]
pub struct Observations {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    seen: Mutex<HashMap<String, Vec<(Instant, Seen)>>>,
    changed: Condvar,
}

impl fmt::Debug for Observations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Observations")
            .field("clients", &self.shared.seen.lock().len())
            .finish()
    }
}

impl Observations {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// Records that the broker received `seen` from `client_id`, now.
    pub fn record(&self, client_id: &str, seen: Seen) {
        self.shared
            .seen
            .lock()
            .entry(client_id.to_owned())
            .or_default()
            .push((Instant::now(), seen));
        self.shared.changed.notify_all();
    }

    /// Everything received from `client_id` so far, oldest first.
    pub fn of(&self, client_id: &str) -> Vec<(Instant, Seen)> {
        self.shared
            .seen
            .lock()
            .get(client_id)
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until what was received from `client_id` satisfies `until`, at most `timeout`;
    /// returns whether it did.
    pub fn wait(
        &self,
        client_id: &str,
        timeout: Duration,
        until: impl Fn(&[(Instant, Seen)]) -> bool,
    ) -> bool {
        let deadline = Instant::now() + timeout;
        let mut seen = self.shared.seen.lock();
        loop {
            if until(seen.get(client_id).map_or(&[], Vec::as_slice)) {
                return true;
            }
            if self
                .shared
                .changed
                .wait_until(&mut seen, deadline)
                .timed_out()
            {
                return until(seen.get(client_id).map_or(&[], Vec::as_slice));
            }
        }
    }
}

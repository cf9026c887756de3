//! [`MockHarness`]: the suite over [`MockBroker`]'s own transport.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use jobs_core::{MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError};
use parking_lot::{Condvar, Mutex};

use super::observe::{Observations, Seen};
use super::{Capability, Harness, HarnessError};
use crate::MockBroker;

/// The filter [`MockHarness`] makes its broker refuse.
const REFUSED_FILTER: &str = "conformance/refused";

/// A [`Harness`] over a [`MockBroker`]: [`MockTransport`](crate::MockTransport)s under test
/// (a harness checking a wrapper of the mock's transport can wrap what
/// [`transport`](Harness::transport) returns), connections dropped and
/// restored (with or without session) by client ID, a frozen broker ([`MockBroker::freeze`]),
/// a refused filter, and a thin layer between each transport under test and the broker that
/// records what reaches the broker ([`Capability::Observe`]) and holds the acknowledgement of
/// publishes on a topic ([`Capability::HoldAcks`]). Peers are plain `MockTransport`s, which
/// outages leave connected. The broker has no keep-alive and no in-flight window, so the
/// rules about those are skipped. It is the reference the suite itself is tested against,
/// and a model for harnesses that wrap the mock's transport.
#[derive(Debug)]
pub struct MockHarness {
    broker: MockBroker,
    clients: Vec<String>,
    observations: Observations,
    hold: Arc<Hold>,
    /// Calls of the transports under test inside `MockTransport` (recorded as sent, perhaps
    /// not yet queued by the frozen broker).
    in_flight: Arc<AtomicUsize>,
    frozen: bool,
}

/// How long [`MockHarness::drop_connections`] waits for a call recorded as sent to reach the
/// frozen broker's queue (a matter of microseconds).
const QUEUEING: Duration = Duration::from_secs(1);

/// The topic whose publishes wait for [`Harness::release_acks`].
#[derive(Debug, Default)]
struct Hold {
    topic: Mutex<Option<String>>,
    released: Condvar,
}

impl MockHarness {
    /// A harness over a fresh broker (recording off: the suite publishes a lot).
    pub fn new() -> Self {
        let broker = MockBroker::new();
        broker.set_recording(false);
        broker.refuse_subscriptions(REFUSED_FILTER);
        Self {
            broker,
            clients: Vec::new(),
            observations: Observations::new(),
            hold: Arc::default(),
            in_flight: Arc::default(),
            frozen: false,
        }
    }

    /// The broker the transports connect to.
    pub fn broker(&self) -> &MockBroker {
        &self.broker
    }
}

impl Default for MockHarness {
    fn default() -> Self {
        Self::new()
    }
}

impl Harness for MockHarness {
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        self.clients.push(client_id.to_owned());
        Ok(Box::new(Wire {
            inner: Box::new(self.broker.connect(client_id)),
            client_id: client_id.to_owned(),
            observations: self.observations.clone(),
            hold: Arc::clone(&self.hold),
            in_flight: Arc::clone(&self.in_flight),
        }))
    }

    fn peer(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        Ok(Box::new(self.broker.connect(client_id)))
    }

    fn supports(&self, capability: Capability) -> bool {
        matches!(
            capability,
            Capability::DropConnection
                | Capability::ResumeSession
                | Capability::Freeze
                | Capability::RefuseFilter
                | Capability::SessionFlag
                | Capability::Observe
                | Capability::HoldAcks
        )
    }

    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        // A call the broker has been seen to receive is in its queue before the link drops,
        // as bytes on a real wire would be.
        let in_flight = self.in_flight.load(Ordering::SeqCst);
        if self.frozen && in_flight > 0 {
            self.broker.wait_for_queued(in_flight, QUEUEING);
        }
        for client in &self.clients {
            self.broker.drop_connection(client);
        }
        Ok(())
    }

    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        for client in &self.clients {
            self.broker.restore_connection(client, session_present);
        }
        Ok(())
    }

    fn freeze(&mut self) -> Result<(), HarnessError> {
        self.frozen = true;
        self.broker.freeze();
        Ok(())
    }

    fn thaw(&mut self) -> Result<(), HarnessError> {
        self.frozen = false;
        self.broker.thaw();
        Ok(())
    }

    fn refused_filter(&self) -> Option<String> {
        Some(REFUSED_FILTER.to_owned())
    }

    fn observations(&self) -> Option<Observations> {
        Some(self.observations.clone())
    }

    fn hold_acks(&mut self, topic: &str) -> Result<(), HarnessError> {
        *self.hold.topic.lock() = Some(topic.to_owned());
        Ok(())
    }

    fn release_acks(&mut self) -> Result<(), HarnessError> {
        *self.hold.topic.lock() = None;
        self.hold.released.notify_all();
        Ok(())
    }
}

/// The layer between a transport under test and the broker: what passes is what the broker
/// receives. It records each operation that is sent (its deadline not yet over) and makes a
/// QoS 1 publish on the held topic wait, unsent, until released (or until its deadline).
struct Wire {
    inner: Box<dyn MqttTransport>,
    client_id: String,
    observations: Observations,
    hold: Arc<Hold>,
    in_flight: Arc<AtomicUsize>,
}

impl Wire {
    fn record(&self, deadline: Instant, seen: Seen) {
        if Instant::now() < deadline {
            self.observations.record(&self.client_id, seen);
        }
    }

    /// Counts a call as in flight (from before it is recorded) until it returns.
    fn count(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        InFlight(&self.in_flight)
    }
}

/// One call in flight; uncounted when dropped.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

fn wire_qos(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
    }
}

impl MqttTransport for Wire {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        self.inner.set_sink(sink)
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        let _in_flight = self.count();
        let filters_seen = filters
            .iter()
            .map(|f| ((*f).to_owned(), wire_qos(qos)))
            .collect();
        self.record(
            deadline,
            Seen::Subscribe {
                filters: filters_seen,
            },
        );
        self.inner.subscribe(filters, qos, deadline)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        let _in_flight = self.count();
        let filters_seen = filters.iter().map(|f| (*f).to_owned()).collect();
        self.record(
            deadline,
            Seen::Unsubscribe {
                filters: filters_seen,
            },
        );
        self.inner.unsubscribe(filters, deadline)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        let _in_flight = self.count();
        self.record(
            deadline,
            Seen::Publish {
                topic: topic.to_owned(),
                payload: payload.to_vec(),
                qos: wire_qos(qos),
                retain: false,
            },
        );
        if qos == QoS::AtLeastOnce {
            let mut held = self.hold.topic.lock();
            while held.as_deref() == Some(topic) {
                if self
                    .hold
                    .released
                    .wait_until(&mut held, deadline)
                    .timed_out()
                {
                    return Err(TransportError::Timeout);
                }
            }
        }
        self.inner.publish(topic, payload, qos, deadline)
    }
}

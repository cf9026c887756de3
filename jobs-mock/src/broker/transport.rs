//! [`MockTransport`]: one client's [`MqttTransport`] connection to a [`MockBroker`].

use std::fmt;
use std::sync::Arc;
use std::time::Instant;

use jobs_core::{MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError};

use super::MockBroker;
use super::aws::PublishOutcome;

/// The [`MqttTransport`] of one client of a [`MockBroker`].
///
/// QoS is honoured as the [`MockBroker`] describes: a subscription is granted the QoS asked
/// for, and what an offline client's session keeps depends on the delivery QoS. Delivery in
/// memory is otherwise exactly once, unless a script duplicates it. Every operation honours
/// its deadline: one called after its deadline sends nothing and returns
/// [`TransportError::Timeout`], and one blocked by [`MockBroker::freeze`] returns `Timeout` at
/// its deadline. In AWS mode ([`MockBroker::aws`]) a QoS 1 publish the broker discards (rate
/// quota) gets no PUBACK: the call blocks until its deadline and returns `Timeout`, as on
/// AWS IoT Core. Clones share the connection; dropping the last clone disconnects the client
/// (its sink is dropped and gets nothing more).
#[derive(Clone)]
pub struct MockTransport {
    handle: Arc<Handle>,
}

/// The connection behind every clone of a [`MockTransport`]; disconnects when dropped.
struct Handle {
    broker: MockBroker,
    index: usize,
    client_id: String,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.broker.disconnect(self.index);
    }
}

impl fmt::Debug for MockTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockTransport")
            .field("client_id", &self.handle.client_id)
            .finish()
    }
}

impl MockTransport {
    /// The client ID this transport connected with.
    pub fn client_id(&self) -> &str {
        &self.handle.client_id
    }

    /// The transport of a client just connected to `broker` (`index` into `State::clients`).
    pub(super) fn new(broker: MockBroker, index: usize, client_id: &str) -> Self {
        Self {
            handle: Arc::new(Handle {
                broker,
                index,
                client_id: client_id.to_owned(),
            }),
        }
    }

    /// The broker this transport is connected to.
    pub fn broker(&self) -> &MockBroker {
        &self.handle.broker
    }

    /// Disconnects now, as an MQTT DISCONNECT would: the sink is dropped and gets nothing
    /// more, operations queued by [`MockBroker::freeze`] fail with `ConnectionLost`, and every
    /// operation of every clone fails with `NotConnected` from then on.
    pub fn disconnect(&self) {
        self.handle.broker.disconnect(self.handle.index);
    }
}

fn check_deadline(deadline: Instant) -> Result<(), TransportError> {
    if Instant::now() >= deadline {
        return Err(TransportError::Timeout);
    }
    Ok(())
}

impl MqttTransport for MockTransport {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut state = self.handle.broker.shared.state.lock();
        match state.clients.get_mut(self.handle.index) {
            Some(client) if client.sink.is_some() => Err(TransportError::SinkInstalled),
            Some(client) if !client.closed => {
                client.sink = Some(sink);
                Ok(())
            }
            _ => Err(TransportError::NotConnected),
        }
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        check_deadline(deadline)?;
        let (broker, index) = (&self.handle.broker, self.handle.index);
        let queued = broker.queue_if_frozen(index, || {
            let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
            move |broker: &MockBroker| {
                let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
                broker.subscribe(index, &filters, qos)
            }
        })?;
        match queued {
            Some(slot) => slot.wait(deadline),
            None => broker.subscribe(index, filters, qos),
        }
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        check_deadline(deadline)?;
        let (broker, index) = (&self.handle.broker, self.handle.index);
        let queued = broker.queue_if_frozen(index, || {
            let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
            move |broker: &MockBroker| {
                let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
                broker.unsubscribe(index, &filters)
            }
        })?;
        match queued {
            Some(slot) => slot.wait(deadline),
            None => broker.unsubscribe(index, filters),
        }
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        check_deadline(deadline)?;
        let (broker, index) = (&self.handle.broker, self.handle.index);
        let queued = broker.queue_if_frozen(index, || {
            let (topic, payload) = (topic.to_owned(), payload.to_vec());
            move |broker: &MockBroker| broker.publish(index, &topic, &payload, qos)
        })?;
        let outcome = match queued {
            None => broker.publish(index, topic, payload, qos)?,
            // QoS 0 returns once handed to the network; the frozen broker has it.
            Some(_) if qos == QoS::AtMostOnce => return Ok(()),
            Some(slot) => slot.wait(deadline)?,
        };
        match outcome {
            PublishOutcome::Acknowledged => Ok(()),
            PublishOutcome::Discarded if qos == QoS::AtMostOnce => Ok(()),
            // No PUBACK will come: the call times out at its deadline, as on a real broker.
            PublishOutcome::Discarded => {
                std::thread::sleep(deadline.saturating_duration_since(Instant::now()));
                Err(TransportError::Timeout)
            }
        }
    }
}

//! Deliberately broken transports: the in-memory broker's transport with one flaw each, as a
//! porter might write it, and the harness that puts them under test.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use jobs_mock::conformance::{Capability, Harness, HarnessError, MockHarness, Observations};
use parking_lot::Mutex;

/// How a [`Broken`] transport breaks the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flaw {
    /// None: the mock transport as it is.
    None,
    /// Returns `Granted` at once and never subscribes.
    AcksSubscribeBeforeBroker,
    /// Reports every reconnect with `session_present: None`.
    DropsSessionFlag,
    /// Ignores its callers' deadlines.
    IgnoresDeadline,
    /// Calls the sink holding the lock its `publish` takes: allowed by the contract.
    CallsSinkUnderLock,
    /// Delivers from a loop that holds the lock its `publish` takes while it polls for the
    /// next message (with a poll timeout of [`POLL`]), releasing it only after a poll that
    /// found nothing.
    HoldsLockWhilePolling,
    /// Lets a second `set_sink` replace the first.
    SecondSinkTakesOver,
    /// Keeps the sink alive after the transport is dropped.
    LeaksSink,
    /// Never reports `ConnectionLost`.
    SwallowsConnectionLost,
    /// While offline, holds each publish until its deadline (as if queued for later).
    QueuesWhileOffline,
    /// Returns `Ok` from a QoS 1 publish at once and publishes on a thread of its own.
    AcksPublishBeforeBroker,
    /// Completes the oldest waiting publish on each acknowledgement, not the one it is for.
    AcksInArrivalOrder,
    /// A publish waiting for its acknowledgement ignores the link dropping and waits out
    /// its deadline.
    IgnoresLinkDrop,
    /// A panic of the sink ends its delivery path: nothing is delivered afterwards.
    SinkPanicEndsDelivery,
    /// Sends only the first 4 filters of a SUBSCRIBE and reports all of them granted.
    SendsFourFilters,
    /// Keeps publishes that timed out and sends them again before its next publish (the
    /// MQTT session's "resend unacknowledged").
    ResendsAfterTimeout,
    /// Subscribes at QoS 0, whatever was asked, and reports the QoS asked.
    SubscribesAtQos0,
    /// Sends QoS 1 publishes as QoS 0.
    PublishesQos1AsQos0,
    /// Hands the last message to the sink again once the link has been idle for [`IDLE`].
    RedeliversWhenIdle,
    /// `Drop` never returns.
    HangsInDrop,
}

/// How long a `Flaw::HoldsLockWhilePolling` delivery loop waits for the next message.
const POLL: Duration = Duration::from_secs(2);

/// How long `Flaw::RedeliversWhenIdle` waits before delivering the last message again.
const IDLE: Duration = Duration::from_millis(20);

/// A transport of the mock harness with one flaw; its own sink slot sits between the broker
/// and the user.
pub(crate) struct Broken {
    inner: Arc<dyn MqttTransport>,
    flaw: Flaw,
    slot: Arc<Slot>,
    /// `Flaw::AcksInArrivalOrder`: the waiting publishes, oldest first.
    waiting: Arc<Mutex<VecDeque<Sender<()>>>>,
    /// `Flaw::ResendsAfterTimeout`: publishes that timed out.
    outbox: Mutex<Vec<(String, Vec<u8>, QoS)>>,
}

#[derive(Default)]
struct Slot {
    sink: Mutex<Option<Arc<dyn MessageSink>>>,
    /// `Flaw::HoldsLockWhilePolling`: the lock its `publish` needs to send.
    writer: Mutex<()>,
}

/// Where `Flaw::LeaksSink` keeps the sinks of dropped transports.
static LEAKED: Mutex<Vec<Arc<dyn MessageSink>>> = Mutex::new(Vec::new());

type Message = (String, Vec<u8>);

/// Forwards from the inner transport into the slot, with the flaw.
struct Forward {
    slot: Arc<Slot>,
    flaw: Flaw,
    /// `Flaw::HoldsLockWhilePolling` and `Flaw::RedeliversWhenIdle`: the queue their
    /// delivery loop reads.
    queue: Option<Sender<Message>>,
    /// `Flaw::SinkPanicEndsDelivery`: the delivery path is dead.
    dead: AtomicBool,
}

impl Slot {
    fn deliver(&self, topic: &str, payload: &[u8]) {
        let sink = self.sink.lock().clone();
        if let Some(sink) = sink {
            sink.message(topic, payload);
        }
    }
}

/// `Flaw::HoldsLockWhilePolling`: polls for the next message holding the writer lock, and
/// delivers under it; lets go of the lock only after a poll that found nothing. Ends when the
/// queue's sender (in `Forward`) is dropped.
fn poll_under_lock(slot: &Slot, queue: &Receiver<Message>) {
    let mut writer = slot.writer.lock();
    loop {
        match queue.recv_timeout(POLL) {
            Ok((topic, payload)) => slot.deliver(&topic, &payload),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                parking_lot::MutexGuard::unlocked(&mut writer, || {});
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// `Flaw::RedeliversWhenIdle`: delivers each message, and the last one again after [`IDLE`]
/// without traffic.
fn redeliver_when_idle(slot: &Slot, queue: &Receiver<Message>) {
    let mut last: Option<Message> = None;
    loop {
        match queue.recv_timeout(IDLE) {
            Ok((topic, payload)) => {
                slot.deliver(&topic, &payload);
                last = Some((topic, payload));
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some((topic, payload)) = last.take() {
                    slot.deliver(&topic, &payload);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl MessageSink for Forward {
    fn message(&self, topic: &str, payload: &[u8]) {
        if let Some(queue) = &self.queue {
            let _ = queue.send((topic.to_owned(), payload.to_vec()));
            return;
        }
        match self.flaw {
            Flaw::CallsSinkUnderLock => {
                let sink = self.slot.sink.lock();
                if let Some(sink) = sink.as_ref() {
                    sink.message(topic, payload);
                }
            }
            Flaw::SinkPanicEndsDelivery => {
                if self.dead.load(Ordering::SeqCst) {
                    return;
                }
                let delivered = catch_unwind(AssertUnwindSafe(|| {
                    self.slot.deliver(topic, payload);
                }));
                if delivered.is_err() {
                    // As if the panic had unwound out of a delivery thread.
                    self.dead.store(true, Ordering::SeqCst);
                }
            }
            _ => self.slot.deliver(topic, payload),
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        let event = match (self.flaw, event) {
            (Flaw::DropsSessionFlag, ConnectionEvent::Connected { .. }) => {
                ConnectionEvent::Connected {
                    session_present: None,
                }
            }
            (Flaw::SwallowsConnectionLost, ConnectionEvent::ConnectionLost) => return,
            (_, event) => event,
        };
        let sink = self.slot.sink.lock().clone();
        if let Some(sink) = sink {
            sink.connection(event);
        }
    }
}

impl Broken {
    pub(crate) fn new(inner: Box<dyn MqttTransport>, flaw: Flaw) -> Self {
        let slot = Arc::new(Slot::default());
        let queue = match flaw {
            Flaw::HoldsLockWhilePolling | Flaw::RedeliversWhenIdle => {
                let (sender, receiver) = crossbeam_channel::unbounded();
                let slot = Arc::clone(&slot);
                std::thread::spawn(move || {
                    if flaw == Flaw::HoldsLockWhilePolling {
                        poll_under_lock(&slot, &receiver);
                    } else {
                        redeliver_when_idle(&slot, &receiver);
                    }
                });
                Some(sender)
            }
            _ => None,
        };
        inner
            .set_sink(Arc::new(Forward {
                slot: Arc::clone(&slot),
                flaw,
                queue,
                dead: AtomicBool::new(false),
            }))
            .unwrap();
        Self {
            inner: Arc::from(inner),
            flaw,
            slot,
            waiting: Arc::default(),
            outbox: Mutex::new(Vec::new()),
        }
    }

    fn deadline(&self, deadline: Instant) -> Instant {
        match self.flaw {
            Flaw::IgnoresDeadline => Instant::now() + Duration::from_secs(3600),
            _ => deadline,
        }
    }

    /// `Flaw::AcksInArrivalOrder`: sends, and on the acknowledgement completes the oldest
    /// waiting call, then waits for its own completion.
    fn publish_in_arrival_order(
        &self,
        topic: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> Result<(), TransportError> {
        let (done, completed) = crossbeam_channel::bounded(1);
        self.waiting.lock().push_back(done);
        let (inner, waiting) = (Arc::clone(&self.inner), Arc::clone(&self.waiting));
        let (topic, payload) = (topic.to_owned(), payload.to_vec());
        // The "delivery thread": sends, and completes the oldest call when the ack comes.
        std::thread::spawn(move || {
            if inner
                .publish(&topic, &payload, QoS::AtLeastOnce, deadline)
                .is_ok()
                && let Some(oldest) = waiting.lock().pop_front()
            {
                let _ = oldest.send(());
            }
        });
        completed
            .recv_deadline(deadline)
            .map_err(|_| TransportError::Timeout)
    }
}

/// Waits until `deadline`.
fn wait_until(deadline: Instant) {
    let (_never, wait) = crossbeam_channel::bounded::<()>(0);
    let _ = wait.recv_deadline(deadline);
}

impl Drop for Broken {
    fn drop(&mut self) {
        if self.flaw == Flaw::HangsInDrop {
            let (_never, wait) = crossbeam_channel::bounded::<()>(0);
            let _ = wait.recv();
        }
        let sink = self.slot.sink.lock().take();
        if let (Flaw::LeaksSink, Some(sink)) = (self.flaw, sink) {
            LEAKED.lock().push(sink);
        }
    }
}

impl MqttTransport for Broken {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut slot = self.slot.sink.lock();
        if slot.is_some() && self.flaw != Flaw::SecondSinkTakesOver {
            return Err(TransportError::SinkInstalled);
        }
        *slot = Some(sink);
        Ok(())
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        match self.flaw {
            Flaw::AcksSubscribeBeforeBroker => {
                Ok(vec![SubscribeOutcome::Granted(qos); filters.len()])
            }
            Flaw::SendsFourFilters => {
                let sent = filters.get(..4).unwrap_or(filters);
                self.inner.subscribe(sent, qos, deadline)?;
                Ok(vec![SubscribeOutcome::Granted(qos); filters.len()])
            }
            Flaw::SubscribesAtQos0 => {
                let outcomes = self.inner.subscribe(filters, QoS::AtMostOnce, deadline)?;
                Ok(outcomes
                    .into_iter()
                    .map(|o| match o {
                        SubscribeOutcome::Granted(_) => SubscribeOutcome::Granted(qos),
                        refused => refused,
                    })
                    .collect())
            }
            _ => self.inner.subscribe(filters, qos, self.deadline(deadline)),
        }
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        self.inner.unsubscribe(filters, self.deadline(deadline))
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        match self.flaw {
            Flaw::AcksPublishBeforeBroker => {
                let (inner, topic, payload) =
                    (Arc::clone(&self.inner), topic.to_owned(), payload.to_vec());
                std::thread::spawn(move || inner.publish(&topic, &payload, qos, deadline));
                return Ok(());
            }
            Flaw::AcksInArrivalOrder if qos == QoS::AtLeastOnce => {
                return self.publish_in_arrival_order(topic, payload, deadline);
            }
            Flaw::PublishesQos1AsQos0 => {
                return self
                    .inner
                    .publish(topic, payload, QoS::AtMostOnce, deadline);
            }
            Flaw::ResendsAfterTimeout => {
                let outbox = std::mem::take(&mut *self.outbox.lock());
                for (topic, payload, qos) in outbox {
                    let _ = self.inner.publish(&topic, &payload, qos, deadline);
                }
            }
            Flaw::CallsSinkUnderLock => {
                // Sending needs the lock the delivery path holds (as Paho C's mutex).
                drop(self.slot.sink.lock());
            }
            Flaw::HoldsLockWhilePolling => drop(self.slot.writer.lock()),
            _ => {}
        }
        match self
            .inner
            .publish(topic, payload, qos, self.deadline(deadline))
        {
            Err(TransportError::NotConnected) if self.flaw == Flaw::QueuesWhileOffline => {
                // "Queued for the next connection": the caller waits out its deadline.
                wait_until(deadline);
                Err(TransportError::Timeout)
            }
            Err(TransportError::ConnectionLost) if self.flaw == Flaw::IgnoresLinkDrop => {
                wait_until(deadline);
                Err(TransportError::Timeout)
            }
            Err(TransportError::Timeout) if self.flaw == Flaw::ResendsAfterTimeout => {
                self.outbox
                    .lock()
                    .push((topic.to_owned(), payload.to_vec(), qos));
                Err(TransportError::Timeout)
            }
            other => other,
        }
    }
}

/// The mock harness with `Broken` transports under test (each wrapping what the mock harness
/// connects, so the broker controls and observations apply) and healthy peers.
pub(crate) struct BrokenHarness {
    mock: MockHarness,
    flaw: Flaw,
    freeze: bool,
}

impl BrokenHarness {
    pub(crate) fn new(flaw: Flaw) -> Self {
        Self {
            mock: MockHarness::new(),
            flaw,
            freeze: true,
        }
    }

    /// A healthy transport on a harness that cannot freeze its broker.
    pub(crate) fn without_freeze() -> Self {
        Self {
            freeze: false,
            ..Self::new(Flaw::None)
        }
    }
}

impl Harness for BrokenHarness {
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        Ok(Box::new(Broken::new(
            self.mock.transport(client_id)?,
            self.flaw,
        )))
    }

    fn peer(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        self.mock.peer(client_id)
    }

    fn supports(&self, capability: Capability) -> bool {
        (self.freeze || capability != Capability::Freeze) && self.mock.supports(capability)
    }

    fn freeze(&mut self) -> Result<(), HarnessError> {
        self.mock.freeze()
    }

    fn thaw(&mut self) -> Result<(), HarnessError> {
        self.mock.thaw()
    }

    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        self.mock.drop_connections()
    }

    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        self.mock.restore_connections(session_present)
    }

    fn refused_filter(&self) -> Option<String> {
        self.mock.refused_filter()
    }

    fn observations(&self) -> Option<Observations> {
        self.mock.observations()
    }

    fn hold_acks(&mut self, topic: &str) -> Result<(), HarnessError> {
        self.mock.hold_acks(topic)
    }

    fn release_acks(&mut self) -> Result<(), HarnessError> {
        self.mock.release_acks()
    }
}

//! Sessions, QoS, custom responders and a frozen broker, through the public API.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

use jobs_core::Timestamp;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jobs_core::{
    Client, ConnectionEvent, Event, Jobs, MessageSink, MqttTransport, QoS, SubscribeOutcome,
    TransportError,
};
use jobs_mock::{BROKER_CLIENT, MockBroker, MockTransport, Script};
use parking_lot::Mutex;

/// Bound for every cross-thread wait.
const WAIT: Duration = Duration::from_secs(5);

/// What a sink saw, messages and connection events in one sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Message(String, Vec<u8>),
    Event(ConnectionEvent),
}

#[derive(Default)]
struct Recorder {
    seen: Mutex<Vec<Seen>>,
}

impl MessageSink for Recorder {
    fn message(&self, topic: &str, payload: &[u8]) {
        self.seen
            .lock()
            .push(Seen::Message(topic.to_owned(), payload.to_vec()));
    }
    fn connection(&self, event: ConnectionEvent) {
        self.seen.lock().push(Seen::Event(event));
    }
}

impl Recorder {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().clone()
    }

    fn topics(&self) -> Vec<String> {
        self.seen
            .lock()
            .iter()
            .filter_map(|s| match s {
                Seen::Message(topic, _) => Some(topic.clone()),
                Seen::Event(_) => None,
            })
            .collect()
    }
}

fn later() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn message(topic: &str, payload: &[u8]) -> Seen {
    Seen::Message(topic.to_owned(), payload.to_vec())
}

/// A connected client with a recorder as its sink, subscribed to `filters` with `qos`.
fn client(
    broker: &MockBroker,
    id: &str,
    filters: &[&str],
    qos: QoS,
) -> (MockTransport, Arc<Recorder>) {
    let transport = broker.connect(id);
    let recorder = Arc::new(Recorder::default());
    transport
        .set_sink(Arc::clone(&recorder) as Arc<dyn MessageSink>)
        .unwrap();
    if !filters.is_empty() {
        transport.subscribe(filters, qos, later()).unwrap();
    }
    (transport, recorder)
}

#[test]
fn qos1_messages_for_an_offline_client_are_delivered_in_order_after_the_connected_event_of_a_resumed_session()
 {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "publisher", &[], QoS::AtLeastOnce);
    let (_device, seen) = client(&broker, "device", &["n/#"], QoS::AtLeastOnce);
    broker.drop_connection("device");
    broker.inject("n/1", b"one");
    publisher
        .publish("n/2", b"two", QoS::AtLeastOnce, later())
        .unwrap();
    assert_eq!(seen.seen(), [Seen::Event(ConnectionEvent::ConnectionLost)]);

    broker.restore_connection("device", true);
    assert_eq!(
        seen.seen(),
        [
            Seen::Event(ConnectionEvent::ConnectionLost),
            Seen::Event(ConnectionEvent::Connected {
                session_present: Some(true)
            }),
            message("n/1", b"one"),
            message("n/2", b"two"),
        ]
    );
    broker.inject("n/3", b"three");
    assert_eq!(seen.topics(), ["n/1", "n/2", "n/3"]);
}

#[test]
fn a_restore_without_a_session_discards_the_messages_queued_while_offline() {
    let broker = MockBroker::new();
    let (device, seen) = client(&broker, "device", &["n/#"], QoS::AtLeastOnce);
    broker.drop_connection("device");
    broker.inject("n/lost", b"");
    broker.restore_connection("device", false);
    assert!(seen.topics().is_empty());
    device
        .subscribe(&["n/#"], QoS::AtLeastOnce, later())
        .unwrap();
    // The next outage, resumed, delivers only its own message.
    broker.drop_connection("device");
    broker.inject("n/kept", b"");
    broker.restore_connection("device", true);
    assert_eq!(seen.topics(), ["n/kept"]);
}

#[test]
fn qos0_deliveries_to_an_offline_client_are_lost_and_qos1_ones_kept() {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "publisher", &[], QoS::AtLeastOnce);
    let (device, seen) = client(&broker, "device", &["one/#"], QoS::AtLeastOnce);
    let outcomes = device
        .subscribe(&["zero/#"], QoS::AtMostOnce, later())
        .unwrap();
    assert_eq!(outcomes, [SubscribeOutcome::Granted(QoS::AtMostOnce)]);
    broker.drop_connection("device");
    // Published with QoS 0: delivered with QoS 0, lost.
    publisher
        .publish("one/qos0", b"", QoS::AtMostOnce, later())
        .unwrap();
    // Published with QoS 1 on a QoS 1 subscription: kept.
    publisher
        .publish("one/qos1", b"", QoS::AtLeastOnce, later())
        .unwrap();
    // Injected with QoS 1 on a QoS 0 subscription: delivered with QoS 0, lost.
    broker.inject("zero/injected", b"");
    // Injected with QoS 1 on a QoS 1 subscription: kept.
    broker.inject("one/injected", b"");
    broker.restore_connection("device", true);
    assert_eq!(seen.topics(), ["one/qos1", "one/injected"]);
    // Online, a QoS 0 subscription receives messages as usual.
    broker.inject("zero/online", b"");
    assert_eq!(seen.topics(), ["one/qos1", "one/injected", "zero/online"]);
}

#[test]
fn a_notify_published_during_an_outage_is_received_after_a_resumed_session() {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect("pump-07")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    assert!(jobs.changed(), "the first call always reports a change");
    assert!(!jobs.changed());

    broker.drop_connection("pump-07");
    broker.inject(
        "$aws/things/pump-07/jobs/notify-next",
        br#"{"timestamp":5}"#,
    );
    broker.restore_connection("pump-07", true);

    assert!(jobs.changed());
    let event = jobs.try_next_event();
    assert!(
        matches!(&event, Some(Event::NextJobChanged(e)) if e.timestamp == Some(Timestamp::new(5))),
        "{event:?}"
    );
}

#[test]
fn a_custom_responder_may_inject_and_read_what_the_broker_recorded() {
    let broker = MockBroker::new();
    let (device, seen) = client(&broker, "device", &["req/+", "side"], QoS::AtLeastOnce);
    let inside = broker.clone();
    broker.script(
        "req",
        Script::custom(move |topic, _| {
            inside.inject("side", b"from the responder");
            let recorded = inside.published().len();
            vec![(
                format!("{topic}/accepted"),
                recorded.to_string().into_bytes(),
            )]
        }),
    );
    // Run on another thread so that a deadlock fails the test instead of hanging it.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let worker = thread::spawn(move || {
        let result = device.publish("req", b"{}", QoS::AtLeastOnce, later());
        done_tx.send(result.is_ok()).unwrap();
    });
    assert_eq!(done_rx.recv_timeout(WAIT), Ok(true), "publish deadlocked");
    worker.join().unwrap();
    // The request, then the injected message, were recorded before the responder counted.
    assert_eq!(
        seen.seen(),
        [
            message("side", b"from the responder"),
            message("req/accepted", b"2"),
        ]
    );
    assert_eq!(broker.published_on("req/accepted")[0].client, BROKER_CLIENT);
}

#[test]
fn clearing_scripts_may_drop_a_custom_responder_owning_the_last_clone_of_a_transport() {
    let broker = MockBroker::new();
    let (owned, _) = client(&broker, "owned", &["t"], QoS::AtLeastOnce);
    broker.script(
        "req",
        Script::custom(move |_, _| {
            let _still_connected = owned.client_id();
            Vec::new()
        }),
    );
    // Dropping the responder drops the transport, which disconnects from the broker: run on
    // another thread so that a deadlock fails the test instead of hanging it.
    let (done_tx, done_rx) = crossbeam_channel::bounded(1);
    let clearing = broker.clone();
    let worker = thread::spawn(move || {
        clearing.clear_scripts();
        done_tx.send(()).unwrap();
    });
    assert_eq!(
        done_rx.recv_timeout(WAIT),
        Ok(()),
        "clear_scripts deadlocked"
    );
    worker.join().unwrap();
    // The last clone is gone, so the client disconnected for good.
    assert!(broker.subscriptions("owned").is_empty());
}

#[test]
fn a_publish_to_a_frozen_broker_times_out_at_its_deadline_and_is_delivered_after_thaw() {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "publisher", &[], QoS::AtLeastOnce);
    let (_device, seen) = client(&broker, "device", &["t"], QoS::AtLeastOnce);
    broker.freeze();

    let timeout = Duration::from_millis(30);
    let started = Instant::now();
    let result = publisher.publish("t", b"late", QoS::AtLeastOnce, started + timeout);
    let waited = started.elapsed();
    assert!(matches!(result, Err(TransportError::Timeout)), "{result:?}");
    assert!(waited >= timeout, "returned early, after {waited:?}");
    assert!(
        waited < timeout + Duration::from_secs(2),
        "waited {waited:?}"
    );
    assert!(seen.topics().is_empty());
    assert!(broker.published().is_empty());
    assert_eq!(broker.queued_count(), 1);

    broker.thaw();
    assert_eq!(seen.seen(), [message("t", b"late")]);
    assert_eq!(broker.published_on("t").len(), 1);
    assert_eq!(broker.queued_count(), 0);
}

#[test]
fn a_subscribe_blocked_by_a_frozen_broker_returns_ok_after_a_thaw_from_another_thread() {
    let broker = MockBroker::new();
    let (device, _) = client(&broker, "device", &[], QoS::AtLeastOnce);
    broker.freeze();
    let (result_tx, result_rx) = crossbeam_channel::bounded(1);
    let subscriber = thread::spawn({
        let device = device.clone();
        move || {
            let result = device.subscribe(&["a", "b"], QoS::AtLeastOnce, later());
            result_tx.send(result).unwrap();
        }
    });
    assert!(broker.wait_for_queued(1, WAIT), "subscribe was not queued");
    assert!(
        result_rx.try_recv().is_err(),
        "subscribe returned while frozen"
    );
    assert!(broker.subscriptions("device").is_empty());

    let thawer = {
        let broker = broker.clone();
        thread::spawn(move || broker.thaw())
    };
    let outcomes = result_rx.recv_timeout(WAIT).unwrap().unwrap();
    assert_eq!(
        outcomes,
        [
            SubscribeOutcome::Granted(QoS::AtLeastOnce),
            SubscribeOutcome::Granted(QoS::AtLeastOnce)
        ]
    );
    thawer.join().unwrap();
    subscriber.join().unwrap();
    assert_eq!(broker.subscriptions("device"), ["a", "b"]);
}

#[test]
fn operations_queued_by_a_frozen_broker_are_applied_in_order_at_thaw() {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "publisher", &[], QoS::AtLeastOnce);
    let (device, seen) = client(&broker, "device", &["t/1"], QoS::AtLeastOnce);
    broker.freeze();
    // QoS 0 returns once handed over; the QoS 1 ones give up at once.
    publisher
        .publish("t/1", b"a", QoS::AtMostOnce, later())
        .unwrap();
    let soon = Instant::now() + Duration::from_millis(10);
    assert!(matches!(
        device.subscribe(&["t/2"], QoS::AtLeastOnce, soon),
        Err(TransportError::Timeout)
    ));
    publisher
        .publish("t/2", b"b", QoS::AtMostOnce, later())
        .unwrap();
    let soon = Instant::now() + Duration::from_millis(10);
    assert!(matches!(
        device.unsubscribe(&["t/1"], soon),
        Err(TransportError::Timeout)
    ));
    publisher
        .publish("t/1", b"c", QoS::AtMostOnce, later())
        .unwrap();
    assert_eq!(broker.queued_count(), 5);
    assert!(seen.topics().is_empty());

    broker.thaw();
    // "a" before the unsubscribe, "b" after the subscribe; "c" after the unsubscribe is gone.
    assert_eq!(seen.seen(), [message("t/1", b"a"), message("t/2", b"b")]);
    assert_eq!(broker.subscriptions("device"), ["t/2"]);
}

#[test]
fn an_operation_past_its_deadline_sends_nothing_even_to_a_frozen_broker() {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "publisher", &[], QoS::AtLeastOnce);
    broker.freeze();
    let result = publisher.publish("t", b"", QoS::AtLeastOnce, Instant::now());
    assert!(matches!(result, Err(TransportError::Timeout)));
    assert_eq!(broker.queued_count(), 0);
    broker.thaw();
    assert!(broker.published().is_empty());
}

#[test]
fn an_operation_queued_by_a_frozen_broker_fails_with_connection_lost_when_the_connection_drops() {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "publisher", &[], QoS::AtLeastOnce);
    let (_device, seen) = client(&broker, "device", &["t"], QoS::AtLeastOnce);
    broker.freeze();
    let (result_tx, result_rx) = crossbeam_channel::bounded(1);
    let caller = thread::spawn(move || {
        let result = publisher.publish("t", b"", QoS::AtLeastOnce, later());
        result_tx.send(result).unwrap();
    });
    assert!(broker.wait_for_queued(1, WAIT));
    broker.drop_connection("publisher");
    assert!(matches!(
        result_rx.recv_timeout(WAIT).unwrap(),
        Err(TransportError::ConnectionLost)
    ));
    caller.join().unwrap();
    assert_eq!(broker.queued_count(), 0);
    broker.thaw();
    assert!(seen.topics().is_empty());
}

#[test]
fn a_frozen_broker_still_delivers_injected_messages() {
    let broker = MockBroker::new();
    let (_device, seen) = client(&broker, "device", &["t"], QoS::AtLeastOnce);
    broker.freeze();
    broker.inject("t", b"x");
    assert_eq!(seen.topics(), ["t"]);
    broker.thaw();
}

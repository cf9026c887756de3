//! The scriptable broker on its own, through the `MqttTransport` trait.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::topics::ReplyKind;
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use jobs_mock::{BROKER_CLIENT, MockBroker, Script};
use parking_lot::Mutex;
use serde_json::json;

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(String, Vec<u8>)>>,
    events: Mutex<Vec<ConnectionEvent>>,
}

impl MessageSink for Recorder {
    fn message(&self, topic: &str, payload: &[u8]) {
        self.messages
            .lock()
            .push((topic.to_owned(), payload.to_vec()));
    }
    fn connection(&self, event: ConnectionEvent) {
        self.events.lock().push(event);
    }
}

fn client(
    broker: &MockBroker,
    id: &str,
    filters: &[&str],
) -> (jobs_mock::MockTransport, Arc<Recorder>) {
    let transport = broker.connect(id);
    let recorder = Arc::new(Recorder::default());
    transport
        .set_sink(Arc::clone(&recorder) as Arc<dyn MessageSink>)
        .unwrap();
    if !filters.is_empty() {
        transport
            .subscribe(
                filters,
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
    }
    (transport, recorder)
}

fn topics(recorder: &Recorder) -> Vec<String> {
    recorder
        .messages
        .lock()
        .iter()
        .map(|(t, _)| t.clone())
        .collect()
}

#[test]
fn messages_are_routed_to_every_matching_subscriber_and_wildcards_skip_dollar_topics() {
    let broker = MockBroker::new();
    let (publisher, _) = client(&broker, "p", &[]);
    let (_a, all) = client(&broker, "a", &["#"]);
    let (_b, things) = client(&broker, "b", &["$aws/things/+/jobs/notify"]);
    publisher
        .publish(
            "$aws/things/t1/jobs/notify",
            b"{}",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    publisher
        .publish(
            "plain/topic",
            b"{}",
            QoS::AtMostOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(topics(&all), ["plain/topic"]);
    assert_eq!(topics(&things), ["$aws/things/t1/jobs/notify"]);
}

#[test]
fn scripted_replies_echo_the_token_and_arrive_before_publish_returns() {
    let broker = MockBroker::new();
    broker.script("req", Script::accept(json!({"ok": true})));
    let (transport, recorder) = client(&broker, "c", &["req/+"]);
    transport
        .publish(
            "req",
            br#"{"clientToken":"abc"}"#,
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let messages = recorder.messages.lock().clone();
    assert_eq!(messages.len(), 1);
    assert_eq!(messages[0].0, "req/accepted");
    let body: serde_json::Value = serde_json::from_slice(&messages[0].1).unwrap();
    assert_eq!(body, json!({"ok": true, "clientToken": "abc"}));
    assert_eq!(broker.published_on("req/accepted")[0].client, BROKER_CLIENT);
}

#[test]
fn limited_scripts_fall_through_to_later_ones_in_order() {
    let broker = MockBroker::new();
    broker.script(
        "req",
        Script::reject(jobs_core::RejectCode::RequestThrottled, "slow").times(2),
    );
    broker.script("req", Script::raw(ReplyKind::Accepted, b"done".to_vec()));
    let (transport, recorder) = client(&broker, "c", &["req/+"]);
    for _ in 0..3 {
        transport
            .publish(
                "req",
                b"{}",
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
    }
    assert_eq!(
        topics(&recorder),
        ["req/rejected", "req/rejected", "req/accepted"]
    );
}

#[test]
fn held_replies_wait_for_release_and_duplicates_come_twice() {
    let broker = MockBroker::new();
    broker.script("req", Script::accept(json!({})).held().twice());
    let (transport, recorder) = client(&broker, "c", &["req/+"]);
    transport
        .publish(
            "req",
            b"{}",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert!(topics(&recorder).is_empty());
    assert_eq!(broker.held_count(), 2);
    assert_eq!(broker.release_held(), 2);
    assert_eq!(topics(&recorder), ["req/accepted", "req/accepted"]);
}

#[test]
fn a_dropped_connection_fails_fast_and_a_restore_without_session_forgets_subscriptions() {
    let broker = MockBroker::new();
    let (transport, recorder) = client(&broker, "c", &["x"]);
    broker.drop_connection("c");
    assert!(matches!(
        transport.publish(
            "x",
            b"",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10)
        ),
        Err(TransportError::NotConnected)
    ));
    assert!(matches!(
        transport.subscribe(
            &["y"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10)
        ),
        Err(TransportError::NotConnected)
    ));
    broker.restore_connection("c", false);
    assert!(broker.subscriptions("c").is_empty());
    assert_eq!(
        *recorder.events.lock(),
        [
            ConnectionEvent::ConnectionLost,
            ConnectionEvent::Connected {
                session_present: Some(false)
            }
        ]
    );
}

#[test]
fn connecting_twice_with_one_client_id_drops_the_older_connection() {
    let broker = MockBroker::new();
    let (old, recorder) = client(&broker, "same", &["x"]);
    let (_new, _) = client(&broker, "same", &[]);
    assert_eq!(*recorder.events.lock(), [ConnectionEvent::ConnectionLost]);
    assert!(matches!(
        old.publish(
            "x",
            b"",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10)
        ),
        Err(TransportError::NotConnected)
    ));
    broker.restore_connection("same", false);
    assert!(matches!(
        old.publish(
            "x",
            b"",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10)
        ),
        Err(TransportError::NotConnected)
    ));
}

#[test]
fn refused_filters_and_failed_publishes_are_reported() {
    let broker = MockBroker::new();
    broker.refuse_subscriptions("secret/#");
    let (transport, _) = client(&broker, "c", &[]);
    let outcomes = transport
        .subscribe(
            &["open", "secret/#"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        outcomes,
        [
            SubscribeOutcome::Granted(QoS::AtLeastOnce),
            SubscribeOutcome::Refused
        ]
    );
    broker.fail_next_publish("c", TransportError::ConnectionLost);
    assert!(matches!(
        transport.publish(
            "open",
            b"",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10)
        ),
        Err(TransportError::ConnectionLost)
    ));
    assert!(
        transport
            .publish(
                "open",
                b"",
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10)
            )
            .is_ok()
    );
    transport
        .unsubscribe(&["open"], Instant::now() + Duration::from_secs(10))
        .unwrap();
    assert!(broker.subscriptions("c").is_empty());
}

#[test]
fn recording_can_be_turned_off_for_long_runs() {
    let broker = MockBroker::new();
    let (transport, _) = client(&broker, "c", &[]);
    transport
        .publish(
            "a",
            b"1",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(broker.published().len(), 1);
    broker.set_recording(false);
    transport
        .publish(
            "a",
            b"2",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert!(broker.published().is_empty());
    assert!(broker.subscribe_requests().is_empty());
}

//! Requests and replies through `jobs_core` over Paho and a real mosquitto.

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{QUEUED_JOB, Responder, channel_sink, start_broker, unique};
use jobs_core::{Client, JobStatus, Jobs, MqttTransport, QoS, SubscribeOutcome};
use jobs_mock::local_broker::LocalBroker;
use jobs_paho::{MqttVersion, PahoTransport, Session};

const WAIT: Duration = Duration::from_secs(5);

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failed connect fails the test"
)]
fn transport(broker: &LocalBroker) -> PahoTransport {
    PahoTransport::builder(&broker.uri(), &unique("device"))
        .operation_timeout(WAIT)
        .build()
        .unwrap()
}

#[test]
fn list_is_answered_through_paho_and_mosquitto() {
    let broker = start_broker();
    let _service = Responder::start(&broker.uri());
    let client = Client::new(transport(&broker)).unwrap();
    let jobs = Jobs::builder(&client, "pump-07")
        .timeout(WAIT)
        .build()
        .unwrap();

    assert!(jobs.changed());
    let pending = jobs.list().unwrap();

    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id().as_str(), QUEUED_JOB);
    assert_eq!(pending[0].status(), Some(&JobStatus::Queued));
    assert!(!jobs.changed());
}

#[test]
fn several_things_share_one_connection_and_call_concurrently() {
    let broker = start_broker();
    let _service = Responder::start(&broker.uri());
    let client = Client::new(transport(&broker)).unwrap();
    let things: Vec<Jobs> = (0..4)
        .map(|i| {
            Jobs::builder(&client, format!("thing-{i}"))
                .timeout(WAIT)
                .build()
                .unwrap()
        })
        .collect();

    let handles: Vec<_> = things
        .into_iter()
        .map(|jobs| {
            thread::spawn(move || {
                for _ in 0..10 {
                    let pending = jobs.list().unwrap();
                    assert_eq!(pending[0].id().as_str(), QUEUED_JOB);
                }
            })
        })
        .collect();
    for handle in handles {
        handle.join().unwrap();
    }
}

#[test]
fn published_message_reaches_a_subscriber_after_its_puback() {
    let broker = start_broker();
    let receiver = transport(&broker);
    let (messages, _events) = channel_sink(&receiver);
    let outcomes = receiver
        .subscribe(
            &["test/+/data", "test/other"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(
        outcomes,
        vec![SubscribeOutcome::Granted(QoS::AtLeastOnce); 2]
    );
    let sender = transport(&broker);

    sender
        .publish(
            "test/a/data",
            b"\x00binary\xff",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    sender
        .publish(
            "test/other",
            b"qos0",
            QoS::AtMostOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();

    let first = messages.recv_timeout(WAIT).unwrap();
    assert_eq!(
        first,
        ("test/a/data".to_owned(), b"\x00binary\xff".to_vec())
    );
    let second = messages.recv_timeout(WAIT).unwrap();
    assert_eq!(second, ("test/other".to_owned(), b"qos0".to_vec()));

    receiver
        .unsubscribe(&["test/+/data"], Instant::now() + Duration::from_secs(10))
        .unwrap();
    sender
        .publish(
            "test/a/data",
            b"gone",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    sender
        .publish(
            "test/other",
            b"marker",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    // Ordered delivery from one publisher: the marker proves the unsubscribed one was skipped.
    assert_eq!(messages.recv_timeout(WAIT).unwrap().1, b"marker".to_vec());
}

#[test]
fn messages_arriving_before_the_sink_is_installed_are_delivered_in_order_once_it_is() {
    let broker = start_broker();
    let receiver = Arc::new(transport(&broker));
    // Against the contract's usual order (sink first) on purpose: the transport tolerates it.
    receiver
        .subscribe(
            &["early/#"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let sender = transport(&broker);
    for i in 0..5 {
        sender
            .publish(
                &format!("early/{i}"),
                b"x",
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
    }

    let (messages, _events) = channel_sink(receiver.as_ref());

    for i in 0..5 {
        let (topic, _) = messages.recv_timeout(WAIT).unwrap();
        assert_eq!(topic, format!("early/{i}"));
    }
}

#[test]
fn a_panicking_sink_does_not_stop_delivery() {
    #[derive(Debug)]
    struct Flaky(crossbeam_channel::Sender<String>);
    impl jobs_core::MessageSink for Flaky {
        fn message(&self, topic: &str, _payload: &[u8]) {
            if topic == "boom" {
                // On purpose; resume_unwind skips the panic hook (no backtrace printed).
                std::panic::resume_unwind(Box::new("sink panics on purpose"));
            }
            let _ = self.0.send(topic.to_owned());
        }
        fn connection(&self, _event: jobs_core::ConnectionEvent) {}
    }

    let broker = start_broker();
    let receiver = transport(&broker);
    let (tx, rx) = crossbeam_channel::unbounded();
    receiver.set_sink(Arc::new(Flaky(tx))).unwrap();
    receiver
        .subscribe(
            &["#"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let sender = transport(&broker);

    sender
        .publish(
            "boom",
            b"",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    sender
        .publish(
            "after",
            b"",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();

    assert_eq!(rx.recv_timeout(WAIT).unwrap(), "after");
}

#[test]
fn mqtt5_connection_subscribes_and_round_trips() {
    let broker = start_broker();
    let transport = PahoTransport::builder(&broker.uri(), &unique("v5"))
        .mqtt_version(MqttVersion::V5)
        .operation_timeout(WAIT)
        .build()
        .unwrap();
    let (messages, _events) = channel_sink(&transport);

    assert_eq!(
        transport
            .subscribe(
                &["v5/one"],
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10)
            )
            .unwrap(),
        vec![SubscribeOutcome::Granted(QoS::AtLeastOnce)]
    );
    assert_eq!(
        transport
            .subscribe(
                &["v5/two", "v5/three"],
                QoS::AtMostOnce,
                Instant::now() + Duration::from_secs(10)
            )
            .unwrap(),
        vec![SubscribeOutcome::Granted(QoS::AtMostOnce); 2]
    );
    transport
        .publish(
            "v5/one",
            b"five",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();

    assert_eq!(
        messages.recv_timeout(WAIT).unwrap(),
        ("v5/one".to_owned(), b"five".to_vec())
    );
}

#[test]
fn persistent_session_is_resumed_on_the_next_connect_with_the_same_client_id() {
    let broker = start_broker();
    let id = unique("persistent");
    let connect = || {
        PahoTransport::builder(&broker.uri(), &id)
            .session(Session::Persistent {
                expiry: Duration::from_secs(60),
            })
            .operation_timeout(WAIT)
            .build()
            .unwrap()
    };
    let first = connect();
    assert!(!first.session_present());
    first
        .subscribe(
            &["kept/#"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    drop(first);

    let second = connect();

    assert!(second.session_present());
}

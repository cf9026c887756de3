//! Behaviour while the broker is down, and recovery after it comes back on the same port.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{QUEUED_JOB, Responder, channel_sink, start_broker, unique};
use jobs_core::{Client, ConnectionEvent, Error, Jobs, MqttTransport, QoS, TransportError};
use jobs_mock::local_broker::LocalBroker;
use jobs_paho::PahoTransport;

const WAIT: Duration = Duration::from_secs(5);
const RECONNECT: Duration = Duration::from_secs(20);

#[expect(
    clippy::unwrap_used,
    reason = "test helper: a failed connect fails the test"
)]
fn transport(broker: &LocalBroker) -> PahoTransport {
    PahoTransport::builder(&broker.uri(), &unique("device"))
        .operation_timeout(WAIT)
        .keep_alive(Duration::from_secs(5))
        .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
        .build()
        .unwrap()
}

/// A transport whose broker was killed, once the transport has noticed.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: a missing event fails the test"
)]
fn offline_transport() -> (LocalBroker, PahoTransport) {
    let mut broker = start_broker();
    let transport = transport(&broker);
    let (_messages, events) = channel_sink(&transport);
    broker.kill();
    assert_eq!(
        events.recv_timeout(WAIT).unwrap(),
        ConnectionEvent::ConnectionLost
    );
    (broker, transport)
}

#[test]
fn publish_and_subscribe_while_offline_fail_fast_with_not_connected() {
    let (_broker, transport) = offline_transport();

    let started = Instant::now();
    let publish = transport.publish(
        "offline/topic",
        b"x",
        QoS::AtLeastOnce,
        Instant::now() + Duration::from_secs(10),
    );
    let subscribe = transport.subscribe(
        &["offline/#"],
        QoS::AtLeastOnce,
        Instant::now() + Duration::from_secs(10),
    );
    let elapsed = started.elapsed();

    assert!(
        matches!(publish, Err(TransportError::NotConnected)),
        "{publish:?}"
    );
    assert!(
        matches!(subscribe, Err(TransportError::NotConnected)),
        "{subscribe:?}"
    );
    assert!(elapsed < Duration::from_millis(500), "took {elapsed:?}");
    assert!(!transport.is_connected());
}

#[test]
fn transport_reconnects_after_the_broker_restarts_and_reports_it() {
    let mut broker = start_broker();
    let transport = transport(&broker);
    let (messages, events) = channel_sink(&transport);

    broker.kill();
    assert_eq!(
        events.recv_timeout(WAIT).unwrap(),
        ConnectionEvent::ConnectionLost
    );
    broker.restart().unwrap();

    assert_eq!(
        events.recv_timeout(RECONNECT).unwrap(),
        // A clean session is never resumed, so the transport says so.
        ConnectionEvent::Connected {
            session_present: Some(false)
        }
    );
    // Clean session: the subscription is gone until made again, which now works.
    transport
        .subscribe(
            &["back/#"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    transport
        .publish(
            "back/1",
            b"x",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert_eq!(messages.recv_timeout(WAIT).unwrap().0, "back/1");
}

#[test]
fn jobs_calls_fail_clearly_during_an_outage_and_succeed_after_automatic_reconnect() {
    let mut broker = start_broker();
    let service = Responder::start(&broker.uri());
    let transport = Arc::new(transport(&broker));
    let client = Client::from_arc(transport.clone()).unwrap();
    let jobs = Jobs::builder(&client, "pump-07")
        .timeout(WAIT)
        .build()
        .unwrap();
    assert_eq!(jobs.list().unwrap()[0].id().as_str(), QUEUED_JOB);
    assert!(jobs.changed()); // the start-up flag; cleared now

    broker.kill();
    // A bounded wait for the transport to notice (a killed broker resets the TCP connection).
    let deadline = Instant::now() + WAIT;
    while transport.is_connected() {
        assert!(Instant::now() < deadline, "outage not noticed");
        std::thread::yield_now();
    }
    let timeout = Duration::from_secs(2);
    let started = Instant::now();
    let during = jobs.with_timeout(timeout).list();
    assert!(started.elapsed() < timeout, "took {:?}", started.elapsed());
    assert!(
        matches!(
            during,
            Err(Error::Transport {
                source: TransportError::NotConnected | TransportError::ConnectionLost,
                ..
            })
        ),
        "{during:?}"
    );

    broker.restart().unwrap();
    // Reconnection: a bounded series of attempts, each bounded by its own timeout. The first
    // successful one has re-subscribed (jobs-core does it after the Connected event).
    let deadline = Instant::now() + RECONNECT;
    let pending = loop {
        match jobs.with_timeout(Duration::from_secs(1)).list() {
            Ok(pending) => break pending,
            Err(error) => assert!(
                Instant::now() < deadline,
                "no successful call within {RECONNECT:?}; last error {error:?}"
            ),
        }
    };
    assert_eq!(pending[0].id().as_str(), QUEUED_JOB);
    assert!(
        jobs.changed(),
        "a reconnect without session must report a change"
    );
    assert_eq!(jobs.list().unwrap()[0].id().as_str(), QUEUED_JOB);
    drop(service);
}

#[test]
fn dropping_a_transport_while_the_broker_is_down_returns_promptly() {
    let (_broker, transport) = offline_transport();

    let started = Instant::now();
    drop(transport);

    assert!(started.elapsed() < WAIT, "took {:?}", started.elapsed());
}

#[test]
fn connecting_where_nothing_listens_fails_as_refused_naming_the_uri_and_address() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap();
    let error = PahoTransport::builder(&format!("tcp://127.0.0.1:{port}"), &unique("nobody"))
        .connect_timeout(Duration::from_secs(2))
        .build()
        .unwrap_err();
    match &error {
        jobs_paho::ConnectError::Tcp {
            uri,
            address,
            source,
        } => {
            assert_eq!(uri, &format!("tcp://127.0.0.1:{port}"));
            assert_eq!(address.port(), port);
            assert_eq!(source.kind(), std::io::ErrorKind::ConnectionRefused);
        }
        other => panic!("unexpected {other:#?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains(&format!("tcp://127.0.0.1:{port}")) && text.contains("connection refused"),
        "{text}"
    );
}

/// The broker paused (SIGSTOP, [`LocalBroker::pause`]) until dropped (resumed): a broker that
/// accepts bytes on its socket but never acknowledges, like one that hangs.
struct Frozen<'a>(&'a LocalBroker);

impl<'a> Frozen<'a> {
    #[expect(
        clippy::expect_used,
        reason = "test helper: a broker that cannot pause fails the test"
    )]
    fn new(broker: &'a LocalBroker) -> Self {
        broker.pause().expect("the broker pauses");
        Self(broker)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        let _ = self.0.resume();
    }
}

#[test]
fn a_call_against_a_hung_broker_returns_timeout_by_its_deadline_not_the_operation_timeout() {
    let broker = start_broker();
    let client = Client::new(transport(&broker)).unwrap();
    let jobs = Jobs::new(&client, unique("thing")).unwrap();
    let short = Duration::from_millis(200);
    let frozen = Frozen::new(&broker);
    let started = Instant::now();
    let error = jobs.with_timeout(short).list().unwrap_err();
    let took = started.elapsed();
    drop(frozen);
    assert!(error.is_timeout(), "{error}");
    assert!(
        took >= short && took < short + Duration::from_secs(2),
        "took {took:?}; the operation timeout is {WAIT:?}"
    );
}

#[test]
fn an_operation_whose_deadline_has_passed_sends_nothing() {
    let broker = start_broker();
    let sender = transport(&broker);
    let listener = transport(&broker);
    let (messages, _events) = channel_sink(&listener);
    listener
        .subscribe(&["late/#"], QoS::AtLeastOnce, Instant::now() + WAIT)
        .unwrap();
    let passed = Instant::now();
    assert!(matches!(
        sender.publish("late/1", b"x", QoS::AtLeastOnce, passed),
        Err(TransportError::Timeout)
    ));
    sender
        .publish("late/2", b"y", QoS::AtLeastOnce, Instant::now() + WAIT)
        .unwrap();
    let (topic, _) = messages.recv_timeout(WAIT).unwrap();
    assert_eq!(topic, "late/2", "the late publish must not have been sent");
}

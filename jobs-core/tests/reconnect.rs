//! Connection loss and reconnects, with and without a resumed session.

mod common;

use jobs_core::Timestamp;
use std::thread;
use std::time::Duration;

use common::{THING, setup, topic};
use jobs_core::{Error, Event, TransportError};
use jobs_mock::Script;
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);

#[test]
fn a_call_in_flight_fails_at_once_with_connection_lost_when_the_connection_drops() {
    let s = setup();
    let (request_tx, request_rx) = crossbeam_channel::bounded(1);
    s.broker.script(
        &topic("get"),
        Script::custom(move |_, _| {
            request_tx.send(()).unwrap();
            Vec::new()
        }),
    );
    let jobs = s.jobs.clone();
    let call = thread::spawn(move || jobs.with_timeout(Duration::from_secs(60)).list());
    request_rx.recv_timeout(WAIT).unwrap();
    s.broker.drop_connection(THING);
    let error = call.join().unwrap().unwrap_err();
    assert!(matches!(
        error,
        Error::Transport {
            source: TransportError::ConnectionLost,
            ..
        }
    ));
    assert!(error.is_retryable());
}

#[test]
fn calls_while_offline_fail_fast_with_not_connected() {
    let s = setup();
    s.broker.drop_connection(THING);
    let error = s
        .jobs
        .with_timeout(Duration::from_secs(60))
        .list()
        .unwrap_err();
    assert!(matches!(
        error,
        Error::Transport {
            source: TransportError::NotConnected,
            ..
        }
    ));
}

#[test]
fn a_reconnect_without_session_sets_changed_and_the_next_call_resubscribes() {
    let s = setup();
    s.broker.script(&topic("get"), Script::accept(json!({})));
    assert!(s.jobs.changed());
    s.broker.drop_connection(THING);
    s.broker.restore_connection(THING, false);
    assert!(s.broker.subscriptions(THING).is_empty());
    assert!(s.jobs.changed());
    s.jobs.list().unwrap();
    assert_eq!(s.broker.subscribe_requests().len(), 2);
    assert_eq!(s.broker.subscriptions(THING).len(), 6);
    s.jobs.list().unwrap();
    assert_eq!(s.broker.subscribe_requests().len(), 2);
}

#[test]
fn a_reconnect_with_a_resumed_session_keeps_subscriptions_and_changed() {
    let s = setup();
    s.broker.script(&topic("get"), Script::accept(json!({})));
    assert!(s.jobs.changed());
    s.broker.drop_connection(THING);
    s.broker.restore_connection(THING, true);
    assert!(!s.jobs.changed());
    s.jobs.list().unwrap();
    assert_eq!(s.broker.subscribe_requests().len(), 1);
}

#[test]
fn a_publish_failure_is_reported_as_a_transport_error() {
    let s = setup();
    s.broker.fail_next_publish(THING, TransportError::Timeout);
    let error = s.jobs.list().unwrap_err();
    assert!(matches!(
        error,
        Error::Transport {
            source: TransportError::Timeout,
            ..
        }
    ));
}

#[test]
fn a_thread_waiting_for_events_resubscribes_after_a_reconnect_and_keeps_hearing_them() {
    let s = setup();
    let jobs = s.jobs.clone();
    let (waiting_tx, waiting_rx) = crossbeam_channel::bounded(1);
    let waiter = thread::spawn(move || {
        waiting_tx.send(()).unwrap();
        jobs.with_timeout(Duration::from_secs(30)).next_event()
    });
    waiting_rx.recv_timeout(WAIT).unwrap();
    s.broker.drop_connection(THING);
    s.broker.restore_connection(THING, false);
    // The waiter restores the subscription itself.
    assert!(
        s.broker.wait_for_subscriptions(THING, 6, WAIT),
        "waiter did not resubscribe"
    );
    s.broker
        .inject(&topic("notify-next"), br#"{"timestamp":5}"#);
    let event = waiter.join().unwrap().unwrap();
    assert!(
        matches!(event, Some(Event::NextJobChanged(e)) if e.execution.is_none() && e.timestamp == Some(Timestamp::new(5)))
    );
}

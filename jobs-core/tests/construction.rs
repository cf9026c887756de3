//! Integration tests of construction through the public API on the mock broker.

mod common;

use common::{THING, setup, topic};
use jobs_core::{Client, Error, InvalidInput, Jobs, NameError, TransportError};
use jobs_mock::MockBroker;

#[test]
fn construction_subscribes_the_six_filters_in_one_subscribe_before_any_publish() {
    let s = setup();
    let subscribes = s.broker.subscribe_requests();
    assert_eq!(subscribes.len(), 1);
    assert_eq!(
        subscribes[0].filters,
        [
            topic("notify"),
            topic("notify-next"),
            topic("get/+"),
            topic("start-next/+"),
            topic("+/get/+"),
            topic("+/update/+"),
        ]
    );
    assert!(s.broker.published().is_empty());
}

#[test]
fn calls_do_not_subscribe_again_while_the_session_lasts() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        jobs_mock::Script::accept(serde_json::json!({})),
    );
    s.jobs.list().unwrap();
    s.jobs.list().unwrap();
    assert_eq!(s.broker.subscribe_requests().len(), 1);
}

#[test]
fn a_refused_filter_fails_construction_with_subscription_refused() {
    let broker = MockBroker::new();
    broker.refuse_subscriptions(&topic("+/update/+"));
    let client = Client::new(broker.connect(THING)).unwrap();
    let error = Jobs::new(&client, THING).unwrap_err();
    assert!(matches!(
        error,
        Error::Transport { source: TransportError::SubscriptionRefused { filter }, .. }
            if filter == topic("+/update/+")
    ));
}

#[test]
fn a_thing_name_with_topic_wildcards_never_reaches_the_broker() {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect("gateway")).unwrap();
    for bad in ["x/+/#", "", "a b", &"t".repeat(129)] {
        let error = Jobs::new(&client, bad).unwrap_err();
        assert!(
            matches!(error, Error::InvalidInput(InvalidInput::ThingName { .. })),
            "{bad:?}"
        );
    }
    let error = Jobs::new(&client, "x/+/#").unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::ThingName {
            reason: NameError::InvalidCharacter {
                character: '/',
                position: 1
            },
            ..
        })
    ));
    assert!(broker.subscribe_requests().is_empty());
}

#[test]
fn a_second_jobs_for_the_same_thing_on_one_client_is_refused_until_the_first_is_dropped() {
    let s = setup();
    let error = Jobs::new(&s.client, THING).unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::DuplicateThing(_))
    ));
    drop(s.jobs);
    assert!(Jobs::new(&s.client, THING).is_ok());
}

#[test]
fn construction_while_offline_fails_with_not_connected() {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect(THING)).unwrap();
    broker.drop_connection(THING);
    let error = Jobs::new(&client, THING).unwrap_err();
    assert!(matches!(
        error,
        Error::Transport {
            source: TransportError::NotConnected,
            ..
        }
    ));
    assert!(error.is_retryable());
}

#[test]
fn changed_is_true_on_the_first_call_only() {
    let s = setup();
    assert!(s.jobs.changed());
    assert!(!s.jobs.changed());
}

#[test]
fn client_jobs_and_job_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Client>();
    assert_send_sync::<Jobs>();
    assert_send_sync::<jobs_core::Job>();
    assert_send_sync::<Error>();
}

#[test]
fn a_second_client_on_a_clone_of_a_transport_is_refused_and_the_first_keeps_its_sink() {
    let s = setup();
    let transport = s.broker.connect("gateway");
    let first = Client::new(transport.clone()).unwrap();
    let second = Client::new(transport);
    assert!(matches!(
        second,
        Err(Error::Transport {
            source: TransportError::SinkInstalled,
            ..
        })
    ));
    s.broker.script(
        "$aws/things/pump-09/jobs/get",
        jobs_mock::Script::accept(serde_json::json!({})),
    );
    let jobs = Jobs::new(&first, "pump-09").unwrap();
    assert!(jobs.list().unwrap().is_empty());
}

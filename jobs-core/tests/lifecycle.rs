//! Registration of things on a client: dropping and rebuilding, duplicates, closing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{THING, setup, topic};
use jobs_core::{Client, Error, InvalidInput, Jobs, ThingName};
use jobs_mock::{MockBroker, Script};
use serde_json::json;

#[test]
fn building_jobs_right_after_the_last_one_was_dropped_always_works_under_notify_traffic() {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect(THING)).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (broker, stop) = (broker.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            let notify = format!("$aws/things/{THING}/jobs/notify");
            while !stop.load(Ordering::Relaxed) {
                broker.inject(&notify, br#"{"timestamp":1,"jobs":{}}"#);
            }
        })
    };
    for round in 0..500 {
        let jobs = Jobs::new(&client, THING);
        assert!(jobs.is_ok(), "round {round}: {:?}", jobs.err());
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
}

#[test]
fn a_second_jobs_for_a_registered_thing_says_to_clone_the_first() {
    let s = setup();
    let error = Jobs::new(&s.client, THING).unwrap_err();
    assert!(matches!(
        &error,
        Error::InvalidInput(InvalidInput::DuplicateThing(thing)) if thing.as_str() == THING
    ));
    assert!(error.to_string().contains("clone that one"), "{error}");
    drop(s.jobs);
    assert!(Jobs::new(&s.client, THING).is_ok());
}

#[test]
fn things_may_be_named_by_str_or_by_validated_name() {
    let s = setup();
    let name = ThingName::new("pump-08").unwrap();
    let jobs = Jobs::new(&s.client, &name).unwrap();
    assert_eq!(jobs.thing_name(), &name);
    let id = jobs_core::JobId::new("fw").unwrap();
    assert_eq!(jobs.job(&id).unwrap().id(), &id);
    assert_eq!(jobs.job("fw").unwrap().id(), &id);
}

#[test]
fn closing_unsubscribes_the_six_filters_and_closes_every_clone() {
    let s = setup();
    s.broker.script(&topic("get"), Script::accept(json!({})));
    let clone = s.jobs.clone();
    assert_eq!(s.broker.subscriptions(THING).len(), 6);
    s.jobs.close().unwrap();
    assert!(s.broker.subscriptions(THING).is_empty());
    assert!(matches!(
        clone.list().unwrap_err(),
        Error::InvalidInput(InvalidInput::Closed(_))
    ));
    assert!(matches!(
        clone.next_event().unwrap_err(),
        Error::InvalidInput(InvalidInput::Closed(_))
    ));
    assert!(s.broker.published_on(&topic("get")).is_empty());
    // The thing can be served again right away.
    let again = Jobs::new(&s.client, THING).unwrap();
    assert!(again.list().unwrap().is_empty());
    assert_eq!(s.broker.subscriptions(THING).len(), 6);
}

#[test]
fn closing_wakes_a_clone_waiting_for_events() {
    let s = setup();
    let waiter = {
        let jobs = s.jobs.with_timeout(Duration::from_secs(30));
        thread::spawn(move || jobs.next_event())
    };
    // Give the waiter no chance to matter: close must wake it whenever it starts waiting.
    s.jobs.clone().close().unwrap();
    let result = waiter.join().unwrap();
    assert!(matches!(
        result,
        Err(Error::InvalidInput(InvalidInput::Closed(_)))
    ));
}

#[test]
fn a_call_in_flight_when_its_thing_is_closed_fails_with_closed() {
    let s = setup();
    let (request_tx, request_rx) = crossbeam_channel::bounded(1);
    s.broker.script(
        &topic("get"),
        Script::custom(move |_, _| {
            let _ = request_tx.send(());
            Vec::new()
        }),
    );
    let call = {
        let jobs = s.jobs.with_timeout(Duration::from_secs(30));
        thread::spawn(move || jobs.list())
    };
    request_rx.recv_timeout(Duration::from_secs(5)).unwrap();
    s.jobs.close().unwrap();
    assert!(matches!(
        call.join().unwrap(),
        Err(Error::InvalidInput(InvalidInput::Closed(_)))
    ));
}

//! Registration of things on a client: dropping and rebuilding, duplicates, closing.

mod common;

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Duration;

use common::{THING, setup, topic};
use jobs_core::{Client, Error, InvalidInput, JobStatus, Jobs, ThingName};
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

#[test]
fn a_jobs_built_while_another_thread_closes_the_thing_always_ends_up_with_every_filter() {
    // Issue item 7a: close used to unregister the thing before unsubscribing, so a Jobs built
    // in between subscribed first and the old UNSUBSCRIBE then removed its filters.
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
    let mut jobs = Jobs::new(&client, THING).unwrap();
    for round in 0..300 {
        let rebuilt = thread::scope(|scope| {
            let builder = scope.spawn(|| {
                loop {
                    match Jobs::new(&client, THING) {
                        Ok(jobs) => return jobs,
                        Err(Error::InvalidInput(InvalidInput::DuplicateThing(_))) => {}
                        Err(other) => panic!("round {round}: {other}"),
                    }
                }
            });
            jobs.close().unwrap();
            builder.join().unwrap()
        });
        assert_eq!(
            broker.subscriptions(THING).len(),
            6,
            "round {round}: the new Jobs lost filters"
        );
        jobs = rebuilt;
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
}

#[test]
fn a_call_waiting_for_a_resubscription_when_the_thing_is_closed_publishes_nothing_and_fails_closed()
{
    // Issue item 7b: such a call used to be published after the thaw and to time out.
    for round in 0..20 {
        let s = setup();
        // A reconnect without session: the next calls must subscribe again first.
        s.broker.drop_connection(THING);
        s.broker.restore_connection(THING, false);
        s.broker.freeze();
        let (subscriber, waiter) = (
            s.jobs.with_timeout(Duration::from_secs(30)),
            s.jobs.with_timeout(Duration::from_secs(30)),
        );
        let (done_tx, done) = crossbeam_channel::unbounded();
        let subscribing = {
            let done_tx = done_tx.clone();
            thread::spawn(move || done_tx.send(("list", subscriber.list().err())).unwrap())
        };
        assert!(s.broker.wait_for_queued(1, Duration::from_secs(5)));
        let waiting = thread::spawn(move || {
            let mut job = waiter.job("fw").unwrap();
            done_tx
                .send(("update", job.update(JobStatus::Succeeded, None).err()))
                .unwrap();
        });
        s.jobs
            .with_timeout(Duration::from_millis(100))
            .close()
            .unwrap_err();
        // The waiting call returns at once, long before the broker thaws or its timeout.
        let (name, error) = done.recv_timeout(Duration::from_secs(5)).unwrap();
        assert_eq!(name, "update", "round {round}");
        assert!(
            matches!(error, Some(Error::InvalidInput(InvalidInput::Closed(_)))),
            "round {round}: {error:?}"
        );
        s.broker.thaw();
        let (_, error) = done.recv_timeout(Duration::from_secs(5)).unwrap();
        assert!(
            matches!(error, Some(Error::InvalidInput(InvalidInput::Closed(_)))),
            "round {round}: {error:?}"
        );
        subscribing.join().unwrap();
        waiting.join().unwrap();
        assert!(s.broker.published_on(&topic("fw/update")).is_empty());
        assert!(s.broker.published_on(&topic("get")).is_empty());
    }
}

/// A transport that panics in `subscribe` while armed (a porting bug).
struct PanicsOnSubscribe {
    inner: jobs_mock::MockTransport,
    armed: AtomicBool,
}

impl jobs_core::MqttTransport for PanicsOnSubscribe {
    fn set_sink(
        &self,
        sink: Arc<dyn jobs_core::MessageSink>,
    ) -> Result<(), jobs_core::TransportError> {
        self.inner.set_sink(sink)
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: jobs_core::QoS,
        deadline: std::time::Instant,
    ) -> Result<Vec<jobs_core::SubscribeOutcome>, jobs_core::TransportError> {
        assert!(
            !self.armed.load(Ordering::SeqCst),
            "subscribe panics on purpose"
        );
        self.inner.subscribe(filters, qos, deadline)
    }

    fn unsubscribe(
        &self,
        filters: &[&str],
        deadline: std::time::Instant,
    ) -> Result<(), jobs_core::TransportError> {
        self.inner.unsubscribe(filters, deadline)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: jobs_core::QoS,
        deadline: std::time::Instant,
    ) -> Result<(), jobs_core::TransportError> {
        self.inner.publish(topic, payload, qos, deadline)
    }
}

#[test]
fn a_transport_that_panics_while_subscribing_leaves_nothing_stuck() {
    // Issue item 8: the "subscribing" flag used to stay set, so every later call waited out
    // its full timeout.
    let broker = MockBroker::new();
    broker.script(&topic("get"), Script::accept(json!({})));
    let transport = Arc::new(PanicsOnSubscribe {
        inner: broker.connect(THING),
        armed: AtomicBool::new(true),
    });
    let client =
        Client::from_arc(Arc::clone(&transport) as Arc<dyn jobs_core::MqttTransport>).unwrap();
    // Building panics with the transport; the thing is not left registered.
    let built = std::panic::catch_unwind(AssertUnwindSafe(|| Jobs::new(&client, THING)));
    assert!(built.is_err());
    transport.armed.store(false, Ordering::SeqCst);
    let jobs = Jobs::new(&client, THING).unwrap();
    // After a reconnect without session, the next call's re-subscription panics...
    broker.drop_connection(THING);
    broker.restore_connection(THING, false);
    transport.armed.store(true, Ordering::SeqCst);
    let listed = std::panic::catch_unwind(AssertUnwindSafe(|| jobs.list()));
    assert!(listed.is_err());
    // ...and the call after it subscribes and gets its answer, well within its timeout.
    transport.armed.store(false, Ordering::SeqCst);
    let started = std::time::Instant::now();
    assert!(
        jobs.with_timeout(Duration::from_secs(30))
            .list()
            .unwrap()
            .is_empty()
    );
    assert!(started.elapsed() < Duration::from_secs(5));
}

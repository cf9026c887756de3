//! Every call ends by its deadline, whatever stage it is in, and nothing is published after it:
//! a broker that does not acknowledge (frozen, like a SIGSTOPped mosquitto) cannot stretch a
//! call past its timeout.

mod common;

use std::time::{Duration, Instant};

use common::{SHORT, THING, setup, topic};
use jobs_core::{Client, Error, Jobs, Operation};
use jobs_mock::{MockBroker, Script};
use serde_json::json;

/// Generous upper bound on how late a call may return after its deadline on a loaded CI
/// machine; the lower bound (never before the deadline) is exact.
const SLACK: Duration = Duration::from_secs(2);

fn assert_ended_by_deadline(started: Instant, timeout: Duration) {
    let took = started.elapsed();
    assert!(took >= timeout, "returned before its deadline: {took:?}");
    assert!(
        took < timeout + SLACK,
        "returned {took:?} after its start, timeout {timeout:?}"
    );
}

#[test]
fn a_call_whose_puback_does_not_come_returns_timeout_at_its_deadline() {
    let s = setup();
    s.broker.script(&topic("get"), Script::accept(json!({})));
    s.broker.freeze();
    let started = Instant::now();
    let error = s.jobs.with_timeout(SHORT).list().unwrap_err();
    assert_ended_by_deadline(started, SHORT);
    assert!(matches!(
        error,
        Error::Timeout {
            operation: Some(Operation::GetPending),
            waited
        } if waited == SHORT
    ));
    s.broker.thaw();
}

#[test]
fn building_jobs_returns_timeout_by_its_deadline_when_the_suback_is_slow() {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect(THING)).unwrap();
    broker.freeze();
    let started = Instant::now();
    let error = Jobs::builder(&client, THING)
        .timeout(SHORT)
        .build()
        .unwrap_err();
    assert_ended_by_deadline(started, SHORT);
    assert!(matches!(
        error,
        Error::Timeout {
            operation: None,
            ..
        }
    ));
    assert!(error.is_timeout());
    broker.thaw();
    // The thing is not left registered by the failed build.
    assert!(Jobs::new(&client, THING).is_ok());
}

#[test]
fn a_request_whose_resubscription_runs_past_the_deadline_is_never_published() {
    let s = setup();
    s.broker.script(&topic("get"), Script::accept(json!({})));
    // A reconnect without a session: the next call must subscribe again before publishing.
    s.broker.drop_connection(THING);
    s.broker.restore_connection(THING, false);
    s.broker.freeze();
    let started = Instant::now();
    let error = s.jobs.with_timeout(SHORT).list().unwrap_err();
    assert_ended_by_deadline(started, SHORT);
    assert!(matches!(
        error,
        Error::Timeout {
            operation: Some(Operation::GetPending),
            ..
        }
    ));
    // The SUBSCRIBE reaches the broker late (it was on the wire); the request never does.
    s.broker.thaw();
    assert!(s.broker.published_on(&topic("get")).is_empty());
    assert_eq!(s.broker.subscribe_requests().len(), 2);
}

#[test]
fn a_call_that_waits_for_another_callers_subscription_also_ends_by_its_own_deadline() {
    let s = setup();
    s.broker.drop_connection(THING);
    s.broker.restore_connection(THING, false);
    s.broker.freeze();
    let slow = {
        let jobs = s.jobs.with_timeout(Duration::from_secs(30));
        std::thread::spawn(move || jobs.list())
    };
    assert!(s.broker.wait_for_queued(1, Duration::from_secs(5)));
    let started = Instant::now();
    let error = s.jobs.with_timeout(SHORT).list().unwrap_err();
    assert_ended_by_deadline(started, SHORT);
    assert!(error.is_timeout());
    s.broker.script(&topic("get"), Script::accept(json!({})));
    s.broker.thaw();
    assert!(slow.join().unwrap().is_ok());
}

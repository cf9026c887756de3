//! Timeouts, late, duplicate, corrupt and oversized replies.

mod common;

use std::time::Duration;

use common::{SHORT, setup, topic};
use jobs_core::topics::ReplyKind;
use jobs_core::{Error, Operation};
use jobs_mock::Script;
use serde_json::json;

#[test]
fn list_times_out_when_the_broker_is_silent_and_says_how_long_it_waited() {
    let s = setup();
    s.broker.script(&topic("get"), Script::silent());
    let error = s.jobs.list_timeout(SHORT).unwrap_err();
    assert!(
        matches!(error, Error::Timeout { operation: Operation::GetPending, waited } if waited == SHORT)
    );
    assert!(error.is_timeout() && error.is_retryable());
}

#[test]
fn a_late_reply_after_the_timeout_is_ignored_and_later_calls_work() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "late"}]}))
            .held()
            .times(1),
    );
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "fresh"}]})),
    );
    assert!(s.jobs.list_timeout(SHORT).unwrap_err().is_timeout());
    assert_eq!(s.broker.release_held(), 1);
    let jobs = s.jobs.list().unwrap();
    assert_eq!(jobs[0].id().as_str(), "fresh");
}

#[test]
fn a_duplicate_reply_is_dropped() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "once"}]})).twice(),
    );
    assert_eq!(s.jobs.list().unwrap().len(), 1);
    assert_eq!(s.broker.published_on(&topic("get/accepted")).len(), 2);
    assert_eq!(s.jobs.list().unwrap().len(), 1);
}

#[test]
fn a_reply_with_a_foreign_token_is_ignored() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({})).token("someone-else"),
    );
    assert!(s.jobs.list_timeout(SHORT).unwrap_err().is_timeout());
}

#[test]
fn a_corrupt_reply_for_the_only_call_on_its_topic_is_a_decode_error() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::raw(ReplyKind::Accepted, b"{not json".to_vec()),
    );
    let error = s.jobs.list().unwrap_err();
    assert!(
        matches!(error, Error::Decode { ref topic, .. } if *topic == common::topic("get/accepted"))
    );
    assert!(std::error::Error::source(&error).is_some());
}

#[test]
fn a_reply_of_the_wrong_shape_is_a_decode_error() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": "not a list"})),
    );
    assert!(matches!(s.jobs.list().unwrap_err(), Error::Decode { .. }));
    s.broker.clear_scripts();
    s.broker.script(
        &topic("get"),
        Script::reject_with(json!({"message": "no code"})),
    );
    assert!(matches!(s.jobs.list().unwrap_err(), Error::Decode { .. }));
}

#[test]
fn a_reply_without_a_token_reaches_the_only_call_waiting_on_its_topic() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "j"}]})).without_token(),
    );
    assert_eq!(s.jobs.list().unwrap().len(), 1);
}

#[test]
fn an_oversized_reply_is_decoded_or_reported_never_a_panic() {
    let s = setup();
    let big = "x".repeat(200 * 1024);
    s.broker.script(
        &topic("fw/get"),
        Script::accept(json!({"execution": {"jobId": "fw", "jobDocument": {"blob": big}}})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    job.describe().unwrap();
    assert!(job.document().unwrap().as_json().len() > 200 * 1024);
    let mut huge = b"{\"execution\":".to_vec();
    huge.extend(std::iter::repeat_n(b'[', 300 * 1024));
    s.broker.clear_scripts();
    s.broker
        .script(&topic("fw/get"), Script::raw(ReplyKind::Accepted, huge));
    assert!(matches!(
        job.describe_with(jobs_core::Describe::new().timeout(Duration::from_secs(5)))
            .unwrap_err(),
        Error::Decode { .. }
    ));
}

//! `notify` and `notify-next`: the changed flag and typed events.

mod common;

use common::{SHORT, setup, topic};
use jobs_core::Event;
use jobs_core::Timestamp;

#[test]
fn notify_sets_changed_and_is_delivered_as_a_typed_event() {
    let s = setup();
    assert!(s.jobs.changed());
    assert!(!s.jobs.changed());
    s.broker.inject(
        &topic("notify"),
        br#"{"timestamp":1750001000,"jobs":{"QUEUED":[{"jobId":"calibrate","queuedAt":1750000999,
            "lastUpdatedAt":1750000999,"versionNumber":1,"executionNumber":1}]}}"#,
    );
    assert!(s.jobs.changed());
    assert!(!s.jobs.changed());
    let Some(Event::JobsChanged(event)) = s.jobs.with_timeout(SHORT).next_event().unwrap() else {
        panic!()
    };
    assert_eq!(event.timestamp, Some(Timestamp::new(1750001000)));
    assert_eq!(event.jobs.queued[0].job_id.as_str(), "calibrate");
    assert!(event.jobs.in_progress.is_empty());
}

#[test]
fn the_empty_forms_of_both_events_are_understood() {
    let s = setup();
    s.broker
        .inject(&topic("notify"), br#"{"timestamp":1750001100,"jobs":{}}"#);
    s.broker
        .inject(&topic("notify-next"), br#"{"timestamp":1750001100}"#);
    let Some(Event::JobsChanged(all)) = s.jobs.try_next_event() else {
        panic!()
    };
    assert!(all.jobs.queued.is_empty() && all.jobs.in_progress.is_empty());
    let Some(Event::NextJobChanged(next)) = s.jobs.try_next_event() else {
        panic!()
    };
    assert!(next.execution.is_none());
    assert!(s.jobs.try_next_event().is_none());
}

#[test]
fn notify_next_carries_the_execution_with_its_document() {
    let s = setup();
    s.broker.inject(
        &topic("notify-next"),
        br#"{"timestamp":1750001000,"execution":{"jobId":"calibrate","status":"QUEUED","versionNumber":1,
            "executionNumber":1,"jobDocument":{"action":"calibrate"}}}"#,
    );
    let Some(Event::NextJobChanged(next)) = s.jobs.try_next_event() else {
        panic!()
    };
    let execution = next.execution.unwrap();
    assert_eq!(
        execution.job_document.unwrap().as_json(),
        r#"{"action":"calibrate"}"#
    );
}

#[test]
fn next_event_returns_none_when_nothing_comes_in_time() {
    let s = setup();
    assert_eq!(s.jobs.with_timeout(SHORT).next_event().unwrap(), None);
}

#[test]
fn a_corrupt_event_still_sets_changed_but_yields_no_event() {
    let s = setup();
    s.jobs.changed();
    s.broker.inject(&topic("notify"), b"\xff not json");
    assert!(s.jobs.changed());
    assert!(s.jobs.try_next_event().is_none());
}

#[test]
fn events_beyond_the_buffer_drop_the_oldest_first() {
    let s = setup();
    for t in 0..70 {
        s.broker.inject(
            &topic("notify-next"),
            format!(r#"{{"timestamp":{t}}}"#).as_bytes(),
        );
    }
    let mut timestamps = Vec::new();
    while let Some(Event::NextJobChanged(e)) = s.jobs.try_next_event() {
        timestamps.push(e.timestamp.unwrap());
    }
    assert_eq!(timestamps, (6..70).collect::<Vec<i64>>());
}

#[test]
fn messages_on_other_topics_are_ignored() {
    let s = setup();
    s.jobs.changed();
    s.broker.inject("$aws/things/pump-07/jobs/notifyzz", b"{}");
    s.broker.inject("$aws/things/pump-07/shadow/update", b"{}");
    s.broker.inject("$aws/things/other/jobs/notify", b"{}");
    assert!(!s.jobs.changed());
}

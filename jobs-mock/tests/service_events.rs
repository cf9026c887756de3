//! `notify` (JobExecutionsChanged) and `notify-next` (NextJobExecutionChanged): exactly when
//! the protocol (§5) says, with their empty forms.

mod common;

use common::*;
use jobs_core::JobStatus;
use jobs_core::Timestamp;
use jobs_core::model::{ExecutionReply, UpdateReply};

#[test]
fn queuing_the_first_job_sends_notify_and_notify_next_with_the_document() {
    let mut service = service();
    let out = create(&mut service, "calibrate", &["pump-07"]);
    let topics: Vec<&str> = out.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "$aws/things/pump-07/jobs/notify",
            "$aws/things/pump-07/jobs/notify-next"
        ]
    );
    let notify = &notifies(&out, "pump-07")[0];
    assert_eq!(notify.timestamp, Some(Timestamp::new(T0)));
    assert_eq!(ids(&notify.jobs.queued), ["calibrate"]);
    assert!(notify.jobs.in_progress.is_empty());
    let next = next_events(&out, "pump-07").remove(0);
    let execution = next.execution.unwrap();
    assert_eq!(execution.job_id.as_str(), "calibrate");
    assert_eq!(execution.status, Some(JobStatus::Queued));
    assert_eq!(
        execution.job_document.unwrap().to_value(),
        serde_json::json!({"action": "calibrate"})
    );
}

#[test]
fn queuing_behind_an_existing_job_sends_notify_but_not_notify_next() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    let out = create(&mut service, "second", &["pump-07"]);
    assert_eq!(
        ids(&notifies(&out, "pump-07")[0].jobs.queued),
        ["first", "second"]
    );
    assert!(next_events(&out, "pump-07").is_empty());
}

#[test]
fn a_job_for_several_things_sends_events_to_each_thing_on_its_own_topics() {
    let mut service = service();
    let out = create(&mut service, "fleet", &["pump-07", "pump-08"]);
    for thing in ["pump-07", "pump-08"] {
        assert_eq!(notifies(&out, thing).len(), 1, "{thing}");
        assert_eq!(next_events(&out, thing).len(), 1, "{thing}");
    }
    assert_eq!(out.len(), 4);
    let answer = update(
        &mut service,
        "pump-07",
        "fleet",
        r#"{"status":"SUCCEEDED"}"#,
    );
    assert!(answer.notify("pump-08").is_empty() && answer.notify_next("pump-08").is_empty());
    assert_eq!(answer.notify("pump-07").len(), 1);
}

#[test]
fn starting_the_head_sends_neither_notify_nor_notify_next() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    let answer = call(&mut service, "pump-07", "start-next", "{}");
    answer.accepted::<ExecutionReply>();
    assert!(answer.events.is_empty(), "{:?}", answer.events);
    create(&mut service, "third", &["pump-07"]);
    let answer = update(
        &mut service,
        "pump-07",
        "second",
        r#"{"status":"SUCCEEDED"}"#,
    );
    assert_eq!(
        answer.notify("pump-07").len(),
        1,
        "sanity: non-head finish notifies"
    );
}

#[test]
fn starting_the_head_by_update_sends_no_event() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    let answer = update(
        &mut service,
        "pump-07",
        "first",
        r#"{"status":"IN_PROGRESS"}"#,
    );
    answer.accepted::<UpdateReply>();
    assert!(answer.events.is_empty(), "{:?}", answer.events);
}

#[test]
fn a_progress_report_that_only_changes_details_sends_no_event() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    start_next(&mut service, "pump-07");
    let answer = update(
        &mut service,
        "pump-07",
        "first",
        r#"{"status":"IN_PROGRESS","statusDetails":{"pct":"40"},"stepTimeoutInMinutes":5}"#,
    );
    answer.accepted::<UpdateReply>();
    assert!(answer.events.is_empty(), "{:?}", answer.events);
}

#[test]
fn finishing_the_head_sends_notify_and_notify_next_with_the_new_head() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    start_next(&mut service, "pump-07");
    let answer = update(
        &mut service,
        "pump-07",
        "first",
        r#"{"status":"SUCCEEDED"}"#,
    );
    let notify = answer.notify("pump-07").remove(0);
    assert!(notify.jobs.in_progress.is_empty());
    assert_eq!(ids(&notify.jobs.queued), ["second"]);
    let next = answer.notify_next("pump-07").remove(0);
    let execution = next.execution.unwrap();
    assert_eq!(execution.job_id.as_str(), "second");
    assert!(execution.job_document.is_some());
    let topics: Vec<&str> = answer.events.iter().map(|m| m.topic.as_str()).collect();
    assert_eq!(
        topics,
        [
            "$aws/things/pump-07/jobs/notify",
            "$aws/things/pump-07/jobs/notify-next"
        ],
        "notify before notify-next"
    );
    assert_eq!(answer.events_before_reply, 0, "both after the reply");
}

#[test]
fn finishing_the_last_job_sends_the_empty_forms_of_both_events() {
    let mut service = service();
    create(&mut service, "only", &["pump-07"]);
    let answer = update(&mut service, "pump-07", "only", r#"{"status":"REJECTED"}"#);
    let [notify, next] = answer.events.as_slice() else {
        panic!("two events expected, got {:?}", answer.events);
    };
    let notify: serde_json::Value = notify.decode().unwrap();
    assert_eq!(notify, serde_json::json!({"timestamp": T0, "jobs": {}}));
    let next: serde_json::Value = next.decode().unwrap();
    assert_eq!(next, serde_json::json!({"timestamp": T0}));
}

#[test]
fn finishing_a_job_that_is_not_the_head_sends_notify_only() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    let answer = update(&mut service, "pump-07", "second", r#"{"status":"FAILED"}"#);
    assert_eq!(ids(&answer.notify("pump-07")[0].jobs.queued), ["first"]);
    assert!(answer.notify_next("pump-07").is_empty());
}

#[test]
fn starting_a_queued_job_that_is_not_the_head_sends_notify_and_notify_next_when_it_becomes_head() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    let answer = update(
        &mut service,
        "pump-07",
        "second",
        r#"{"status":"IN_PROGRESS"}"#,
    );
    let notify = answer.notify("pump-07").remove(0);
    assert_eq!(ids(&notify.jobs.in_progress), ["second"]);
    assert_eq!(ids(&notify.jobs.queued), ["first"]);
    let next = answer.notify_next("pump-07").remove(0);
    assert_eq!(next.execution.unwrap().job_id.as_str(), "second");
}

#[test]
fn starting_a_queued_job_behind_an_in_progress_head_sends_notify_only() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    start_next(&mut service, "pump-07");
    let answer = update(
        &mut service,
        "pump-07",
        "second",
        r#"{"status":"IN_PROGRESS"}"#,
    );
    assert_eq!(
        ids(&answer.notify("pump-07")[0].jobs.in_progress),
        ["first", "second"]
    );
    assert!(answer.notify_next("pump-07").is_empty());
}

#[test]
fn notify_lists_at_most_ten_executions_in_progress_first() {
    let mut service = service();
    for n in 0..11 {
        create(&mut service, &format!("job-{n:02}"), &["pump-07"]);
    }
    update(
        &mut service,
        "pump-07",
        "job-05",
        r#"{"status":"IN_PROGRESS"}"#,
    )
    .accepted::<UpdateReply>();
    let out = create(&mut service, "job-11", &["pump-07"]);
    let notify = notifies(&out, "pump-07").remove(0);
    assert_eq!(ids(&notify.jobs.in_progress), ["job-05"]);
    assert_eq!(notify.jobs.queued.len(), 9);
    assert_eq!(
        notify.jobs.in_progress[0].started_at,
        Some(Timestamp::new(T0))
    );
}

#[test]
fn a_rejected_request_sends_no_event() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    let answer = update(
        &mut service,
        "pump-07",
        "first",
        r#"{"status":"SUCCEEDED","expectedVersion":5}"#,
    );
    answer.rejected();
    assert!(answer.events.is_empty());
}

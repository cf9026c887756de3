//! GetPendingJobExecutions (`…/jobs/get`).

mod common;

use common::*;
use jobs_core::model::PendingJobs;
use jobs_core::{ExecutionNumber, Timestamp, Version};

#[test]
fn get_pending_with_nothing_pending_has_both_lists_present_and_empty() {
    let mut service = service();
    let answer = call(&mut service, "pump-07", "get", r#"{"clientToken":"t-1"}"#);
    let body: serde_json::Value = answer.reply.decode().unwrap();
    assert_eq!(body["inProgressJobs"], serde_json::json!([]));
    assert_eq!(body["queuedJobs"], serde_json::json!([]));
    let pending: PendingJobs = answer.accepted();
    assert_eq!(pending.timestamp, Some(Timestamp::new(T0)));
    assert_eq!(pending.client_token.as_deref(), Some("t-1"));
    assert!(answer.events.is_empty());
}

#[test]
fn get_pending_lists_in_progress_first_then_queued_in_creation_order() {
    let mut service = service();
    for id in ["first", "second", "third"] {
        create(&mut service, id, &["pump-07"]);
    }
    // Start "second" directly (not the head), so IN_PROGRESS order differs from queue order.
    update(
        &mut service,
        "pump-07",
        "second",
        r#"{"status":"IN_PROGRESS"}"#,
    )
    .accepted::<serde_json::Value>();
    let pending: PendingJobs = call(&mut service, "pump-07", "get", "{}").accepted();
    assert_eq!(ids(&pending.in_progress_jobs), ["second"]);
    assert_eq!(ids(&pending.queued_jobs), ["first", "third"]);
    let started = &pending.in_progress_jobs[0];
    assert_eq!(started.started_at, Some(Timestamp::new(T0)));
    assert_eq!(started.version_number, Some(Version::new(2)));
    assert_eq!(started.execution_number, Some(ExecutionNumber::new(1)));
    let queued = &pending.queued_jobs[0];
    assert_eq!(queued.started_at, None);
    assert_eq!(queued.queued_at, Some(Timestamp::new(T0)));
    assert_eq!(queued.last_updated_at, Some(Timestamp::new(T0)));
    assert_eq!(queued.version_number, Some(Version::new(1)));
    assert_eq!(queued.execution_number, Some(ExecutionNumber::new(1)));
}

#[test]
fn get_pending_lists_at_most_ten_executions_in_all() {
    let mut service = service();
    for n in 0..12 {
        create(&mut service, &format!("job-{n:02}"), &["pump-07"]);
    }
    update(
        &mut service,
        "pump-07",
        "job-11",
        r#"{"status":"IN_PROGRESS"}"#,
    )
    .accepted::<serde_json::Value>();
    let pending: PendingJobs = call(&mut service, "pump-07", "get", "{}").accepted();
    assert_eq!(ids(&pending.in_progress_jobs), ["job-11"]);
    assert_eq!(pending.queued_jobs.len(), 9);
    assert_eq!(ids(&pending.queued_jobs)[8], "job-08");
}

#[test]
fn get_pending_leaves_out_terminal_executions_and_other_things() {
    let mut service = service();
    create(&mut service, "done", &["pump-07"]);
    create(&mut service, "other", &["pump-08"]);
    update(&mut service, "pump-07", "done", r#"{"status":"SUCCEEDED"}"#)
        .accepted::<serde_json::Value>();
    let pending: PendingJobs = call(&mut service, "pump-07", "get", "{}").accepted();
    assert!(pending.in_progress_jobs.is_empty() && pending.queued_jobs.is_empty());
}

#[test]
fn get_pending_ignores_unknown_request_fields() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let pending: PendingJobs =
        call(&mut service, "pump-07", "get", r#"{"somethingNew":[1,2]}"#).accepted();
    assert_eq!(ids(&pending.queued_jobs), ["a"]);
    assert_eq!(pending.client_token, None);
}

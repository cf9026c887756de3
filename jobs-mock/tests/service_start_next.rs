//! StartNextPendingJobExecution (`…/jobs/start-next`).

mod common;

use common::*;
use jobs_core::model::ExecutionReply;
use jobs_core::{JobStatus, RejectCode};
use jobs_core::{Timestamp, Version};

#[test]
fn start_next_with_nothing_pending_is_accepted_without_an_execution() {
    let mut service = service();
    let answer = call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"clientToken":"t"}"#,
    );
    let reply: ExecutionReply = answer.accepted();
    assert!(reply.execution.is_none());
    assert_eq!(reply.timestamp, Some(Timestamp::new(T0)));
    assert_eq!(reply.client_token.as_deref(), Some("t"));
    let raw: serde_json::Value = answer.reply.decode().unwrap();
    assert!(raw.get("execution").is_none());
}

#[test]
fn start_next_starts_the_oldest_queued_execution_with_details_step_timer_and_document() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    let reply: ExecutionReply = call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"statusDetails":{"phase":"archive"},"stepTimeoutInMinutes":20}"#,
    )
    .accepted();
    let execution = reply.execution.unwrap();
    assert_eq!(execution.job_id.as_str(), "first");
    assert_eq!(execution.status, Some(JobStatus::InProgress));
    assert_eq!(
        execution.status_details.unwrap().get("phase"),
        Some("archive")
    );
    assert_eq!(execution.version_number, Some(Version::new(2)));
    assert_eq!(execution.started_at, Some(Timestamp::new(T0)));
    assert_eq!(execution.approximate_seconds_before_timed_out, Some(1200));
    assert_eq!(
        execution.job_document.unwrap().to_value(),
        serde_json::json!({"action": "first"})
    );
}

#[test]
fn start_next_returns_an_in_progress_execution_unchanged() {
    let mut service = service();
    create(&mut service, "first", &["pump-07"]);
    create(&mut service, "second", &["pump-07"]);
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"statusDetails":{"phase":"one"}}"#,
    )
    .accepted::<ExecutionReply>();
    let again: ExecutionReply = call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"statusDetails":{"phase":"two"},"stepTimeoutInMinutes":5}"#,
    )
    .accepted();
    let execution = again.execution.unwrap();
    assert_eq!(execution.job_id.as_str(), "first");
    assert_eq!(execution.status_details.unwrap().get("phase"), Some("one"));
    assert_eq!(execution.version_number, Some(Version::new(2)));
    assert_eq!(execution.approximate_seconds_before_timed_out, None);
}

#[test]
fn start_next_prefers_an_in_progress_execution_over_an_older_queued_one() {
    let mut service = service();
    create(&mut service, "older", &["pump-07"]);
    create(&mut service, "newer", &["pump-07"]);
    update(
        &mut service,
        "pump-07",
        "newer",
        r#"{"status":"IN_PROGRESS"}"#,
    )
    .accepted::<serde_json::Value>();
    let reply: ExecutionReply = call(&mut service, "pump-07", "start-next", "{}").accepted();
    assert_eq!(reply.execution.unwrap().job_id.as_str(), "newer");
}

#[test]
fn start_next_with_an_out_of_range_step_timeout_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for bad in ["0", "10081", "-1"] {
        let answer = call(
            &mut service,
            "pump-07",
            "start-next",
            &format!(r#"{{"stepTimeoutInMinutes":{bad},"clientToken":"t"}}"#),
        );
        let error = answer.rejected();
        assert_eq!(error.code, RejectCode::InvalidRequest, "{bad}");
        assert_eq!(error.client_token.as_deref(), Some("t"));
    }
    let state = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(state.status, JobStatus::Queued, "nothing was started");
}

#[test]
fn start_next_with_invalid_status_details_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for bad in [
        r#"{"statusDetails":{"n":1}}"#,
        r#"{"statusDetails":{"bad key":"v"}}"#,
        r#"{"statusDetails":{"k":""}}"#,
        r#"{"statusDetails":"malformed-details"}"#,
    ] {
        let error = call(&mut service, "pump-07", "start-next", bad).rejected();
        assert_eq!(error.code, RejectCode::InvalidRequest, "{bad}");
    }
}

#[test]
fn start_next_accepts_the_maximum_step_timeout_of_seven_days() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let reply: ExecutionReply = call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":10080}"#,
    )
    .accepted();
    assert_eq!(
        reply
            .execution
            .unwrap()
            .approximate_seconds_before_timed_out,
        Some(10_080 * 60)
    );
}

//! DescribeJobExecution (`…/jobs/{job}/get`, `…/jobs/$next/get`).

mod common;

use common::*;
use jobs_core::model::ExecutionReply;
use jobs_core::{ExecutionNumber, Timestamp, Version};
use jobs_core::{JobStatus, RejectCode};
use jobs_mock::service::Quirks;

#[test]
fn describe_returns_the_execution_with_its_document_by_default() {
    let mut service = service();
    create(&mut service, "calibrate", &["pump-07"]);
    let reply: ExecutionReply = call(
        &mut service,
        "pump-07",
        "calibrate/get",
        r#"{"clientToken":"d"}"#,
    )
    .accepted();
    let execution = reply.execution.unwrap();
    assert_eq!(execution.job_id.as_str(), "calibrate");
    assert_eq!(execution.status, Some(JobStatus::Queued));
    assert_eq!(execution.version_number, Some(Version::new(1)));
    assert_eq!(execution.execution_number, Some(ExecutionNumber::new(1)));
    assert_eq!(execution.queued_at, Some(Timestamp::new(T0)));
    assert_eq!(execution.started_at, None);
    assert_eq!(execution.status_details, None);
    assert_eq!(execution.approximate_seconds_before_timed_out, None);
    assert_eq!(
        execution.job_document.unwrap().to_value(),
        serde_json::json!({"action": "calibrate"})
    );
    assert_eq!(reply.client_token.as_deref(), Some("d"));
    assert_eq!(reply.timestamp, Some(Timestamp::new(T0)));
}

#[test]
fn describe_leaves_the_document_out_when_include_job_document_is_false() {
    let mut service = service();
    create(&mut service, "calibrate", &["pump-07"]);
    let reply: ExecutionReply = call(
        &mut service,
        "pump-07",
        "calibrate/get",
        r#"{"includeJobDocument":false}"#,
    )
    .accepted();
    assert!(reply.execution.unwrap().job_document.is_none());
}

#[test]
fn describe_of_an_unknown_execution_is_rejected_with_resource_not_found() {
    let mut service = service();
    create(&mut service, "calibrate", &["pump-07"]);
    let error = call(
        &mut service,
        "pump-07",
        "other/get",
        r#"{"clientToken":"x"}"#,
    )
    .rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound);
    assert_eq!(error.client_token.as_deref(), Some("x"));
    assert_eq!(error.timestamp, Some(Timestamp::new(T0)));
    assert!(error.execution_state.is_none());
    let error = call(&mut service, "pump-08", "calibrate/get", "{}").rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound, "other thing");
}

#[test]
fn execution_numbers_count_per_thing_and_job_so_every_first_execution_is_one() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    create(&mut service, "b", &["pump-07"]);
    for id in ["a", "b"] {
        let reply: ExecutionReply =
            call(&mut service, "pump-07", &format!("{id}/get"), "{}").accepted();
        assert_eq!(
            reply.execution.unwrap().execution_number,
            Some(ExecutionNumber::new(1)),
            "{id}"
        );
    }
}

#[test]
fn describe_with_an_execution_number_selects_that_execution_or_is_not_found() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let reply: ExecutionReply =
        call(&mut service, "pump-07", "a/get", r#"{"executionNumber":1}"#).accepted();
    assert_eq!(
        reply.execution.unwrap().execution_number,
        Some(ExecutionNumber::new(1))
    );
    let error = call(&mut service, "pump-07", "a/get", r#"{"executionNumber":2}"#).rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound);
}

#[test]
fn describe_next_resolves_to_the_head_and_replies_on_the_next_topics() {
    let mut service = service();
    create(&mut service, "older", &["pump-07"]);
    create(&mut service, "newer", &["pump-07"]);
    let answer = call(&mut service, "pump-07", "$next/get", "{}");
    assert_eq!(
        answer.reply.topic,
        "$aws/things/pump-07/jobs/$next/get/accepted"
    );
    let reply: ExecutionReply = answer.accepted();
    assert_eq!(reply.execution.unwrap().job_id.as_str(), "older");

    update(
        &mut service,
        "pump-07",
        "newer",
        r#"{"status":"IN_PROGRESS"}"#,
    )
    .accepted::<serde_json::Value>();
    let reply: ExecutionReply = call(&mut service, "pump-07", "$next/get", "{}").accepted();
    let execution = reply.execution.unwrap();
    assert_eq!(execution.job_id.as_str(), "newer", "IN_PROGRESS first");
    assert!(execution.job_document.is_some());
}

#[test]
fn describe_next_with_nothing_pending_is_accepted_without_an_execution() {
    let mut service = service();
    let answer = call(
        &mut service,
        "pump-07",
        "$next/get",
        r#"{"clientToken":"n"}"#,
    );
    let reply: ExecutionReply = answer.accepted();
    assert!(reply.execution.is_none());
    assert_eq!(reply.client_token.as_deref(), Some("n"));
}

#[test]
fn describe_next_with_nothing_pending_is_resource_not_found_under_that_quirk() {
    let mut service = service();
    let mut quirks = Quirks::default();
    quirks.idle_next_is_not_found = true;
    service.set_quirks(quirks);
    let error = call(&mut service, "pump-07", "$next/get", "{}").rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound);
}

#[test]
fn describe_of_a_terminal_execution_is_rejected_with_terminal_state_reached() {
    for end in ["SUCCEEDED", "FAILED", "REJECTED"] {
        let mut service = service();
        create(&mut service, "a", &["pump-07"]);
        update(
            &mut service,
            "pump-07",
            "a",
            &format!(r#"{{"status":"{end}"}}"#),
        )
        .accepted::<serde_json::Value>();
        let error = call(&mut service, "pump-07", "a/get", r#"{"clientToken":"z"}"#).rejected();
        assert_eq!(error.code, RejectCode::TerminalStateReached, "{end}");
        assert_eq!(
            error.message.as_deref(),
            Some("Job Execution has reached terminal state. It is neither IN_PROGRESS nor QUEUED")
        );
        assert!(error.execution_state.is_none());
        assert_eq!(error.client_token.as_deref(), Some("z"));
    }
}

#[test]
fn describe_of_a_service_ended_execution_is_rejected_with_terminal_state_reached() {
    let mut service = service();
    create(&mut service, "cancelled", &["pump-07"]);
    create(&mut service, "removed", &["pump-07"]);
    service.cancel_job(&job("cancelled")).unwrap();
    service
        .remove_thing(&job("removed"), &thing("pump-07"))
        .unwrap();
    for id in ["cancelled", "removed"] {
        let error = call(&mut service, "pump-07", &format!("{id}/get"), "{}").rejected();
        assert_eq!(error.code, RejectCode::TerminalStateReached, "{id}");
    }
}

#[test]
fn describe_of_a_terminal_execution_returns_it_under_that_quirk() {
    let mut service = service();
    let mut quirks = Quirks::default();
    quirks.terminal_describe_returns_execution = true;
    service.set_quirks(quirks);
    create(&mut service, "a", &["pump-07"]);
    update(&mut service, "pump-07", "a", r#"{"status":"FAILED"}"#).accepted::<serde_json::Value>();
    let reply: ExecutionReply = call(&mut service, "pump-07", "a/get", "{}").accepted();
    assert_eq!(reply.execution.unwrap().status, Some(JobStatus::Failed));
}

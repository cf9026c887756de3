//! Integration tests of describe through the public API on the mock broker.

mod common;

use common::{SHORT, requests, setup, topic};
use jobs_core::{Describe, Error, InvalidInput, JobStatus, Operation, RejectCode};
use jobs_core::{ExecutionNumber, Timestamp, Version};
use jobs_mock::Script;
use serde_json::json;

fn execution(job: &str) -> serde_json::Value {
    json!({"execution": {"jobId": job, "status": "IN_PROGRESS", "statusDetails": {"phase": "verify"},
        "queuedAt": 1750000100, "startedAt": 1750000400, "lastUpdatedAt": 1750000460,
        "versionNumber": 3, "executionNumber": 1, "jobDocument": {"action": "flash", "url": "https://x"}},
        "timestamp": 1750000600})
}

#[test]
fn describe_fills_version_status_document_details_and_timestamps() {
    let s = setup();
    s.broker.script(
        &topic("firmware/get"),
        Script::accept(execution("firmware")),
    );
    let mut job = s.jobs.job("firmware").unwrap();
    assert!(job.version().is_none());
    job.describe().unwrap();
    assert_eq!(job.version(), Some(Version::new(3)));
    assert_eq!(job.status(), Some(&JobStatus::InProgress));
    assert_eq!(job.execution_number(), Some(ExecutionNumber::new(1)));
    assert_eq!(job.status_details().unwrap().get("phase"), Some("verify"));
    assert_eq!(
        job.execution().last_updated_at,
        Some(Timestamp::new(1750000460))
    );
    let document = job.document().unwrap().to_value();
    assert_eq!(document, json!({"action": "flash", "url": "https://x"}));
    let sent = &requests(&s.broker, "firmware/get")[0];
    assert_eq!(sent["includeJobDocument"], json!(true));
    assert!(sent.get("executionNumber").is_none());
}

#[test]
fn describe_without_the_document_keeps_the_known_document() {
    let s = setup();
    s.broker.script(
        &topic("firmware/get"),
        Script::accept(execution("firmware")).times(1),
    );
    let mut job = s.jobs.job("firmware").unwrap();
    job.describe().unwrap();
    s.broker.script(
        &topic("firmware/get"),
        Script::accept(json!({"execution": {"jobId": "firmware", "status": "IN_PROGRESS", "versionNumber": 4}})),
    );
    job.describe_with(
        Describe::new()
            .include_job_document(false)
            .execution_number(1),
    )
    .unwrap();
    assert_eq!(job.version(), Some(Version::new(4)));
    assert!(job.document().is_some());
    let sent = &requests(&s.broker, "firmware/get")[1];
    assert_eq!(sent["includeJobDocument"], json!(false));
    assert_eq!(sent["executionNumber"], json!(1));
}

#[test]
fn describe_of_an_unknown_job_is_rejected_with_resource_not_found() {
    let s = setup();
    s.broker.script(
        &topic("ghost/get"),
        Script::reject(RejectCode::ResourceNotFound, "no such job"),
    );
    let error = s.jobs.job("ghost").unwrap().describe().unwrap_err();
    assert_eq!(
        error.rejection().map(|r| &r.code),
        Some(&RejectCode::ResourceNotFound)
    );
    assert!(matches!(
        error,
        Error::Rejected {
            operation: Operation::Describe,
            ..
        }
    ));
}

#[test]
fn a_reply_for_job_a1_does_not_complete_a_call_about_job_a() {
    let s = setup();
    // The answer to a describe of `a` arrives on `a1`'s topic with the right token.
    s.broker.script(
        &topic("a/get"),
        Script::custom(|_, request| {
            let token = jobs_mock::request_token(request).unwrap();
            let body = json!({"execution": {"jobId": "a1"}, "clientToken": token});
            vec![(topic("a1/get/accepted"), body.to_string().into_bytes())]
        }),
    );
    let mut job = s.jobs.with_timeout(SHORT).job("a").unwrap();
    let error = job.describe().unwrap_err();
    assert!(error.is_timeout());
}

#[test]
fn describe_next_reads_the_next_topic_and_returns_the_execution() {
    let s = setup();
    s.broker
        .script(&topic("$next/get"), Script::accept(execution("firmware")));
    let job = s.jobs.describe_next().unwrap().unwrap();
    assert_eq!(job.id().as_str(), "firmware");
    assert!(job.document().is_some());
}

#[test]
fn describe_next_when_idle_is_none_for_both_answers_the_service_may_give() {
    let s = setup();
    s.broker.script(
        &topic("$next/get"),
        Script::accept(json!({"timestamp": 1})).times(1),
    );
    assert!(s.jobs.describe_next().unwrap().is_none());
    s.broker.script(
        &topic("$next/get"),
        Script::reject(RejectCode::ResourceNotFound, "idle"),
    );
    assert!(s.jobs.describe_next().unwrap().is_none());
}

#[test]
fn next_is_refused_as_a_job_id() {
    let s = setup();
    assert!(matches!(
        s.jobs.job("$next"),
        Err(Error::InvalidInput(InvalidInput::JobId { .. }))
    ));
    assert!(matches!(
        s.jobs.job("j".repeat(65)),
        Err(Error::InvalidInput(InvalidInput::JobId { .. }))
    ));
    assert!(matches!(
        s.jobs.job("a:b"),
        Err(Error::InvalidInput(InvalidInput::JobId { .. }))
    ));
}

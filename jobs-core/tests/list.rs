//! Integration tests of list through the public API on the mock broker.

mod common;

use common::{requests, setup, topic};
use jobs_core::{Error, JobStatus, Operation, RejectCode};
use jobs_core::{ExecutionNumber, Timestamp, Version};
use jobs_mock::Script;
use serde_json::json;

#[test]
fn list_returns_in_progress_jobs_then_queued_jobs_with_their_summaries() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({
            "inProgressJobs": [{"jobId": "firmware-2-4", "queuedAt": 1750000100, "startedAt": 1750000400,
                "lastUpdatedAt": 1750000460, "versionNumber": 3, "executionNumber": 1}],
            "queuedJobs": [{"jobId": "rotate-logs", "queuedAt": 1750000200, "lastUpdatedAt": 1750000200,
                "versionNumber": 1, "executionNumber": 2}],
            "timestamp": 1750000500
        })),
    );
    let jobs = s.jobs.list().unwrap();
    let ids: Vec<&str> = jobs.iter().map(|j| j.id().as_str()).collect();
    assert_eq!(ids, ["firmware-2-4", "rotate-logs"]);
    assert_eq!(jobs[0].status(), Some(&JobStatus::InProgress));
    assert_eq!(jobs[0].version(), Some(Version::new(3)));
    assert_eq!(
        jobs[0].execution().started_at,
        Some(Timestamp::new(1750000400))
    );
    assert_eq!(jobs[1].status(), Some(&JobStatus::Queued));
    assert_eq!(jobs[1].execution_number(), Some(ExecutionNumber::new(2)));
    assert!(jobs[1].document().is_none());
}

#[test]
fn list_sends_only_a_client_token() {
    let s = setup();
    s.broker.script(&topic("get"), Script::accept(json!({})));
    s.jobs.list().unwrap();
    let sent = requests(&s.broker, "get");
    let object = sent[0].as_object().unwrap();
    assert_eq!(object.len(), 1);
    assert!(
        object["clientToken"]
            .as_str()
            .is_some_and(|t| !t.is_empty() && t.len() <= 64)
    );
}

#[test]
fn list_of_an_idle_thing_is_empty() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"inProgressJobs": [], "queuedJobs": []})),
    );
    assert!(s.jobs.list().unwrap().is_empty());
}

#[test]
fn every_rejection_code_is_reported_with_its_message() {
    let s = setup();
    let codes = [
        RejectCode::InvalidTopic,
        RejectCode::InvalidJson,
        RejectCode::InvalidRequest,
        RejectCode::InvalidStateTransition,
        RejectCode::ResourceNotFound,
        RejectCode::VersionMismatch,
        RejectCode::InternalError,
        RejectCode::RequestThrottled,
        RejectCode::TerminalStateReached,
        RejectCode::Unknown("BrandNewCode".into()),
    ];
    for code in codes {
        s.broker.clear_scripts();
        s.broker
            .script(&topic("get"), Script::reject(code.clone(), "because"));
        let error = s.jobs.list().unwrap_err();
        let Error::Rejected {
            operation,
            rejection,
        } = &error
        else {
            panic!("{error:?}")
        };
        assert_eq!(*operation, Operation::GetPending);
        assert_eq!(rejection.code, code);
        assert_eq!(rejection.message.as_deref(), Some("because"));
        assert_eq!(
            error.is_retryable(),
            matches!(
                code,
                RejectCode::InternalError | RejectCode::RequestThrottled
            )
        );
    }
}

#[test]
fn rejection_display_is_short_and_lowercase() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::reject(RejectCode::RequestThrottled, "slow down"),
    );
    let error = s.jobs.list().unwrap_err();
    assert_eq!(
        error.to_string(),
        "get pending rejected with RequestThrottled: slow down"
    );
}

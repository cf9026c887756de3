//! Integration tests of start next through the public API on the mock broker.

mod common;

use common::{requests, setup, topic};
use jobs_core::{Error, InvalidInput, JobStatus, StartNext, StatusDetails, StepTimeout};
use jobs_mock::Script;
use serde_json::json;

#[test]
fn start_next_returns_the_started_execution_with_its_document() {
    let s = setup();
    s.broker.script(
        &topic("start-next"),
        Script::accept(json!({"execution": {"jobId": "rotate-logs", "status": "IN_PROGRESS",
            "statusDetails": {"phase": "archive"}, "versionNumber": 2, "executionNumber": 2,
            "approximateSecondsBeforeTimedOut": 1200, "jobDocument": {"action": "rotate", "keep": 5}},
            "timestamp": 1750000800})),
    );
    let details = StatusDetails::from_pairs([("phase", "archive")]).unwrap();
    let options = StartNext::new()
        .status_details(details)
        .step_timeout(StepTimeout::minutes(20).unwrap());
    let job = s.jobs.start_next_with(options).unwrap().unwrap();
    assert_eq!(job.id().as_str(), "rotate-logs");
    assert_eq!(job.status(), Some(&JobStatus::InProgress));
    assert_eq!(
        job.execution().approximate_seconds_before_timed_out,
        Some(1200)
    );
    assert_eq!(
        job.document().unwrap().to_value(),
        json!({"action": "rotate", "keep": 5})
    );
    let sent = &requests(&s.broker, "start-next")[0];
    assert_eq!(sent["statusDetails"], json!({"phase": "archive"}));
    assert_eq!(sent["stepTimeoutInMinutes"], json!(20));
}

#[test]
fn start_next_when_nothing_is_pending_is_none() {
    let s = setup();
    s.broker.script(
        &topic("start-next"),
        Script::accept(json!({"timestamp": 1750000990})),
    );
    assert!(s.jobs.start_next().unwrap().is_none());
    let sent = &requests(&s.broker, "start-next")[0];
    assert_eq!(sent.as_object().unwrap().len(), 1, "only the token: {sent}");
}

#[test]
fn start_next_cannot_cancel_a_step_timer() {
    let s = setup();
    let error = s
        .jobs
        .start_next_with(StartNext::new().step_timeout(StepTimeout::CANCEL))
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::StepTimeoutCancelOutsideUpdate)
    ));
    assert!(s.broker.published().is_empty());
}

//! Integration tests of update through the public API on the mock broker.

mod common;

use common::{last_update, setup, topic};
use jobs_core::{
    Error, InvalidInput, JobStatus, Operation, RejectCode, StatusDetails, StepTimeout, Update,
};
use jobs_core::{ExecutionNumber, Version};
use jobs_mock::Script;
use serde_json::json;

#[test]
fn update_sends_the_status_details_and_a_request_for_the_new_state_and_nothing_else() {
    let s = setup();
    s.broker.script(
        &topic("fw/update"),
        Script::accept(json!({"timestamp": 1750000701})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    let details = StatusDetails::from_pairs([("progress", "40%")]).unwrap();
    job.update(JobStatus::InProgress, Some(&details)).unwrap();
    let published = s.broker.published_on(&topic("fw/update"));
    let sent = common::json(&published[0].payload);
    let keys: Vec<&str> = sent
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "clientToken",
            "includeJobExecutionState",
            "status",
            "statusDetails"
        ]
    );
    assert_eq!(sent["status"], json!("IN_PROGRESS"));
    assert_eq!(sent["includeJobExecutionState"], json!(true));
    assert_eq!(job.status(), Some(&JobStatus::InProgress));
    assert_eq!(job.status_details(), Some(&details));
    assert_eq!(
        job.version(),
        None,
        "a reply without the asked-for state does not tell the new version"
    );
}

#[test]
fn the_version_stays_known_after_an_accepted_update() {
    let s = setup();
    s.broker.script(
        &topic("fw/get"),
        Script::accept(
            json!({"execution": {"jobId": "fw", "status": "QUEUED", "versionNumber": 1}}),
        ),
    );
    s.broker.script(
        &topic("fw/update"),
        Script::accept(json!({"executionState": {"status": "IN_PROGRESS", "versionNumber": 2}})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    job.describe().unwrap();
    assert_eq!(job.version(), Some(Version::new(1)));
    job.update(JobStatus::InProgress, None).unwrap();
    assert_eq!(job.version(), Some(Version::new(2)));
}

#[test]
fn status_details_read_from_a_reply_are_checked_again_before_they_are_published() {
    let s = setup();
    s.broker.script(
        &topic("fw/get"),
        Script::accept(
            json!({"execution": {"jobId": "fw", "statusDetails": {"step": "a\u{200B}b"}}}),
        ),
    );
    let mut job = s.jobs.job("fw").unwrap();
    job.describe().unwrap();
    let details = job.status_details().cloned().unwrap();
    let error = job
        .update(JobStatus::InProgress, Some(&details))
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::StatusDetailValue { .. })
    ));
    assert!(s.broker.published_on(&topic("fw/update")).is_empty());
}

#[test]
fn status_details_follow_the_aws_rules_in_characters_and_unicode_categories() {
    for bad in ['\u{200B}', '\u{AD}', '\u{FEFF}', '\u{E000}'] {
        let value = format!("x{bad}y");
        assert!(
            matches!(
                StatusDetails::from_pairs([("k", value.as_str())]),
                Err(InvalidInput::StatusDetailValue { .. })
            ),
            "U+{:04X}",
            u32::from(bad)
        );
    }
    assert!(StatusDetails::from_pairs([("k", "é".repeat(1024))]).is_ok());
    assert!(StatusDetails::from_pairs([("k", "é".repeat(1025))]).is_err());
}

#[test]
fn every_status_a_device_may_set_is_accepted() {
    let s = setup();
    s.broker
        .script(&topic("fw/update"), Script::accept(json!({})));
    let mut job = s.jobs.job("fw").unwrap();
    for status in [
        JobStatus::InProgress,
        JobStatus::Succeeded,
        JobStatus::Failed,
        JobStatus::Rejected,
    ] {
        job.update(status.clone(), None).unwrap();
        assert_eq!(last_update(&s.broker, "fw").status, Some(status));
    }
}

#[test]
fn statuses_only_the_service_sets_are_refused_before_publishing() {
    let s = setup();
    let mut job = s.jobs.job("fw").unwrap();
    for status in [
        JobStatus::Queued,
        JobStatus::TimedOut,
        JobStatus::Removed,
        JobStatus::Canceled,
        JobStatus::Unknown("PAUSED".into()),
    ] {
        let error = job.update(status.clone(), None).unwrap_err();
        assert!(
            matches!(error, Error::InvalidInput(InvalidInput::StatusNotSettable(s)) if s == status)
        );
    }
    assert!(s.broker.published().is_empty());
}

#[test]
fn expected_version_is_off_by_default_and_sends_the_learnt_version_when_on() {
    let s = setup();
    s.broker.script(
        &topic("fw/update"),
        Script::accept(json!({"executionState": {"status": "IN_PROGRESS", "versionNumber": 4}})),
    );
    s.broker.script(
        &topic("fw/get"),
        Script::accept(
            json!({"execution": {"jobId": "fw", "status": "IN_PROGRESS", "versionNumber": 3}}),
        ),
    );
    let mut job = s.jobs.job("fw").unwrap();
    job.describe().unwrap();
    job.update(JobStatus::InProgress, None).unwrap();
    assert_eq!(last_update(&s.broker, "fw").expected_version, None);

    job.describe().unwrap();
    job.set_expected_version(true);
    job.update(JobStatus::InProgress, None).unwrap();
    let sent = last_update(&s.broker, "fw");
    assert_eq!(sent.expected_version, Some(Version::new(3)));
    assert_eq!(sent.include_job_execution_state, Some(true));
    assert_eq!(
        job.version(),
        Some(Version::new(4)),
        "learnt from the reply's executionState"
    );
    job.update(JobStatus::Succeeded, None).unwrap();
    assert_eq!(
        last_update(&s.broker, "fw").expected_version,
        Some(Version::new(4))
    );
}

#[test]
fn version_mismatch_reports_and_takes_over_the_current_state() {
    let s = setup();
    s.broker.script(
        &topic("fw/update"),
        Script::reject_with(json!({"code": "VersionMismatch", "message": "stale",
            "executionState": {"status": "IN_PROGRESS", "statusDetails": {"phase": "verify"}, "versionNumber": 7}}))
        .times(1),
    );
    s.broker
        .script(&topic("fw/update"), Script::accept(json!({})));
    let mut job = s.jobs.job("fw").unwrap();
    job.set_expected_version(true);
    let error = job.update(JobStatus::Succeeded, None).unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.code, RejectCode::VersionMismatch);
    assert_eq!(
        rejection.execution_state.as_ref().unwrap().version_number,
        Some(Version::new(7))
    );
    assert!(!error.is_retryable());
    assert_eq!(job.version(), Some(Version::new(7)));
    assert_eq!(job.status(), Some(&JobStatus::InProgress));
    job.update(JobStatus::Succeeded, None).unwrap();
    assert_eq!(
        last_update(&s.broker, "fw").expected_version,
        Some(Version::new(7))
    );
}

#[test]
fn updating_a_terminal_execution_reports_invalid_state_transition_with_its_state() {
    let s = setup();
    s.broker.script(
        &topic("fw/update"),
        Script::reject_with(json!({"code": "InvalidStateTransition",
            "executionState": {"status": "SUCCEEDED", "versionNumber": 4}})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    let error = job.update(JobStatus::InProgress, None).unwrap_err();
    assert!(matches!(
        error,
        Error::Rejected {
            operation: Operation::Update,
            ..
        }
    ));
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::InvalidStateTransition
    );
    assert_eq!(job.status(), Some(&JobStatus::Succeeded));
}

#[test]
fn update_options_are_encoded_exactly() {
    let s = setup();
    s.broker.script(
        &topic("fw/update"),
        Script::accept(json!({"jobDocument": {"v": 2}, "executionState": {"status": "IN_PROGRESS", "versionNumber": 9}})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    job.update_with(
        Update::new(JobStatus::InProgress)
            .step_timeout(StepTimeout::CANCEL)
            .execution_number(2)
            .include_job_document(true)
            .include_job_execution_state(true),
    )
    .unwrap();
    let sent = last_update(&s.broker, "fw");
    assert_eq!(sent.step_timeout_in_minutes, Some(-1));
    assert_eq!(sent.execution_number, Some(ExecutionNumber::new(2)));
    assert_eq!(sent.include_job_document, Some(true));
    assert_eq!(sent.include_job_execution_state, Some(true));
    assert_eq!(job.document().unwrap().to_value(), json!({"v": 2}));
    assert_eq!(job.version(), Some(Version::new(9)));
}

#[test]
fn a_request_over_128_kb_is_refused_before_publishing() {
    let s = setup();
    let mut details = StatusDetails::new();
    for i in 0..140 {
        details.insert(format!("key{i}"), "x".repeat(1000)).unwrap();
    }
    let mut job = s.jobs.job("fw").unwrap();
    let error = job
        .update(JobStatus::InProgress, Some(&details))
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::PayloadTooLarge { limit: 131_072, .. })
    ));
    assert!(s.broker.published().is_empty());
}

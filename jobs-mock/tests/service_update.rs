//! UpdateJobExecution (`…/jobs/{job}/update`).

mod common;

use common::*;
use jobs_core::model::UpdateReply;
use jobs_core::{JobStatus, RejectCode};
use jobs_core::{Timestamp, Version};
use jobs_mock::service::Quirks;

#[test]
fn a_minimal_update_is_accepted_with_only_token_and_timestamp() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let answer = update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","clientToken":"u"}"#,
    );
    let raw: serde_json::Value = answer.reply.decode().unwrap();
    assert_eq!(
        raw,
        serde_json::json!({"timestamp": T0, "clientToken": "u"})
    );
}

#[test]
fn update_reports_state_and_document_only_when_asked() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let reply: UpdateReply = update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","statusDetails":{"step":"1"},"includeJobExecutionState":true,"includeJobDocument":true}"#,
    )
    .accepted();
    let state = reply.execution_state.unwrap();
    assert_eq!(state.status, Some(JobStatus::InProgress));
    assert_eq!(state.version_number, Some(Version::new(2)));
    assert_eq!(state.status_details.unwrap().get("step"), Some("1"));
    assert_eq!(
        reply.job_document.unwrap().to_value(),
        serde_json::json!({"action": "a"})
    );
}

#[test]
fn each_accepted_update_adds_one_to_the_version() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for (n, body) in [
        r#"{"status":"IN_PROGRESS"}"#,
        r#"{"status":"IN_PROGRESS","statusDetails":{"pct":"50"}}"#,
        r#"{"status":"SUCCEEDED"}"#,
    ]
    .into_iter()
    .enumerate()
    {
        update(&mut service, "pump-07", "a", body).accepted::<UpdateReply>();
        let state = service.execution(&thing("pump-07"), &job("a")).unwrap();
        assert_eq!(state.version_number, i64::try_from(n).unwrap() + 2);
    }
}

#[test]
fn update_replaces_status_details_only_when_given() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","statusDetails":{"x":"1","y":"2"}}"#,
    )
    .accepted::<UpdateReply>();
    update(&mut service, "pump-07", "a", r#"{"status":"IN_PROGRESS"}"#).accepted::<UpdateReply>();
    let details = service
        .execution(&thing("pump-07"), &job("a"))
        .unwrap()
        .status_details
        .unwrap();
    assert_eq!(details.len(), 2, "omitted details are unchanged");
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"SUCCEEDED","statusDetails":{"result":"ok"}}"#,
    )
    .accepted::<UpdateReply>();
    let details = service
        .execution(&thing("pump-07"), &job("a"))
        .unwrap()
        .status_details
        .unwrap();
    assert_eq!(details.len(), 1, "given details replace the old ones");
    assert_eq!(details.get("result"), Some("ok"));
}

#[test]
fn update_with_matching_expected_version_as_number_or_string_is_accepted() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","expectedVersion":1}"#,
    )
    .accepted::<UpdateReply>();
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"SUCCEEDED","expectedVersion":"2"}"#,
    )
    .accepted::<UpdateReply>();
}

#[test]
fn update_with_stale_expected_version_is_rejected_with_version_mismatch_and_execution_state() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","statusDetails":{"phase":"verify"}}"#,
    )
    .accepted::<UpdateReply>();
    let error = update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"SUCCEEDED","expectedVersion":"1","clientToken":"v"}"#,
    )
    .rejected();
    assert_eq!(error.code, RejectCode::VersionMismatch);
    assert_eq!(error.client_token.as_deref(), Some("v"));
    assert_eq!(error.timestamp, Some(Timestamp::new(T0)));
    let state = error.execution_state.unwrap();
    assert_eq!(state.status, Some(JobStatus::InProgress));
    assert_eq!(state.version_number, Some(Version::new(2)));
    assert_eq!(state.status_details.unwrap().get("phase"), Some("verify"));
    let stored = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(stored.status, JobStatus::InProgress, "nothing changed");
}

#[test]
fn update_of_a_terminal_execution_is_rejected_with_invalid_state_transition_and_execution_state() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"SUCCEEDED","statusDetails":{"result":"ok"}}"#,
    )
    .accepted::<UpdateReply>();
    for status in ["IN_PROGRESS", "SUCCEEDED", "FAILED", "REJECTED"] {
        let error = update(
            &mut service,
            "pump-07",
            "a",
            &format!(r#"{{"status":"{status}","clientToken":"s"}}"#),
        )
        .rejected();
        assert_eq!(error.code, RejectCode::InvalidStateTransition, "{status}");
        assert_eq!(error.client_token.as_deref(), Some("s"));
        let state = error.execution_state.unwrap();
        assert_eq!(state.status, Some(JobStatus::Succeeded));
        assert_eq!(state.version_number, Some(Version::new(2)));
    }
}

#[test]
fn stale_expected_version_on_a_terminal_execution_is_a_version_mismatch() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(&mut service, "pump-07", "a", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    let error = update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","expectedVersion":1}"#,
    )
    .rejected();
    assert_eq!(error.code, RejectCode::VersionMismatch);
}

#[test]
fn statuses_a_device_may_not_set_are_rejected_with_invalid_state_transition() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for status in ["QUEUED", "TIMED_OUT", "REMOVED", "CANCELED"] {
        let error = update(
            &mut service,
            "pump-07",
            "a",
            &format!(r#"{{"status":"{status}"}}"#),
        )
        .rejected();
        assert_eq!(error.code, RejectCode::InvalidStateTransition, "{status}");
        assert_eq!(
            error.execution_state.unwrap().status,
            Some(JobStatus::Queued)
        );
    }
}

#[test]
fn an_unknown_or_missing_status_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for body in [
        r#"{"status":"PAUSED"}"#,
        r#"{"statusDetails":{"k":"v"}}"#,
        r#"{"status":7}"#,
    ] {
        let error = update(&mut service, "pump-07", "a", body).rejected();
        assert_eq!(error.code, RejectCode::InvalidRequest, "{body}");
    }
}

#[test]
fn queued_to_succeeded_or_failed_directly_is_accepted() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    create(&mut service, "b", &["pump-07"]);
    update(&mut service, "pump-07", "a", r#"{"status":"SUCCEEDED"}"#).accepted::<UpdateReply>();
    update(&mut service, "pump-07", "b", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    let a = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(a.status, JobStatus::Succeeded);
    assert_eq!(a.started_at, None);
}

#[test]
fn queued_to_succeeded_directly_is_invalid_state_transition_under_that_quirk() {
    let mut service = service();
    let mut quirks = Quirks::default();
    quirks.queued_to_done_is_rejected = true;
    service.set_quirks(quirks);
    create(&mut service, "a", &["pump-07"]);
    for status in ["SUCCEEDED", "FAILED"] {
        let error = update(
            &mut service,
            "pump-07",
            "a",
            &format!(r#"{{"status":"{status}"}}"#),
        )
        .rejected();
        assert_eq!(error.code, RejectCode::InvalidStateTransition);
    }
    update(&mut service, "pump-07", "a", r#"{"status":"REJECTED"}"#).accepted::<UpdateReply>();
}

#[test]
fn queued_to_rejected_is_accepted() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"REJECTED","statusDetails":{"reason":"unsupported"}}"#,
    )
    .accepted::<UpdateReply>();
    let a = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(a.status, JobStatus::Rejected);
}

#[test]
fn update_of_next_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let answer = update(
        &mut service,
        "pump-07",
        "$next",
        r#"{"status":"IN_PROGRESS","clientToken":"n"}"#,
    );
    assert_eq!(
        answer.reply.topic,
        "$aws/things/pump-07/jobs/$next/update/rejected"
    );
    let error = answer.rejected();
    assert_eq!(error.code, RejectCode::InvalidRequest);
    assert_eq!(error.client_token.as_deref(), Some("n"));
}

#[test]
fn update_of_an_unknown_execution_is_rejected_with_resource_not_found() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let error = update(&mut service, "pump-07", "b", r#"{"status":"IN_PROGRESS"}"#).rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound);
    let error = update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","executionNumber":9}"#,
    )
    .rejected();
    assert_eq!(
        error.code,
        RejectCode::ResourceNotFound,
        "wrong execution number"
    );
    let error = update(&mut service, "pump-08", "a", r#"{"status":"IN_PROGRESS"}"#).rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound, "other thing");
}

#[test]
fn update_with_invalid_status_details_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let long_value = "x".repeat(1025);
    for body in [
        r#"{"status":"IN_PROGRESS","statusDetails":{"n":1}}"#.to_owned(),
        r#"{"status":"IN_PROGRESS","statusDetails":{"k":{"nested":"v"}}}"#.to_owned(),
        r#"{"status":"IN_PROGRESS","statusDetails":{"a b":"v"}}"#.to_owned(),
        r#"{"status":"IN_PROGRESS","statusDetails":{"k":"line\nbreak"}}"#.to_owned(),
        format!(r#"{{"status":"IN_PROGRESS","statusDetails":{{"k":"{long_value}"}}}}"#),
        r#"{"status":"IN_PROGRESS","statusDetails":["k","v"]}"#.to_owned(),
    ] {
        let error = update(&mut service, "pump-07", "a", &body).rejected();
        assert_eq!(error.code, RejectCode::InvalidRequest, "{body}");
    }
    let a = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(a.version_number, 1, "nothing changed");
}

#[test]
fn update_with_an_out_of_range_step_timeout_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for minutes in ["0", "-2", "10081"] {
        let error = update(
            &mut service,
            "pump-07",
            "a",
            &format!(r#"{{"status":"IN_PROGRESS","stepTimeoutInMinutes":{minutes}}}"#),
        )
        .rejected();
        assert_eq!(error.code, RejectCode::InvalidRequest, "{minutes}");
    }
}

#[test]
fn cancelling_a_step_timer_that_does_not_exist_is_rejected_as_invalid_request() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    update(&mut service, "pump-07", "a", r#"{"status":"IN_PROGRESS"}"#).accepted::<UpdateReply>();
    let error = update(
        &mut service,
        "pump-07",
        "a",
        r#"{"status":"IN_PROGRESS","stepTimeoutInMinutes":-1}"#,
    )
    .rejected();
    assert_eq!(error.code, RejectCode::InvalidRequest);
}

#[test]
fn a_queued_execution_started_by_update_gets_its_start_time() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    service.advance_clock(std::time::Duration::from_secs(30));
    update(&mut service, "pump-07", "a", r#"{"status":"IN_PROGRESS"}"#).accepted::<UpdateReply>();
    let a = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(a.started_at, Some(T0 + 30));
    assert_eq!(a.last_updated_at, T0 + 30);
    assert_eq!(a.queued_at, T0);
}

#[test]
fn status_details_have_no_limit_on_the_number_of_pairs() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let details: serde_json::Map<String, serde_json::Value> = (0..50)
        .map(|n| {
            (
                format!("key-{n}"),
                serde_json::Value::from(format!("value {n}")),
            )
        })
        .collect();
    let body = serde_json::json!({"status": "IN_PROGRESS", "statusDetails": details});
    update(&mut service, "pump-07", "a", &body.to_string()).accepted::<UpdateReply>();
    let stored = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(stored.status_details.unwrap().len(), 50);
}

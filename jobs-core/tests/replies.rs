//! Timeouts, late, duplicate, corrupt and oversized replies.

mod common;

use common::{SHORT, setup, topic};
use jobs_core::topics::ReplyKind;
use jobs_core::{Error, Operation};
use jobs_mock::Script;
use serde_json::json;

#[test]
fn list_times_out_when_the_broker_is_silent_and_says_how_long_it_waited() {
    let s = setup();
    s.broker.script(&topic("get"), Script::silent());
    let error = s.jobs.with_timeout(SHORT).list().unwrap_err();
    assert!(
        matches!(error, Error::Timeout { operation: Some(Operation::GetPending), waited } if waited == SHORT)
    );
    assert!(error.is_timeout() && error.is_retryable());
}

#[test]
fn a_late_reply_after_the_timeout_is_ignored_and_later_calls_work() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "late"}]}))
            .held()
            .times(1),
    );
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "fresh"}]})),
    );
    assert!(s.jobs.with_timeout(SHORT).list().unwrap_err().is_timeout());
    assert_eq!(s.broker.release_held(), 1);
    let jobs = s.jobs.list().unwrap();
    assert_eq!(jobs[0].id().as_str(), "fresh");
}

#[test]
fn a_duplicate_reply_is_dropped() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "once"}]})).twice(),
    );
    assert_eq!(s.jobs.list().unwrap().len(), 1);
    assert_eq!(s.broker.published_on(&topic("get/accepted")).len(), 2);
    assert_eq!(s.jobs.list().unwrap().len(), 1);
}

#[test]
fn a_reply_with_a_foreign_token_is_ignored() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({})).token("someone-else"),
    );
    assert!(s.jobs.with_timeout(SHORT).list().unwrap_err().is_timeout());
}

#[test]
fn a_corrupt_reply_cannot_be_attributed_and_the_call_ends_by_its_timeout() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::raw(ReplyKind::Accepted, b"{not json".to_vec()),
    );
    let error = s.jobs.with_timeout(SHORT).list().unwrap_err();
    assert!(matches!(
        error,
        Error::Timeout {
            operation: Some(Operation::GetPending),
            ..
        }
    ));
}

#[test]
fn a_reply_of_the_wrong_shape_is_a_decode_error() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": "not a list"})),
    );
    assert!(matches!(s.jobs.list().unwrap_err(), Error::Decode { .. }));
    s.broker.clear_scripts();
    s.broker.script(
        &topic("get"),
        Script::reject_with(json!({"message": "no code"})),
    );
    assert!(matches!(s.jobs.list().unwrap_err(), Error::Decode { .. }));
}

#[test]
fn a_reply_without_a_token_never_completes_a_call() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "j"}]})).without_token(),
    );
    assert!(s.jobs.with_timeout(SHORT).list().unwrap_err().is_timeout());
}

#[test]
fn a_tokenless_accepted_reply_racing_a_rejection_does_not_turn_the_rejection_into_success() {
    let s = setup();
    s.broker.script(
        &topic("fw/update"),
        Script::custom(|topic, request| {
            let token = jobs_mock::request_token(request).unwrap();
            vec![
                (format!("{topic}/accepted"), br#"{"timestamp":1}"#.to_vec()),
                (
                    format!("{topic}/rejected"),
                    json!({"code": "InvalidStateTransition", "clientToken": token})
                        .to_string()
                        .into_bytes(),
                ),
            ]
        }),
    );
    let mut job = s.jobs.job("fw").unwrap();
    let error = job
        .update(jobs_core::JobStatus::Succeeded, None)
        .unwrap_err();
    assert_eq!(
        error.rejection().map(|r| &r.code),
        Some(&jobs_core::RejectCode::InvalidStateTransition)
    );
}

/// The reason of a decode error, as it prints.
fn decode_reason(error: &Error) -> String {
    match error {
        Error::Decode { reason, .. } => reason.to_string(),
        other => panic!("expected a decode error, got {other:?}"),
    }
}

#[test]
fn a_start_next_execution_without_a_job_id_is_a_decode_error_naming_the_field() {
    let s = setup();
    s.broker.script(
        &topic("start-next"),
        Script::accept(json!({"execution": {"status": "IN_PROGRESS", "versionNumber": 2}})),
    );
    let error = s.jobs.start_next().unwrap_err();
    assert!(decode_reason(&error).contains("jobId"), "{error}");
    assert!(error.to_string().starts_with(&format!(
        "undecodable reply on {}: missing field `jobId`",
        topic("start-next/accepted")
    )));
}

#[test]
fn a_listed_summary_without_a_job_id_is_a_decode_error_not_a_shorter_list() {
    let s = setup();
    s.broker.script(
        &topic("get"),
        Script::accept(json!({"queuedJobs": [{"jobId": "a"}, {"versionNumber": 1}]})),
    );
    let error = s.jobs.list().unwrap_err();
    assert!(decode_reason(&error).contains("jobId"), "{error}");
}

#[test]
fn a_describe_reply_without_an_execution_is_a_decode_error() {
    let s = setup();
    s.broker.script(&topic("fw/get"), Script::accept(json!({})));
    let mut job = s.jobs.job("fw").unwrap();
    let error = job.describe().unwrap_err();
    assert!(
        matches!(&error, Error::Decode { reason, .. } if reason.missing_field() == Some("execution"))
    );
    assert_eq!(
        error.to_string(),
        format!(
            "undecodable reply on {}: missing field execution",
            topic("fw/get/accepted")
        )
    );
}

#[test]
fn a_describe_reply_about_another_job_is_a_decode_error() {
    let s = setup();
    s.broker.script(
        &topic("fw/get"),
        Script::accept(json!({"execution": {"jobId": "other"}})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    assert!(matches!(job.describe().unwrap_err(), Error::Decode { .. }));
}

#[test]
fn a_document_that_would_not_parse_fails_the_call_that_received_it() {
    let s = setup();
    let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
    for document in [deep.as_str(), "1e400"] {
        s.broker.clear_scripts();
        let body = format!(r#"{{"execution":{{"jobId":"fw","jobDocument":{document}}}}}"#);
        s.broker.script(
            &topic("fw/get"),
            Script::custom(move |topic, request| {
                let token = jobs_mock::request_token(request).unwrap();
                let body = body.replacen('{', &format!(r#"{{"clientToken":"{token}","#), 1);
                vec![(format!("{topic}/accepted"), body.into_bytes())]
            }),
        );
        let mut job = s.jobs.job("fw").unwrap();
        assert!(
            matches!(job.describe().unwrap_err(), Error::Decode { .. }),
            "{document}"
        );
    }
}

#[test]
fn an_oversized_reply_is_decoded_or_reported_never_a_panic() {
    let s = setup();
    let big = "x".repeat(200 * 1024);
    s.broker.script(
        &topic("fw/get"),
        Script::accept(json!({"execution": {"jobId": "fw", "jobDocument": {"blob": big}}})),
    );
    let mut job = s.jobs.job("fw").unwrap();
    job.describe().unwrap();
    assert!(job.document().unwrap().as_json().len() > 200 * 1024);
    let mut huge = b"{\"execution\":".to_vec();
    huge.extend(std::iter::repeat_n(b'[', 300 * 1024));
    s.broker.clear_scripts();
    s.broker
        .script(&topic("fw/get"), Script::raw(ReplyKind::Accepted, huge));
    // Corrupt beyond reading its token: it cannot be attributed, so the call ends by its
    // timeout.
    job.set_timeout(SHORT);
    assert!(job.describe().unwrap_err().is_timeout());
}

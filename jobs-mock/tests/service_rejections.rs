//! Request-level rejections: InvalidTopic, InvalidJson, InvalidRequest, RequestThrottled,
//! InternalError, and robustness against malformed input.

mod common;

use common::*;
use jobs_core::RejectCode;
use jobs_core::Timestamp;
use jobs_core::model::{ErrorReply, PendingJobs};

#[test]
fn a_payload_that_is_not_json_is_rejected_with_invalid_json() {
    let mut service = service();
    for (operation, payload) in [
        ("get", "not json"),
        ("start-next", "{\"clientToken\":"),
        ("a/get", ""),
        ("a/update", "{'status':'IN_PROGRESS'}"),
    ] {
        let error = call(&mut service, "pump-07", operation, payload).rejected();
        assert_eq!(
            error.code,
            RejectCode::InvalidJson,
            "{operation}: {payload}"
        );
        assert_eq!(error.timestamp, Some(Timestamp::new(T0)));
        assert_eq!(error.client_token, None);
    }
}

#[test]
fn a_payload_that_is_not_utf8_is_rejected_with_invalid_json() {
    let mut service = service();
    let out = service.handle("$aws/things/pump-07/jobs/get", &[0xff, 0xfe, b'{', b'}']);
    let [reply] = out.as_slice() else {
        panic!("one reply expected, got {out:?}");
    };
    assert_eq!(reply.topic, "$aws/things/pump-07/jobs/get/rejected");
    assert_eq!(
        reply.decode::<ErrorReply>().unwrap().code,
        RejectCode::InvalidJson
    );
}

#[test]
fn valid_json_of_the_wrong_shape_is_rejected_with_invalid_request_echoing_the_token() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    for (operation, payload, token) in [
        ("get", "[]", None),
        ("get", "42", None),
        ("start-next", "null", None),
        (
            "start-next",
            r#"{"stepTimeoutInMinutes":"soon","clientToken":"t1"}"#,
            Some("t1"),
        ),
        (
            "a/get",
            r#"{"includeJobDocument":"yes","clientToken":"t2"}"#,
            Some("t2"),
        ),
        ("a/get", r#"{"executionNumber":1.5}"#, None),
        (
            "a/update",
            r#"{"status":"IN_PROGRESS","expectedVersion":"1.0.1","clientToken":"t3"}"#,
            Some("t3"),
        ),
        (
            "a/update",
            r#"{"status":"IN_PROGRESS","includeJobExecutionState":1}"#,
            None,
        ),
    ] {
        let error = call(&mut service, "pump-07", operation, payload).rejected();
        assert_eq!(
            error.code,
            RejectCode::InvalidRequest,
            "{operation}: {payload}"
        );
        assert_eq!(error.client_token.as_deref(), token, "{payload}");
        assert!(error.message.is_some());
    }
}

#[test]
fn an_invalid_client_token_is_rejected_as_invalid_request_and_echoed_as_sent() {
    let mut service = service();
    let long = "t".repeat(65);
    for token in [long.as_str(), "with space", "", "tab\there"] {
        let payload = serde_json::json!({ "clientToken": token }).to_string();
        let error = call(&mut service, "pump-07", "get", &payload).rejected();
        assert_eq!(error.code, RejectCode::InvalidRequest, "{token:?}");
        assert_eq!(error.client_token.as_deref(), Some(token));
    }
    let error = call(&mut service, "pump-07", "get", r#"{"clientToken":17}"#).rejected();
    assert_eq!(error.code, RejectCode::InvalidRequest);
    assert_eq!(error.client_token, None);
    let ok: PendingJobs = call(
        &mut service,
        "pump-07",
        "get",
        &serde_json::json!({ "clientToken": "t".repeat(64) }).to_string(),
    )
    .accepted();
    assert_eq!(ok.client_token.map(|t| t.len()), Some(64));
}

#[test]
fn an_unknown_topic_in_the_jobs_namespace_is_rejected_with_invalid_topic_on_its_rejected_topic() {
    let mut service = service();
    for topic in [
        "$aws/things/pump-07/jobs/getzz",
        "$aws/things/pump-07/jobs/a/delete",
        "$aws/things/pump-07/jobs/bad:id/get",
        "$aws/things/pump-07/jobs/a/update/extra",
        "$aws/things/bad name/jobs/get",
    ] {
        let out = service.handle(topic, br#"{"clientToken":"it"}"#);
        let [reply] = out.as_slice() else {
            panic!("one reply expected for {topic}, got {out:?}");
        };
        assert_eq!(reply.topic, format!("{topic}/rejected"));
        let error: ErrorReply = reply.decode().unwrap();
        assert_eq!(error.code, RejectCode::InvalidTopic, "{topic}");
        assert_eq!(error.client_token.as_deref(), Some("it"));
        assert_eq!(error.timestamp, Some(Timestamp::new(T0)));
    }
}

#[test]
fn reply_event_and_foreign_topics_get_no_answer() {
    let mut service = service();
    for topic in [
        "$aws/things/pump-07/jobs/get/accepted",
        "$aws/things/pump-07/jobs/a/update/rejected",
        "$aws/things/pump-07/jobs/notify",
        "$aws/things/pump-07/jobs/notify-next",
        "$aws/things/pump-07/shadow/update",
        "sensors/temperature",
    ] {
        assert!(service.handle(topic, b"{}").is_empty(), "{topic}");
    }
}

#[test]
fn throttled_requests_are_rejected_with_request_throttled_then_served_again() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    service.throttle_next_requests(2);
    for operation in ["get", "a/update"] {
        let error = call(
            &mut service,
            "pump-07",
            operation,
            r#"{"status":"SUCCEEDED","clientToken":"th"}"#,
        )
        .rejected();
        assert_eq!(error.code, RejectCode::RequestThrottled);
        assert_eq!(error.client_token.as_deref(), Some("th"));
        assert_eq!(error.timestamp, Some(Timestamp::new(T0)));
    }
    let state = service.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(
        state.version_number, 1,
        "the throttled update was not applied"
    );
    call(&mut service, "pump-07", "get", "{}").accepted::<PendingJobs>();
}

#[test]
fn injected_internal_errors_are_rejected_with_internal_error_after_throttling() {
    let mut service = service();
    service.fail_next_requests(1);
    service.throttle_next_requests(1);
    let first = call(&mut service, "pump-07", "start-next", "{}").rejected();
    assert_eq!(first.code, RejectCode::RequestThrottled);
    let second = call(&mut service, "pump-07", "$next/get", "not even json").rejected();
    assert_eq!(
        second.code,
        RejectCode::InternalError,
        "faults come before parsing"
    );
    call(&mut service, "pump-07", "get", "{}").accepted::<PendingJobs>();
}

#[test]
fn malformed_requests_never_panic_and_always_get_exactly_one_reply() {
    let mut service = service();
    create(&mut service, "a", &["pump-07"]);
    let payloads: [&[u8]; 12] = [
        b"",
        b"\0",
        b"{",
        b"[]",
        b"\"str\"",
        b"{\"status\":null}",
        b"{\"status\":\"IN_PROGRESS\",\"expectedVersion\":99999999999999999999}",
        b"{\"status\":\"IN_PROGRESS\",\"stepTimeoutInMinutes\":-9223372036854775808}",
        b"{\"status\":\"IN_PROGRESS\",\"executionNumber\":\"x\"}",
        b"{\"statusDetails\":{\"\":\"\"}}",
        b"{\"clientToken\":{\"nested\":true}}",
        &[0xc3, 0x28],
    ];
    for operation in [
        "get",
        "start-next",
        "a/get",
        "$next/get",
        "a/update",
        "$next/update",
    ] {
        let topic = format!("$aws/things/pump-07/jobs/{operation}");
        for payload in payloads {
            let out = service.handle(&topic, payload);
            let replies: Vec<_> = out
                .iter()
                .filter(|m| m.topic.starts_with(&format!("{topic}/")))
                .collect();
            assert_eq!(replies.len(), 1, "{operation}: {payload:?}");
            let body: serde_json::Value = replies[0].decode().unwrap();
            assert!(body["timestamp"].is_i64(), "timestamp always present");
        }
    }
}

//! The control plane as the AWS IoT API (`jobs_mock::service::api`): shapes, errors and what
//! each operation does to executions and devices.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

mod common;

use common::*;
use jobs_core::model::{ExecutionReply, UpdateReply};
use jobs_core::{ExecutionNumber, JobStatus, RejectCode};
use jobs_mock::service::api::Operation;
use jobs_mock::service::api::{
    AssociateTargetsWithJob, CancelJobExecution, CreateJob, CreateThing, DescribeJobExecution,
};
use jobs_mock::service::{ApiError, ApiErrorKind, JobsService, Outgoing};
use serde_json::{Value, json};

/// Runs `operation` with JSON `input`: the output or error, and the events.
fn api(
    service: &mut JobsService,
    operation: &str,
    input: Value,
) -> (Result<Value, ApiError>, Vec<Outgoing>) {
    let operation = Operation::from_name(operation).unwrap();
    let called = service.call_json(operation, input);
    (called.result, called.events)
}

fn ok(service: &mut JobsService, operation: &str, input: Value) -> Value {
    let (result, _) = api(service, operation, input);
    result.unwrap_or_else(|error| panic!("{operation}: {error}"))
}

fn err(service: &mut JobsService, operation: &str, input: Value) -> ApiErrorKind {
    let (result, events) = api(service, operation, input);
    assert!(events.is_empty(), "a refused operation sends no event");
    result.unwrap_err().kind
}

/// The ARN of thing `name`.
fn arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:123456789012:thing/{name}")
}

/// A service on the virtual clock with the things of these tests registered.
fn service() -> JobsService {
    let mut service = common::service();
    for name in ["pump-07", "pump-08"] {
        service.call(CreateThing::new(thing(name))).result.unwrap();
    }
    service
}

/// CreateJob of `id` on the things `targets` (by name).
fn create_json(service: &mut JobsService, id: &str, targets: &[&str], extra: Value) -> Value {
    let targets: Vec<String> = targets.iter().map(|t| arn(t)).collect();
    let mut input =
        json!({"jobId": id, "targets": targets, "document": format!(r#"{{"action":"{id}"}}"#)});
    if let (Some(input), Value::Object(extra)) = (input.as_object_mut(), extra) {
        input.extend(extra);
    }
    ok(service, "CreateJob", input)
}

#[test]
fn create_job_takes_the_document_as_a_json_string_and_thing_arns() {
    let mut service = service();
    let (result, events) = api(
        &mut service,
        "CreateJob",
        json!({"jobId": "j1", "document": "{\"action\":\"reboot\"}", "description": "reboot all",
               "targets": [arn("pump-07"), arn("pump-08")]}),
    );
    assert_eq!(
        result.unwrap(),
        json!({"jobArn": "arn:aws:iot:us-east-1:123456789012:job/j1", "jobId": "j1",
               "description": "reboot all"})
    );
    assert_eq!(notifies(&events, "pump-07").len(), 1);
    assert_eq!(next_events(&events, "pump-08").len(), 1);
    let reply: ExecutionReply = call(&mut service, "pump-08", "j1/get", "{}").accepted();
    assert_eq!(
        reply.execution.unwrap().job_document.unwrap().to_value(),
        json!({"action": "reboot"})
    );
}

#[test]
fn create_job_refusals_are_aws_exceptions_with_their_http_status() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    let cases = [
        (
            json!({"jobId": "j1", "targets": [arn("pump-07")], "document": "{}"}),
            ApiErrorKind::ResourceAlreadyExists,
            409,
        ),
        (
            json!({"jobId": "j2", "targets": [arn("pump-07")], "documentSource": "https://s3/x"}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": [arn("pump-07")]}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": [arn("pump-07")], "document": "not json"}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": [], "document": "{}"}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": ["arn:aws:iot:us-east-1:1:thinggroup/g"], "document": "{}"}),
            ApiErrorKind::ResourceNotFound,
            404,
        ),
        (
            json!({"jobId": "j2", "targets": ["pump-07"], "document": "{}"}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": [arn("pump-99")], "document": "{}"}),
            ApiErrorKind::ResourceNotFound,
            404,
        ),
        (
            json!({"jobId": "j2", "targets": ["arn:aws:iot:us-east-1:123456789012:thinggroup/none"], "document": "{}"}),
            ApiErrorKind::ResourceNotFound,
            404,
        ),
        (
            json!({"jobId": "bad id", "targets": [arn("pump-07")], "document": "{}"}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": [arn("pump-07")], "document": "{}", "tags": []}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
        (
            json!({"jobId": "j2", "targets": [arn("pump-07")], "document": "{}", "timeoutConfig": {"inProgressTimeoutInMinutes": 0}}),
            ApiErrorKind::InvalidRequest,
            400,
        ),
    ];
    for (input, kind, status) in cases {
        assert_eq!(
            err(&mut service, "CreateJob", input.clone()),
            kind,
            "{input}"
        );
        assert_eq!(kind.http_status(), status);
    }
    let targets: Vec<String> = (0..101).map(|i| arn(&format!("t{i}"))).collect();
    let kind = err(
        &mut service,
        "CreateJob",
        json!({"jobId": "big", "targets": targets, "document": "{}"}),
    );
    assert_eq!(
        (kind, kind.http_status(), kind.code()),
        (ApiErrorKind::LimitExceeded, 410, "LimitExceededException")
    );
    assert_eq!(service.executions().len(), 1, "nothing created");
}

#[test]
fn describe_job_counts_executions_and_a_snapshot_job_completes_when_all_ended() {
    let mut service = service();
    create_json(
        &mut service,
        "j1",
        &["pump-07", "pump-08"],
        json!({"timeoutConfig": {"inProgressTimeoutInMinutes": 30}}),
    );
    let job = ok(&mut service, "DescribeJob", json!({"jobId": "j1"}))["job"].clone();
    assert_eq!(job["status"], "IN_PROGRESS");
    assert_eq!(job["targetSelection"], "SNAPSHOT");
    assert_eq!(job["targets"], json!([arn("pump-07"), arn("pump-08")]));
    assert_eq!(job["createdAt"], T0);
    assert_eq!(
        job["timeoutConfig"],
        json!({"inProgressTimeoutInMinutes": 30})
    );
    assert_eq!(job["jobProcessDetails"]["numberOfQueuedThings"], 2);
    for thing in ["pump-07", "pump-08"] {
        update(&mut service, thing, "j1", r#"{"status":"SUCCEEDED"}"#).accepted::<UpdateReply>();
    }
    let job = ok(&mut service, "DescribeJob", json!({"jobId": "j1"}))["job"].clone();
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(job["completedAt"], T0);
    assert_eq!(job["jobProcessDetails"]["numberOfSucceededThings"], 2);
    assert_eq!(
        err(&mut service, "CancelJob", json!({"jobId": "j1"})),
        ApiErrorKind::InvalidRequest
    );
    assert_eq!(
        ok(&mut service, "GetJobDocument", json!({"jobId": "j1"})),
        json!({"document": "{\"action\":\"j1\"}"})
    );
    assert_eq!(
        err(&mut service, "DescribeJob", json!({"jobId": "nope"})),
        ApiErrorKind::ResourceNotFound
    );
}

#[test]
fn list_jobs_filters_and_pages_in_creation_order() {
    let mut service = service();
    for id in ["a", "b", "c"] {
        create_json(&mut service, id, &["pump-07"], json!({}));
    }
    ok(&mut service, "CancelJob", json!({"jobId": "b"}));
    let page = ok(&mut service, "ListJobs", json!({"maxResults": 2}));
    let ids: Vec<&str> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["jobId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    let rest = ok(
        &mut service,
        "ListJobs",
        json!({"nextToken": page["nextToken"]}),
    );
    assert_eq!(rest["jobs"][0]["jobId"], "c");
    assert!(rest.get("nextToken").is_none());
    create_json(
        &mut service,
        "d",
        &["pump-07"],
        json!({"targetSelection": "CONTINUOUS"}),
    );
    let continuous = ok(
        &mut service,
        "ListJobs",
        json!({"targetSelection": "CONTINUOUS"}),
    );
    assert_eq!(continuous["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(continuous["jobs"][0]["jobId"], "d");
    let canceled = ok(&mut service, "ListJobs", json!({"status": "CANCELED"}));
    assert_eq!(canceled["jobs"].as_array().unwrap().len(), 1);
    assert_eq!(canceled["jobs"][0]["jobId"], "b");
}

#[test]
fn cancel_job_cancels_queued_executions_and_in_progress_ones_only_with_force() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07", "pump-08"], json!({}));
    start_next(&mut service, "pump-07");
    let (result, events) = api(
        &mut service,
        "CancelJob",
        json!({"jobId": "j1", "reasonCode": "BAD_BUILD", "comment": "oops"}),
    );
    assert_eq!(result.unwrap()["jobId"], "j1");
    assert_eq!(notifies(&events, "pump-08").len(), 1);
    assert!(notifies(&events, "pump-07").is_empty(), "IN_PROGRESS kept");
    assert_eq!(
        service
            .execution(&thing("pump-07"), &job("j1"))
            .unwrap()
            .status,
        JobStatus::InProgress
    );
    assert_eq!(
        service
            .execution(&thing("pump-08"), &job("j1"))
            .unwrap()
            .status,
        JobStatus::Canceled
    );
    ok(
        &mut service,
        "CancelJob",
        json!({"jobId": "j1", "force": true}),
    );
    let execution = service.execution(&thing("pump-07"), &job("j1")).unwrap();
    assert_eq!(
        (execution.status, execution.force_canceled),
        (JobStatus::Canceled, true)
    );
    let job = ok(&mut service, "DescribeJob", json!({"jobId": "j1"}))["job"].clone();
    assert_eq!(
        (job["status"].clone(), job["forceCanceled"].clone()),
        (json!("CANCELED"), json!(true))
    );
    assert_eq!(
        err(
            &mut service,
            "CancelJob",
            json!({"jobId": "j1", "reasonCode": "lower"})
        ),
        ApiErrorKind::InvalidRequest
    );
}

#[test]
fn cancel_job_execution_with_force_makes_the_devices_next_update_fail() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    start_next(&mut service, "pump-07");
    let input = json!({"jobId": "j1", "thingName": "pump-07"});
    assert_eq!(
        err(&mut service, "CancelJobExecution", input.clone()),
        ApiErrorKind::InvalidStateTransition
    );
    assert_eq!(
        err(
            &mut service,
            "CancelJobExecution",
            json!({"jobId": "j1", "thingName": "pump-07", "force": true, "expectedVersion": 7})
        ),
        ApiErrorKind::VersionConflict
    );
    assert_eq!(
        err(
            &mut service,
            "CancelJobExecution",
            json!({"jobId": "j1", "thingName": "pump-07", "force": true, "statusDetails": {"why": ""}})
        ),
        ApiErrorKind::InvalidRequest
    );
    let (result, events) = api(
        &mut service,
        "CancelJobExecution",
        json!({"jobId": "j1", "thingName": "pump-07", "force": true, "expectedVersion": 2,
               "statusDetails": {"why": "operator"}}),
    );
    assert_eq!(result.unwrap(), json!({}));
    assert_eq!(notifies(&events, "pump-07").len(), 1);
    assert_eq!(next_events(&events, "pump-07").len(), 1);
    let execution = ok(&mut service, "DescribeJobExecution", input.clone())["execution"].clone();
    assert_eq!(execution["status"], "CANCELED");
    assert_eq!(execution["forceCanceled"], true);
    assert_eq!(
        execution["versionNumber"], 2,
        "service changes keep the version"
    );
    assert_eq!(
        execution["statusDetails"],
        json!({"detailsMap": {"why": "operator"}})
    );
    assert_eq!(
        execution["thingArn"],
        "arn:aws:iot:us-east-1:123456789012:thing/pump-07"
    );
    let error = update(&mut service, "pump-07", "j1", r#"{"status":"SUCCEEDED"}"#).rejected();
    assert_eq!(error.code, RejectCode::InvalidStateTransition);
    assert_eq!(
        err(&mut service, "CancelJobExecution", input),
        ApiErrorKind::InvalidStateTransition,
        "already terminal"
    );
}

#[test]
fn delete_job_execution_needs_force_while_pending_and_then_the_device_gets_not_found() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    start_next(&mut service, "pump-07");
    let input = json!({"jobId": "j1", "thingName": "pump-07", "executionNumber": 1});
    assert_eq!(
        err(&mut service, "DeleteJobExecution", input.clone()),
        ApiErrorKind::InvalidStateTransition
    );
    assert_eq!(
        err(
            &mut service,
            "DeleteJobExecution",
            json!({"jobId": "j1", "thingName": "pump-07", "executionNumber": 2, "force": true})
        ),
        ApiErrorKind::ResourceNotFound
    );
    let (result, events) = api(
        &mut service,
        "DeleteJobExecution",
        json!({"jobId": "j1", "thingName": "pump-07", "executionNumber": 1, "force": true}),
    );
    assert_eq!(result.unwrap(), json!({}));
    assert_eq!(
        next_events(&events, "pump-07").len(),
        1,
        "the head went away"
    );
    let error = update(&mut service, "pump-07", "j1", r#"{"status":"SUCCEEDED"}"#).rejected();
    assert_eq!(error.code, RejectCode::ResourceNotFound);
    let listed = ok(
        &mut service,
        "ListJobExecutionsForJob",
        json!({"jobId": "j1"}),
    );
    assert_eq!(listed["executionSummaries"], json!([]));
}

#[test]
fn a_continuous_job_runs_again_on_a_thing_whose_execution_ended_as_execution_two() {
    let mut service = service();
    create_json(
        &mut service,
        "j1",
        &["pump-07"],
        json!({"targetSelection": "CONTINUOUS"}),
    );
    update(&mut service, "pump-07", "j1", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    let mut request = AssociateTargetsWithJob::new(job("j1"), vec![arn("pump-07"), arn("pump-08")]);
    request.comment = Some("retry".into());
    let called = service.call(request);
    assert_eq!(called.result.unwrap().job_id, job("j1"));
    assert_eq!(next_events(&called.events, "pump-07").len(), 1);
    let reply = start_next(&mut service, "pump-07");
    assert_eq!(
        reply.execution.unwrap().execution_number,
        Some(ExecutionNumber::new(2))
    );
    let reply: ExecutionReply = call(&mut service, "pump-08", "j1/get", "{}").accepted();
    assert_eq!(
        reply.execution.unwrap().execution_number,
        Some(ExecutionNumber::new(1)),
        "first time on pump-08"
    );
    // An explicit executionNumber reaches either execution of pump-07.
    let reply: ExecutionReply = call(
        &mut service,
        "pump-07",
        "j1/get",
        r#"{"executionNumber":2}"#,
    )
    .accepted();
    assert_eq!(reply.execution.unwrap().status, Some(JobStatus::InProgress));
    let error = call(
        &mut service,
        "pump-07",
        "j1/get",
        r#"{"executionNumber":1}"#,
    )
    .rejected();
    assert_eq!(
        error.code,
        RejectCode::TerminalStateReached,
        "execution 1 ended"
    );
    let mut describe = DescribeJobExecution::new(job("j1"), thing("pump-07"));
    describe.execution_number = Some(1);
    assert_eq!(
        service.call(describe).result.unwrap().execution.status,
        JobStatus::Failed
    );
    let listed = ok(
        &mut service,
        "ListJobExecutionsForThing",
        json!({"thingName": "pump-07"}),
    );
    let numbers: Vec<(Value, Value)> = listed["executionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["jobExecutionSummary"]["executionNumber"].clone(),
                s["jobExecutionSummary"]["status"].clone(),
            )
        })
        .collect();
    assert_eq!(
        numbers,
        [
            (json!(1), json!("FAILED")),
            (json!(2), json!("IN_PROGRESS"))
        ]
    );
    let job = ok(&mut service, "DescribeJob", json!({"jobId": "j1"}))["job"].clone();
    assert_eq!(
        job["status"], "IN_PROGRESS",
        "a continuous job never completes by itself"
    );
}

#[test]
fn associating_targets_with_a_snapshot_job_is_refused() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    assert_eq!(
        err(
            &mut service,
            "AssociateTargetsWithJob",
            json!({"jobId": "j1", "targets": [arn("pump-08")]})
        ),
        ApiErrorKind::InvalidRequest
    );
    assert_eq!(
        err(
            &mut service,
            "AssociateTargetsWithJob",
            json!({"jobId": "nope", "targets": [arn("pump-08")]})
        ),
        ApiErrorKind::ResourceNotFound
    );
}

#[test]
fn delete_job_needs_force_while_in_progress_and_frees_the_job_id() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    assert_eq!(
        err(&mut service, "DeleteJob", json!({"jobId": "j1"})),
        ApiErrorKind::InvalidStateTransition
    );
    let (result, events) = api(
        &mut service,
        "DeleteJob",
        json!({"jobId": "j1", "force": true}),
    );
    assert_eq!(result.unwrap(), json!({}));
    assert_eq!(notifies(&events, "pump-07").len(), 1);
    assert_eq!(
        err(&mut service, "DescribeJob", json!({"jobId": "j1"})),
        ApiErrorKind::ResourceNotFound
    );
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    assert_eq!(
        service
            .execution(&thing("pump-07"), &job("j1"))
            .unwrap()
            .execution_number,
        1
    );
}

#[test]
fn list_job_executions_for_job_filters_by_status_and_needs_a_known_job() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07", "pump-08"], json!({}));
    start_next(&mut service, "pump-08");
    let listed = ok(
        &mut service,
        "ListJobExecutionsForJob",
        json!({"jobId": "j1", "status": "IN_PROGRESS"}),
    );
    assert_eq!(
        listed,
        json!({"executionSummaries": [{"thingArn": "arn:aws:iot:us-east-1:123456789012:thing/pump-08",
            "jobExecutionSummary": {"status": "IN_PROGRESS", "queuedAt": T0, "startedAt": T0,
                "lastUpdatedAt": T0, "executionNumber": 1, "retryAttempt": 0}}]})
    );
    assert_eq!(
        err(
            &mut service,
            "ListJobExecutionsForJob",
            json!({"jobId": "nope"})
        ),
        ApiErrorKind::ResourceNotFound
    );
    assert_eq!(
        err(
            &mut service,
            "ListJobExecutionsForJob",
            json!({"jobId": "j1", "status": "DONE"})
        ),
        ApiErrorKind::InvalidRequest
    );
}

#[test]
fn reset_forgets_everything_or_one_thing_without_events() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07", "pump-08"], json!({}));
    service.throttle_next_requests(1);
    let (result, events) = api(&mut service, "Reset", json!({"thingName": "pump-07"}));
    assert_eq!((result.unwrap(), events.len()), (json!({}), 0));
    assert!(service.execution(&thing("pump-07"), &job("j1")).is_none());
    assert!(service.execution(&thing("pump-08"), &job("j1")).is_some());
    let (result, events) = api(&mut service, "Reset", json!({}));
    assert_eq!((result.unwrap(), events.len()), (json!({}), 0));
    assert!(service.executions().is_empty());
    assert_eq!(ok(&mut service, "ListJobs", json!({})), json!({"jobs": []}));
    let pending: Value = call(&mut service, "pump-08", "get", "{}").accepted();
    assert_eq!(
        pending["queuedJobs"],
        json!([]),
        "the injected throttle was forgotten too"
    );
}

#[test]
fn advance_clock_fires_timers_and_reports_the_new_time() {
    let mut service = service();
    create_json(&mut service, "j1", &["pump-07"], json!({}));
    call(
        &mut service,
        "pump-07",
        "start-next",
        r#"{"stepTimeoutInMinutes":1}"#,
    )
    .accepted::<ExecutionReply>();
    let (result, events) = api(&mut service, "AdvanceClock", json!({"seconds": 60}));
    assert_eq!(result.unwrap(), json!({"timestamp": T0 + 60}));
    assert_eq!(notifies(&events, "pump-07").len(), 1);
    assert_eq!(
        service
            .execution(&thing("pump-07"), &job("j1"))
            .unwrap()
            .status,
        JobStatus::TimedOut
    );
    assert_eq!(
        err(&mut service, "AdvanceClock", json!({"seconds": -1})),
        ApiErrorKind::InvalidRequest
    );
}

#[test]
fn typed_requests_and_json_requests_are_the_same_operations() {
    let mut service = service();
    let document = document("j1");
    let created = service.call(CreateJob::new(job("j1"), &document, vec![arn("pump-07")]));
    assert_eq!(
        created.result.unwrap().job_arn,
        "arn:aws:iot:us-east-1:123456789012:job/j1"
    );
    let mut cancel = CancelJobExecution::new(job("j1"), thing("pump-07"));
    cancel.expected_version = Some(1);
    assert!(service.call(cancel).result.is_ok());
    let error = service
        .call_json(
            Operation::CancelJobExecution,
            json!({"jobId": "j1", "thingName": "pump-07"}),
        )
        .result
        .unwrap_err();
    assert_eq!(
        error.to_json(),
        json!({"__type": "InvalidStateTransitionException", "message": error.message})
    );
}

#[test]
fn execution_numbers_are_not_given_out_again_after_delete_job_execution() {
    let mut service = service();
    create_json(
        &mut service,
        "j1",
        &["pump-07"],
        json!({"targetSelection": "CONTINUOUS"}),
    );
    update(&mut service, "pump-07", "j1", r#"{"status":"SUCCEEDED"}"#).accepted::<UpdateReply>();
    ok(
        &mut service,
        "DeleteJobExecution",
        json!({"jobId": "j1", "thingName": "pump-07", "executionNumber": 1}),
    );
    ok(
        &mut service,
        "AssociateTargetsWithJob",
        json!({"jobId": "j1", "targets": [arn("pump-07")]}),
    );
    let execution = service.execution(&thing("pump-07"), &job("j1")).unwrap();
    assert_eq!(execution.execution_number, 2);
}

#[test]
fn service_made_changes_keep_the_version() {
    let mut service = service();
    for id in ["removed", "cancelled", "timed"] {
        create_json(
            &mut service,
            id,
            &["pump-07"],
            json!({"timeoutConfig": {"inProgressTimeoutInMinutes": 1}}),
        );
        update(&mut service, "pump-07", id, r#"{"status":"IN_PROGRESS"}"#)
            .accepted::<UpdateReply>();
    }
    service
        .remove_thing(&job("removed"), &thing("pump-07"))
        .unwrap();
    ok(
        &mut service,
        "CancelJobExecution",
        json!({"jobId": "cancelled", "thingName": "pump-07", "force": true}),
    );
    let _ = service.advance_clock(std::time::Duration::from_secs(60));
    for (id, status) in [
        ("removed", JobStatus::Removed),
        ("cancelled", JobStatus::Canceled),
        ("timed", JobStatus::TimedOut),
    ] {
        let execution = service.execution(&thing("pump-07"), &job(id)).unwrap();
        assert_eq!(
            (execution.status, execution.version_number),
            (status, 2),
            "{id}"
        );
    }
}

//! Fleets through the AWS API of the control plane (in process, on the virtual clock): the
//! registry and thing groups, targets as ARNs, CONTINUOUS jobs as things join and leave,
//! rollout pacing, retries, aborts, and pre-signed URLs in the documents devices receive.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

mod common;

use std::time::Duration;

use common::*;
use jobs_core::model::{ExecutionReply, UpdateReply};
use jobs_core::{ExecutionNumber, JobStatus, RejectCode, Version};
use jobs_mock::service::api::Operation;
use jobs_mock::service::{ApiError, ApiErrorKind, JobsService, Outgoing};
use serde_json::{Value, json};

const ACCOUNT: &str = "arn:aws:iot:us-east-1:123456789012";

fn thing_arn(name: &str) -> String {
    format!("{ACCOUNT}:thing/{name}")
}

fn group_arn(name: &str) -> String {
    format!("{ACCOUNT}:thinggroup/{name}")
}

fn api(
    service: &mut JobsService,
    op: &str,
    input: Value,
) -> (Result<Value, ApiError>, Vec<Outgoing>) {
    let called = service.call_json(Operation::from_name(op).unwrap(), input);
    (called.result, called.events)
}

fn ok(service: &mut JobsService, op: &str, input: Value) -> Vec<Outgoing> {
    let (result, events) = api(service, op, input.clone());
    result.unwrap_or_else(|error| panic!("{op} {input}: {error}"));
    events
}

fn out(service: &mut JobsService, op: &str, input: Value) -> Value {
    api(service, op, input.clone())
        .0
        .unwrap_or_else(|error| panic!("{op} {input}: {error}"))
}

fn err(service: &mut JobsService, op: &str, input: Value) -> ApiErrorKind {
    api(service, op, input).0.unwrap_err().kind
}

/// Registers things and a group `pumps` holding `members`.
fn fleet(service: &mut JobsService, things: &[&str], members: &[&str]) {
    for name in things {
        ok(service, "CreateThing", json!({"thingName": name}));
    }
    ok(
        service,
        "CreateThingGroup",
        json!({"thingGroupName": "pumps"}),
    );
    for name in members {
        join(service, name);
    }
}

fn join(service: &mut JobsService, name: &str) -> Vec<Outgoing> {
    ok(
        service,
        "AddThingToThingGroup",
        json!({"thingGroupName": "pumps", "thingName": name}),
    )
}

fn leave(service: &mut JobsService, name: &str) -> Vec<Outgoing> {
    ok(
        service,
        "RemoveThingFromThingGroup",
        json!({"thingGroupName": "pumps", "thingArn": thing_arn(name)}),
    )
}

fn continuous(service: &mut JobsService, id: &str, extra: Value) -> Vec<Outgoing> {
    let mut input = json!({"jobId": id, "targets": [group_arn("pumps")],
                           "document": "{\"operation\":\"install\"}",
                           "targetSelection": "CONTINUOUS"});
    if let (Some(input), Value::Object(extra)) = (input.as_object_mut(), extra) {
        input.extend(extra);
    }
    ok(service, "CreateJob", input)
}

fn status(service: &JobsService, name: &str, id: &str) -> (JobStatus, i64, i64) {
    let e = service.execution(&thing(name), &job(id)).unwrap();
    (e.status, e.execution_number, e.version_number)
}

#[test]
fn things_and_groups_have_aws_shapes_and_errors() {
    let mut service = service();
    let created = out(
        &mut service,
        "CreateThing",
        json!({"thingName": "pump-07", "attributePayload": {"attributes": {"site": "north"}}}),
    );
    assert_eq!(
        created,
        json!({"thingName": "pump-07", "thingArn": thing_arn("pump-07"),
               "thingId": "00000000-0000-4000-8000-000000000001"})
    );
    // Again with the same configuration: the same thing; with another: a conflict.
    let again = out(
        &mut service,
        "CreateThing",
        json!({"thingName": "pump-07", "attributePayload": {"attributes": {"site": "north"}}}),
    );
    assert_eq!(again, created);
    assert_eq!(
        err(&mut service, "CreateThing", json!({"thingName": "pump-07"})),
        ApiErrorKind::ResourceAlreadyExists
    );
    let described = out(
        &mut service,
        "DescribeThing",
        json!({"thingName": "pump-07"}),
    );
    assert_eq!(described["defaultClientId"], "pump-07");
    assert_eq!(described["attributes"], json!({"site": "north"}));
    assert_eq!(described["version"], 1);
    for (op, input, kind) in [
        (
            "DescribeThing",
            json!({"thingName": "nope"}),
            ApiErrorKind::ResourceNotFound,
        ),
        (
            "CreateThing",
            json!({"thingName": "bad name"}),
            ApiErrorKind::InvalidRequest,
        ),
        (
            "CreateThing",
            json!({"thingName": "t", "thingTypeName": "pump"}),
            ApiErrorKind::InvalidRequest,
        ),
        (
            "CreateThing",
            json!({"thingName": "t", "attributePayload": {"attributes": {"a b": "x"}}}),
            ApiErrorKind::InvalidRequest,
        ),
        (
            "DescribeThingGroup",
            json!({"thingGroupName": "none"}),
            ApiErrorKind::ResourceNotFound,
        ),
        (
            "CreateThingGroup",
            json!({"thingGroupName": "child", "parentGroupName": "pumps"}),
            ApiErrorKind::InvalidRequest,
        ),
        (
            "AddThingToThingGroup",
            json!({"thingGroupName": "none", "thingName": "pump-07"}),
            ApiErrorKind::ResourceNotFound,
        ),
        (
            "AddThingToThingGroup",
            json!({"thingName": "pump-07"}),
            ApiErrorKind::InvalidRequest,
        ),
        (
            "ListThingGroupsForThing",
            json!({"thingName": "nope"}),
            ApiErrorKind::ResourceNotFound,
        ),
        (
            "ListThingsInThingGroup",
            json!({"thingGroupName": "none"}),
            ApiErrorKind::ResourceNotFound,
        ),
        (
            "DeleteThing",
            json!({"thingName": "pump-07", "expectedVersion": 2}),
            ApiErrorKind::VersionConflict,
        ),
    ] {
        assert_eq!(err(&mut service, op, input.clone()), kind, "{op} {input}");
    }
    let group = out(
        &mut service,
        "CreateThingGroup",
        json!({"thingGroupName": "pumps",
               "thingGroupProperties": {"thingGroupDescription": "all pumps"}}),
    );
    assert_eq!(group["thingGroupArn"], group_arn("pumps"));
    ok(&mut service, "CreateThing", json!({"thingName": "pump-08"}));
    join(&mut service, "pump-07");
    join(&mut service, "pump-07");
    ok(
        &mut service,
        "AddThingToThingGroup",
        json!({"thingGroupArn": group_arn("pumps"), "thingArn": thing_arn("pump-08")}),
    );
    let members = out(
        &mut service,
        "ListThingsInThingGroup",
        json!({"thingGroupName": "pumps", "maxResults": 1}),
    );
    assert_eq!(members, json!({"things": ["pump-07"], "nextToken": "1"}));
    let groups = out(
        &mut service,
        "ListThingGroupsForThing",
        json!({"thingName": "pump-08"}),
    );
    assert_eq!(
        groups,
        json!({"thingGroups": [{"groupName": "pumps", "groupArn": group_arn("pumps")}]})
    );
    let described = out(
        &mut service,
        "DescribeThingGroup",
        json!({"thingGroupName": "pumps"}),
    );
    assert_eq!(
        described["thingGroupProperties"]["thingGroupDescription"],
        "all pumps"
    );
    let listed = out(
        &mut service,
        "ListThings",
        json!({"attributeName": "site", "attributeValue": "no", "usePrefixAttributeValue": true}),
    );
    assert_eq!(listed["things"][0]["thingName"], "pump-07");
    assert_eq!(listed["things"].as_array().unwrap().len(), 1);
    // Deleting what does not exist succeeds; a deleted thing leaves its groups.
    ok(&mut service, "DeleteThing", json!({"thingName": "never"}));
    ok(
        &mut service,
        "DeleteThingGroup",
        json!({"thingGroupName": "never"}),
    );
    ok(
        &mut service,
        "DeleteThing",
        json!({"thingName": "pump-08", "expectedVersion": 1}),
    );
    let members = out(
        &mut service,
        "ListThingsInThingGroup",
        json!({"thingGroupName": "pumps"}),
    );
    assert_eq!(members, json!({"things": ["pump-07"]}));
    ok(
        &mut service,
        "DeleteThingGroup",
        json!({"thingGroupName": "pumps"}),
    );
    let groups = out(&mut service, "ListThingGroups", json!({}));
    assert_eq!(groups, json!({"thingGroups": []}));
}

#[test]
fn a_group_target_reaches_its_members_and_a_snapshot_job_ignores_later_changes() {
    let mut service = service();
    fleet(
        &mut service,
        &["pump-07", "pump-08", "pump-09"],
        &["pump-07", "pump-08"],
    );
    let events = ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "j1", "targets": [group_arn("pumps")], "document": "{}"}),
    );
    assert_eq!(notifies(&events, "pump-07").len(), 1);
    assert_eq!(notifies(&events, "pump-08").len(), 1);
    assert!(
        join(&mut service, "pump-09").is_empty(),
        "SNAPSHOT: no new execution"
    );
    assert!(
        leave(&mut service, "pump-08").is_empty(),
        "SNAPSHOT: nothing removed"
    );
    assert_eq!(status(&service, "pump-08", "j1").0, JobStatus::Queued);
    assert!(service.execution(&thing("pump-09"), &job("j1")).is_none());
    let job = out(&mut service, "DescribeJob", json!({"jobId": "j1"}));
    assert_eq!(job["job"]["targets"], json!([group_arn("pumps")]));
}

#[test]
fn a_thing_joining_a_continuous_jobs_group_gets_the_job_as_a_new_job() {
    let mut service = service();
    fleet(&mut service, &["pump-07", "pump-09"], &["pump-07"]);
    continuous(&mut service, "fw", json!({}));
    let events = join(&mut service, "pump-09");
    let notify = notifies(&events, "pump-09");
    assert_eq!(ids(&notify[0].jobs.queued), ["fw"]);
    let next = next_events(&events, "pump-09");
    let execution = next[0].execution.as_ref().unwrap();
    assert_eq!(execution.execution_number, Some(ExecutionNumber::new(1)));
    assert_eq!(
        execution.job_document.as_ref().unwrap().to_value(),
        json!({"operation": "install"})
    );
    assert!(
        notifies(&events, "pump-07").is_empty(),
        "members already targeted: nothing"
    );
}

#[test]
fn a_thing_leaving_while_queued_is_removed_with_its_version_and_devices_see_the_end() {
    let mut service = service();
    fleet(&mut service, &["pump-07"], &["pump-07"]);
    continuous(&mut service, "fw", json!({}));
    let events = leave(&mut service, "pump-07");
    assert_eq!(
        status(&service, "pump-07", "fw"),
        (JobStatus::Removed, 1, 1)
    );
    let notify = notifies(&events, "pump-07");
    assert!(notify[0].jobs.queued.is_empty() && notify[0].jobs.in_progress.is_empty());
    assert!(next_events(&events, "pump-07")[0].execution.is_none());
    // The REMOVED path through the device API: describe and update as AWS answers them.
    let describe = call(&mut service, "pump-07", "fw/get", "{}").rejected();
    assert_eq!(describe.code, RejectCode::TerminalStateReached);
    let update = update(&mut service, "pump-07", "fw", r#"{"status":"IN_PROGRESS"}"#).rejected();
    assert_eq!(update.code, RejectCode::InvalidStateTransition);
    let state = update.execution_state.unwrap();
    assert_eq!(state.status, Some(JobStatus::Removed));
    assert_eq!(state.version_number, Some(Version::new(1)));
    let execution = out(
        &mut service,
        "DescribeJobExecution",
        json!({"jobId": "fw", "thingName": "pump-07"}),
    );
    assert_eq!(execution["execution"]["status"], "REMOVED");
    let job = out(&mut service, "DescribeJob", json!({"jobId": "fw"}));
    assert_eq!(job["job"]["jobProcessDetails"]["numberOfRemovedThings"], 1);
}

#[test]
fn an_in_progress_execution_stays_when_its_thing_leaves_and_a_rejoin_runs_the_job_again() {
    let mut service = service();
    fleet(&mut service, &["pump-07"], &["pump-07"]);
    continuous(&mut service, "fw", json!({}));
    start_next(&mut service, "pump-07");
    assert!(leave(&mut service, "pump-07").is_empty());
    assert_eq!(
        status(&service, "pump-07", "fw"),
        (JobStatus::InProgress, 1, 2)
    );
    update(&mut service, "pump-07", "fw", r#"{"status":"SUCCEEDED"}"#).accepted::<UpdateReply>();
    let events = join(&mut service, "pump-07");
    assert_eq!(status(&service, "pump-07", "fw"), (JobStatus::Queued, 2, 1));
    let next = next_events(&events, "pump-07");
    assert_eq!(
        next[0].execution.as_ref().unwrap().execution_number,
        Some(ExecutionNumber::new(2))
    );
}

#[test]
fn deleting_the_group_removes_queued_executions_and_a_cancelled_job_takes_no_one_new() {
    let mut service = service();
    fleet(&mut service, &["pump-07", "pump-08"], &["pump-07"]);
    continuous(&mut service, "fw", json!({}));
    ok(
        &mut service,
        "DeleteThingGroup",
        json!({"thingGroupName": "pumps"}),
    );
    assert_eq!(status(&service, "pump-07", "fw").0, JobStatus::Removed);
    ok(
        &mut service,
        "CreateThingGroup",
        json!({"thingGroupName": "pumps"}),
    );
    ok(&mut service, "CancelJob", json!({"jobId": "fw"}));
    assert!(join(&mut service, "pump-08").is_empty());
    assert!(service.execution(&thing("pump-08"), &job("fw")).is_none());
}

#[test]
fn a_rollout_queues_at_most_maximum_per_minute_executions_per_minute_of_the_clock() {
    let mut service = service();
    let names: Vec<String> = (0..7).map(|i| format!("pump-{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    fleet(&mut service, &refs, &refs);
    continuous(
        &mut service,
        "fw",
        json!({"jobExecutionsRolloutConfig": {"maximumPerMinute": 3}}),
    );
    let queued = |service: &JobsService| {
        service
            .executions()
            .iter()
            .filter(|e| e.job_id == job("fw"))
            .count()
    };
    assert_eq!(queued(&service), 3);
    let job = out(&mut service, "DescribeJob", json!({"jobId": "fw"}));
    assert_eq!(job["job"]["jobProcessDetails"]["numberOfQueuedThings"], 7);
    assert_eq!(
        job["job"]["jobExecutionsRolloutConfig"],
        json!({"maximumPerMinute": 3})
    );
    assert_eq!(service.next_timer_deadline(), Some((T0 + 60) * 1000));
    service.advance_clock(Duration::from_millis(59_999));
    assert_eq!(queued(&service), 3, "not before the minute is up");
    let events = service.advance_clock(Duration::from_millis(1));
    assert_eq!(queued(&service), 6);
    assert_eq!(
        events
            .iter()
            .filter(|e| e.topic.ends_with("/notify"))
            .count(),
        3
    );
    // A thing leaving while it waits never gets an execution.
    leave(&mut service, "pump-06");
    service.advance_clock(Duration::from_secs(60));
    assert_eq!(queued(&service), 6);
    assert_eq!(service.next_timer_deadline(), None);
    // Two minutes at once release two minutes' worth.
    for name in [
        "pump-20", "pump-21", "pump-22", "pump-23", "pump-24", "pump-25", "pump-26",
    ] {
        ok(&mut service, "CreateThing", json!({"thingName": name}));
        join(&mut service, name);
    }
    assert_eq!(queued(&service), 9);
    service.advance_clock(Duration::from_secs(120));
    assert_eq!(queued(&service), 13);
}

#[test]
fn an_exponential_rollout_grows_its_rate_after_enough_things_were_notified() {
    let mut service = service();
    let names: Vec<String> = (0..20).map(|i| format!("t{i:02}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    fleet(&mut service, &refs, &refs);
    continuous(
        &mut service,
        "fw",
        json!({"jobExecutionsRolloutConfig": {"maximumPerMinute": 8, "exponentialRate": {
            "baseRatePerMinute": 2, "incrementFactor": 2.0,
            "rateIncreaseCriteria": {"numberOfNotifiedThings": 2}}}}),
    );
    let mut per_minute = vec![service.executions().len()];
    for _ in 0..4 {
        service.advance_clock(Duration::from_secs(60));
        per_minute.push(service.executions().len());
    }
    // 2, then 4 (2 notified), then 8 (4 more notified), then capped at 8.
    assert_eq!(per_minute, [2, 6, 14, 20, 20]);
}

#[test]
fn failed_and_timed_out_executions_are_retried_as_new_executions_up_to_the_count() {
    let mut service = service();
    fleet(&mut service, &["pump-07"], &["pump-07"]);
    ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "fw", "targets": [thing_arn("pump-07")], "document": "{}",
               "timeoutConfig": {"inProgressTimeoutInMinutes": 5},
               "jobExecutionsRetryConfig": {"criteriaList": [
                   {"failureType": "FAILED", "numberOfRetries": 1},
                   {"failureType": "TIMED_OUT", "numberOfRetries": 1}]}}),
    );
    start_next(&mut service, "pump-07");
    let answer = update(&mut service, "pump-07", "fw", r#"{"status":"FAILED"}"#);
    answer.accepted::<UpdateReply>();
    // The end, then the retry as a new job: notify, notify-next of execution 2.
    let nexts = answer.notify_next("pump-07");
    assert_eq!(nexts.len(), 2);
    assert!(nexts[0].execution.is_none());
    assert_eq!(
        nexts[1].execution.as_ref().unwrap().execution_number,
        Some(ExecutionNumber::new(2))
    );
    assert_eq!(status(&service, "pump-07", "fw"), (JobStatus::Queued, 2, 1));
    // The TIMED_OUT criterion has its own count.
    start_next(&mut service, "pump-07");
    let events = service.advance_clock(Duration::from_secs(300));
    assert_eq!(next_events(&events, "pump-07").len(), 2);
    assert_eq!(status(&service, "pump-07", "fw"), (JobStatus::Queued, 3, 1));
    // A second FAILED is past FAILED's count: no more retries.
    start_next(&mut service, "pump-07");
    update(&mut service, "pump-07", "fw", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    assert_eq!(status(&service, "pump-07", "fw"), (JobStatus::Failed, 3, 3));
    let listed = out(
        &mut service,
        "ListJobExecutionsForThing",
        json!({"thingName": "pump-07"}),
    );
    let attempts: Vec<(i64, i64, &str)> = listed["executionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let s = &s["jobExecutionSummary"];
            (
                s["executionNumber"].as_i64().unwrap(),
                s["retryAttempt"].as_i64().unwrap(),
                s["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        attempts,
        [(1, 0, "FAILED"), (2, 1, "TIMED_OUT"), (3, 2, "FAILED")]
    );
}

#[test]
fn rejected_executions_are_never_retried_and_all_counts_every_failure() {
    let mut service = service();
    fleet(&mut service, &["pump-07"], &[]);
    ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "fw", "targets": [thing_arn("pump-07")], "document": "{}",
               "jobExecutionsRetryConfig": {"criteriaList": [
                   {"failureType": "ALL", "numberOfRetries": 1}]}}),
    );
    update(&mut service, "pump-07", "fw", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    update(&mut service, "pump-07", "fw", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    assert_eq!(status(&service, "pump-07", "fw"), (JobStatus::Failed, 2, 2));
    ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "r", "targets": [thing_arn("pump-07")], "document": "{}",
               "jobExecutionsRetryConfig": {"criteriaList": [
                   {"failureType": "ALL", "numberOfRetries": 3}]}}),
    );
    update(&mut service, "pump-07", "r", r#"{"status":"REJECTED"}"#).accepted::<UpdateReply>();
    assert_eq!(
        status(&service, "pump-07", "r"),
        (JobStatus::Rejected, 1, 2)
    );
}

#[test]
fn an_abort_config_cancels_the_job_when_enough_things_failed() {
    let mut service = service();
    let names = ["a1", "a2", "a3", "a4"];
    fleet(&mut service, &names, &names);
    ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "fw", "targets": [group_arn("pumps")], "document": "{}",
               "abortConfig": {"criteriaList": [{"failureType": "FAILED", "action": "CANCEL",
                   "thresholdPercentage": 50, "minNumberOfExecutedThings": 4}]}}),
    );
    start_next(&mut service, "a3");
    update(&mut service, "a1", "fw", r#"{"status":"FAILED"}"#).accepted::<UpdateReply>();
    let job = out(&mut service, "DescribeJob", json!({"jobId": "fw"}));
    assert_eq!(job["job"]["status"], "IN_PROGRESS", "1 of 4 is under 50 %");
    let answer = update(&mut service, "a2", "fw", r#"{"status":"FAILED"}"#);
    answer.accepted::<UpdateReply>();
    assert_eq!(
        answer.notify("a4").len(),
        1,
        "a4's QUEUED execution is cancelled"
    );
    let job = out(&mut service, "DescribeJob", json!({"jobId": "fw"}));
    assert_eq!(job["job"]["status"], "CANCELED");
    assert_eq!(job["job"]["forceCanceled"], false);
    assert!(
        job["job"]["comment"]
            .as_str()
            .unwrap()
            .contains("abortConfig")
    );
    assert_eq!(status(&service, "a4", "fw").0, JobStatus::Canceled);
    assert_eq!(
        status(&service, "a3", "fw").0,
        JobStatus::InProgress,
        "left to finish"
    );
}

#[test]
fn job_configurations_out_of_range_are_refused() {
    let mut service = service();
    fleet(&mut service, &["pump-07"], &[]);
    let pump = thing_arn("pump-07");
    let placeholder = r#"{"url":"${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/fw-bucket/a.bin}"}"#;
    for extra in [
        json!({"jobExecutionsRolloutConfig": {"maximumPerMinute": 0}}),
        json!({"jobExecutionsRetryConfig": {"criteriaList": [{"failureType": "FAILED", "numberOfRetries": 11}]}}),
        json!({"abortConfig": {"criteriaList": [{"failureType": "ALL", "action": "CANCEL",
               "thresholdPercentage": 101, "minNumberOfExecutedThings": 1}]}}),
        json!({"presignedUrlConfig": {"roleArn": "arn:aws:iam::123456789012:role/s3", "expiresInSec": 30}}),
        json!({"document": placeholder}),
        json!({"document": placeholder, "presignedUrlConfig": {"expiresInSec": 60}}),
        json!({"document": r#"{"url":"${aws:iot:s3-presigned-url:https://example.com/b/k}"}"#,
               "presignedUrlConfig": {"roleArn": "arn:aws:iam::123456789012:role/s3"}}),
        json!({"schedulingConfig": {}}),
    ] {
        let mut input = json!({"jobId": "j", "targets": [pump], "document": "{}"});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        assert_eq!(
            err(&mut service, "CreateJob", input.clone()),
            ApiErrorKind::InvalidRequest,
            "{input}"
        );
    }
    assert!(service.executions().is_empty());
}

#[test]
fn placeholders_become_fresh_signed_urls_for_devices_and_stay_for_get_job_document() {
    let mut service = service();
    service.set_presigned_url_base(Some("http://127.0.0.1:8080/jobs-service/files".into()));
    fleet(&mut service, &["pump-07"], &[]);
    let document = r#"{"operation":"install","url":"${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/fw-bucket/v2/app.bin}"}"#;
    let events = ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "fw", "targets": [thing_arn("pump-07")], "document": document,
               "presignedUrlConfig": {"roleArn": "arn:aws:iam::123456789012:role/s3",
                                      "expiresInSec": 600}}),
    );
    let url_in = |execution: &jobs_core::model::JobExecution| {
        execution.job_document.as_ref().unwrap().to_value()["url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let next = next_events(&events, "pump-07");
    let first = url_in(next[0].execution.as_ref().unwrap());
    let expires = T0 + 600;
    assert!(
        first.starts_with(&format!(
            "http://127.0.0.1:8080/jobs-service/files/fw-bucket/v2/app.bin?Expires={expires}&Signature="
        )),
        "{first}"
    );
    let signer = service.url_signer().clone();
    let object = jobs_mock::service::presign::ObjectName::new("fw-bucket", "v2/app.bin").unwrap();
    assert!(first.ends_with(&signer.signature(&object, expires)));
    // Later, a describe gives a URL that lives 600 s from then.
    service.advance_clock(Duration::from_secs(100));
    let reply: ExecutionReply = call(&mut service, "pump-07", "fw/get", "{}").accepted();
    let later = url_in(reply.execution.as_ref().unwrap());
    assert!(later.contains(&format!("Expires={}", T0 + 700)), "{later}");
    let reply = start_next(&mut service, "pump-07");
    assert!(url_in(reply.execution.as_ref().unwrap()).contains("Signature="));
    let update = update(
        &mut service,
        "pump-07",
        "fw",
        r#"{"status":"IN_PROGRESS","includeJobDocument":true}"#,
    )
    .accepted::<UpdateReply>();
    assert!(
        update.job_document.unwrap().to_value()["url"]
            .as_str()
            .unwrap()
            .starts_with("http://127.0.0.1:8080/")
    );
    // The control plane keeps the placeholder.
    let got = out(&mut service, "GetJobDocument", json!({"jobId": "fw"}));
    assert_eq!(got["document"], document);
    let job = out(&mut service, "DescribeJob", json!({"jobId": "fw"}));
    assert_eq!(job["job"]["presignedUrlConfig"]["expiresInSec"], 600);
}

#[test]
fn without_a_base_url_devices_receive_the_placeholders_unchanged() {
    let mut service = service();
    fleet(&mut service, &["pump-07"], &[]);
    let document = r#"{"url":"${aws:iot:s3-presigned-url:fw-bucket/app.bin}"}"#;
    ok(
        &mut service,
        "CreateJob",
        json!({"jobId": "fw", "targets": [thing_arn("pump-07")], "document": document,
               "presignedUrlConfig": {"roleArn": "arn:aws:iam::123456789012:role/s3"}}),
    );
    let reply = start_next(&mut service, "pump-07");
    assert_eq!(
        reply.execution.unwrap().job_document.unwrap().as_json(),
        document
    );
}

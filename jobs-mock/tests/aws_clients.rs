//! The real clients users drive AWS IoT with — boto3 and the AWS CLI, and AWS's own device
//! client `IotJobsClientV2` (awsiotsdk), all from PyPI — against `jobs-service`, with devices
//! over a real mosquitto (started on a free port and stopped by its pid). The Python
//! environment comes from `./test.sh`, which creates it in `target/aws-venv`;
//! `JOBS_SERVICE_PYTHON` names another interpreter with `boto3`, `awscli` and `awsiotsdk`
//! installed. Without one these tests fail: they are never skipped.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

mod program;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use jobs_core::{
    Client, Event, ExecutionNumber, JobStatus, Jobs, RejectCode, StartNext, StepTimeout,
};
use jobs_mock::local_broker::LocalBroker;
use jobs_paho::PahoTransport;
use program::{Program, WAIT};
use serde_json::{Value, json};

/// The Python interpreter with boto3 and the AWS CLI.
fn python() -> PathBuf {
    let path = std::env::var_os("JOBS_SERVICE_PYTHON").map_or_else(
        || {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../target/aws-venv/bin/python"
            ))
        },
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no Python with boto3 at {}: run ./test.sh (it creates target/aws-venv) or set \
         JOBS_SERVICE_PYTHON",
        path.display()
    );
    path
}

/// The `aws` program beside the interpreter.
fn aws_cli() -> PathBuf {
    python().with_file_name("aws")
}

/// `jobs-service --http 127.0.0.1:0` on `broker`, and its endpoint URL.
fn start_service(broker: &LocalBroker, extra: &[&str]) -> (Program, String) {
    let uri = broker.uri();
    let mut args = vec!["--broker", uri.as_str(), "--http", "127.0.0.1:0"];
    args.extend(extra);
    let mut service = Program::start(env!("CARGO_BIN_EXE_jobs-service"), &args);
    let line = service.wait_for_line(|line| line.starts_with("http: listening on "));
    let endpoint = line.trim_start_matches("http: listening on ").to_owned();
    service.wait_for_line(|line| line == "ready");
    (service, endpoint)
}

/// One boto3 process (`aws/boto3_driver.py`), called line by line; killed and reaped on drop.
struct Boto3 {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Boto3 {
    fn start(endpoint: &str) -> Self {
        let mut child = Command::new(python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/aws/boto3_driver.py"
            ))
            .arg(endpoint)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    /// `client.<op>(**args)`: `Ok(response)` or `Err({"code", "message", "status"})`. The
    /// driver answers every line (boto3's own timeouts bound each call).
    fn call(&mut self, op: &str, args: Value) -> Result<Value, Value> {
        let request = json!({"op": op, "args": args});
        writeln!(self.stdin, "{request}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let mut reply: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("boto3 driver said {line:?} to {request}: {e}"));
        match reply.get_mut("ok") {
            Some(ok) => Ok(ok.take()),
            None => Err(reply["error"].take()),
        }
    }

    /// Registers `name` (CreateThing) and returns its ARN.
    fn thing(&mut self, name: &str) -> String {
        self.ok("create_thing", json!({"thingName": name}))["thingArn"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    fn ok(&mut self, op: &str, args: Value) -> Value {
        self.call(op, args.clone())
            .unwrap_or_else(|error| panic!("{op} {args}: {error}"))
    }

    fn error(&mut self, op: &str, args: Value) -> (String, u64) {
        let error = self.call(op, args.clone()).unwrap_err();
        (
            error["code"].as_str().unwrap().to_owned(),
            error["status"].as_u64().unwrap(),
        )
    }
}

impl Drop for Boto3 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Works through what is pending on `jobs` as the `device` example does for `rotate-logs`:
/// IN_PROGRESS, then SUCCEEDED with `result`.
fn work_pending(jobs: &Jobs) {
    for mut job in jobs.list().unwrap() {
        job.describe().unwrap();
        let keep = job.document().unwrap().to_value()["keep"].as_u64().unwrap();
        job.update(JobStatus::InProgress, None).unwrap();
        let details =
            jobs_core::StatusDetails::from_pairs([("result", format!("kept {keep} archives"))])
                .unwrap();
        job.update(JobStatus::Succeeded, Some(&details)).unwrap();
    }
}

/// A device on `broker` using the jobs-core API.
fn device(broker: &LocalBroker, thing: &str) -> Jobs {
    let transport = PahoTransport::builder(&broker.uri(), thing)
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let client = Client::new(transport).unwrap();
    Jobs::builder(&client, thing)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn summary_statuses(listed: &Value) -> Vec<(i64, String)> {
    listed["executionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let summary = &s["jobExecutionSummary"];
            (
                summary["executionNumber"].as_i64().unwrap(),
                summary["status"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn boto3_creates_a_job_a_device_runs_it_and_boto3_lists_the_outcome() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    let pumps = [boto3.thing("pump-07"), boto3.thing("pump-08")];
    assert_eq!(pumps[0], "arn:aws:iot:us-east-1:123456789012:thing/pump-07");
    let created = boto3.ok(
        "create_job",
        json!({"jobId": "rotate-logs", "description": "keep five", "targets": pumps,
               "document": "{\"operation\":\"rotate-logs\",\"keep\":5}"}),
    );
    assert_eq!(
        created["jobArn"],
        "arn:aws:iot:us-east-1:123456789012:job/rotate-logs"
    );
    assert_eq!(
        boto3.error(
            "create_job",
            json!({"jobId": "rotate-logs", "targets": [pumps[0]], "document": "{}"})
        ),
        ("ResourceAlreadyExistsException".to_owned(), 409)
    );
    assert_eq!(
        boto3.error(
            "create_job",
            json!({"jobId": "by-name", "targets": ["pump-07"], "document": "{}"})
        ),
        ("InvalidRequestException".to_owned(), 400),
        "targets are ARNs, as on AWS"
    );

    for thing in ["pump-07", "pump-08"] {
        work_pending(&device(&broker, thing));
    }

    let listed = boto3.ok(
        "list_job_executions_for_job",
        json!({"jobId": "rotate-logs"}),
    );
    assert_eq!(
        summary_statuses(&listed),
        [(1, "SUCCEEDED".to_owned()), (1, "SUCCEEDED".to_owned())]
    );
    let execution = boto3.ok(
        "describe_job_execution",
        json!({"jobId": "rotate-logs", "thingName": "pump-07"}),
    )["execution"]
        .clone();
    assert_eq!(
        execution["statusDetails"],
        json!({"detailsMap": {"result": "kept 5 archives"}})
    );
    assert_eq!(execution["versionNumber"], 3);
    let job = boto3.ok("describe_job", json!({"jobId": "rotate-logs"}))["job"].clone();
    assert_eq!(job["status"], "COMPLETED");
    assert_eq!(job["jobProcessDetails"]["numberOfSucceededThings"], 2);
    let jobs = boto3.ok("list_jobs", json!({"status": "COMPLETED"}));
    assert_eq!(jobs["jobs"][0]["jobId"], "rotate-logs");
}

#[test]
fn boto3_force_cancels_an_in_progress_execution_and_the_devices_next_update_is_rejected() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    let pump = boto3.thing("pump-07");
    boto3.ok(
        "create_job",
        json!({"jobId": "firmware", "targets": [pump], "document": "{\"v\":2}"}),
    );
    let jobs = device(&broker, "pump-07");
    let mut job = jobs.start_next().unwrap().unwrap();
    assert_eq!(job.status(), Some(&JobStatus::InProgress));

    let cancel = json!({"jobId": "firmware", "thingName": "pump-07"});
    assert_eq!(
        boto3.error("cancel_job_execution", cancel.clone()),
        ("InvalidStateTransitionException".to_owned(), 409),
        "IN_PROGRESS needs force"
    );
    assert_eq!(
        boto3.error(
            "cancel_job_execution",
            json!({"jobId": "firmware", "thingName": "pump-07", "force": true, "expectedVersion": 9})
        ),
        ("VersionConflictException".to_owned(), 409)
    );
    boto3.ok(
        "cancel_job_execution",
        json!({"jobId": "firmware", "thingName": "pump-07", "force": true, "expectedVersion": 2,
               "statusDetails": {"reason": "bad build"}}),
    );
    let error = job.update(JobStatus::Succeeded, None).unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::InvalidStateTransition
    );
    let execution = boto3.ok("describe_job_execution", cancel.clone())["execution"].clone();
    assert_eq!(
        (
            execution["status"].clone(),
            execution["forceCanceled"].clone()
        ),
        (json!("CANCELED"), json!(true))
    );

    // DeleteJobExecution: then the execution is gone for boto3 and for the device.
    boto3.ok(
        "delete_job_execution",
        json!({"jobId": "firmware", "thingName": "pump-07", "executionNumber": 1}),
    );
    assert_eq!(
        boto3.error("describe_job_execution", cancel),
        ("ResourceNotFoundException".to_owned(), 404)
    );
    let error = job.describe().unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::ResourceNotFound
    );
}

#[test]
fn boto3_reruns_a_continuous_job_on_a_thing_as_execution_number_two() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    let pump = boto3.thing("pump-07");
    boto3.ok(
        "create_job",
        json!({"jobId": "config", "targets": [pump], "document": "{}",
               "targetSelection": "CONTINUOUS"}),
    );
    let jobs = device(&broker, "pump-07");
    let mut first = jobs.start_next().unwrap().unwrap();
    assert_eq!(first.execution_number(), Some(ExecutionNumber::new(1)));
    first.update(JobStatus::Failed, None).unwrap();

    boto3.ok(
        "associate_targets_with_job",
        json!({"jobId": "config", "targets": [pump], "comment": "retry"}),
    );
    let second = jobs.start_next().unwrap().unwrap();
    assert_eq!(second.execution_number(), Some(ExecutionNumber::new(2)));
    let listed = boto3.ok(
        "list_job_executions_for_thing",
        json!({"thingName": "pump-07", "jobId": "config"}),
    );
    assert_eq!(
        summary_statuses(&listed),
        [(1, "FAILED".to_owned()), (2, "IN_PROGRESS".to_owned())]
    );
    let old = boto3.ok(
        "describe_job_execution",
        json!({"jobId": "config", "thingName": "pump-07", "executionNumber": 1}),
    );
    assert_eq!(old["execution"]["status"], "FAILED");
    assert_eq!(
        boto3.error(
            "associate_targets_with_job",
            json!({"jobId": "nope", "targets": [pump]})
        ),
        ("ResourceNotFoundException".to_owned(), 404)
    );
}

#[test]
fn a_one_minute_step_timer_fires_a_tenth_of_a_second_later_under_time_scale_600() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &["--time-scale", "600"]);
    let mut boto3 = Boto3::start(&endpoint);
    let pump = boto3.thing("pump-07");
    boto3.ok(
        "create_job",
        json!({"jobId": "slow", "targets": [pump], "document": "{}"}),
    );
    let jobs = device(&broker, "pump-07");
    let started = Instant::now();
    let job = jobs
        .start_next_with(StartNext::new().step_timeout(StepTimeout::minutes(1).unwrap()))
        .unwrap()
        .unwrap();
    assert_eq!(job.status(), Some(&JobStatus::InProgress));
    let deadline = started + WAIT;
    let timed_out = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match jobs.with_timeout(left).next_event().unwrap() {
            Some(Event::NextJobChanged(next)) if next.execution.is_none() => {
                break started.elapsed();
            }
            Some(_) => {}
            None => panic!("no notify-next within {WAIT:?}"),
        }
    };
    // 60 s / 600 = 100 ms of real time: not before, and well under a second.
    assert!(timed_out >= Duration::from_millis(100), "{timed_out:?}");
    assert!(timed_out < Duration::from_secs(1), "{timed_out:?}");
    let execution = boto3.ok(
        "describe_job_execution",
        json!({"jobId": "slow", "thingName": "pump-07"}),
    )["execution"]
        .clone();
    assert_eq!(execution["status"], "TIMED_OUT");
}

#[test]
fn advance_clock_and_reset_are_posted_beside_the_aws_operations() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    let pump = boto3.thing("pump-07");
    boto3.ok(
        "create_job",
        json!({"jobId": "timed", "targets": [pump], "document": "{}",
               "timeoutConfig": {"inProgressTimeoutInMinutes": 10}}),
    );
    let jobs = device(&broker, "pump-07");
    jobs.start_next().unwrap().unwrap();
    boto3.ok(
        "http_post",
        json!({"path": "/jobs-service/advance-clock", "body": {"seconds": 600}}),
    );
    let execution = boto3.ok(
        "describe_job_execution",
        json!({"jobId": "timed", "thingName": "pump-07"}),
    )["execution"]
        .clone();
    assert_eq!(execution["status"], "TIMED_OUT");
    boto3.ok(
        "http_post",
        json!({"path": "/jobs-service/reset", "body": {}}),
    );
    assert_eq!(boto3.ok("list_jobs", json!({})), json!({"jobs": []}));
}

#[test]
fn the_aws_cli_creates_a_job_and_lists_its_executions() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let aws = |args: &[&str]| {
        Command::new(aws_cli())
            .args([
                "iot",
                "--endpoint-url",
                &endpoint,
                "--region",
                "us-east-1",
                "--output",
                "json",
            ])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap()
    };
    let output = aws(&["create-thing", "--thing-name", "pump-07"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let create = [
        "create-job",
        "--job-id",
        "hotfix",
        "--targets",
        "arn:aws:iot:us-east-1:123456789012:thing/pump-07",
        "--document",
        r#"{"operation":"rotate-logs","keep":2}"#,
    ];
    let output = aws(&create);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let created: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(created["jobId"], "hotfix");

    work_pending(&device(&broker, "pump-07"));

    let output = aws(&["list-job-executions-for-job", "--job-id", "hotfix"]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(summary_statuses(&listed), [(1, "SUCCEEDED".to_owned())]);

    let output = aws(&create);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("ResourceAlreadyExistsException"),
        "{stderr}"
    );
}

#[test]
fn aws_iot_jobs_client_v2_works_through_two_jobs_each_as_execution_number_one() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    let pump = boto3.thing("pump-07");
    for id in ["first", "second"] {
        boto3.ok(
            "create_job",
            json!({"jobId": id, "targets": [pump], "document": format!(r#"{{"job":"{id}"}}"#)}),
        );
    }
    let uri = broker.uri();
    let address = uri.trim_start_matches("tcp://");
    let (host, port) = address.rsplit_once(':').unwrap();
    let mut client = Program::start(
        python().to_str().unwrap(),
        &[
            concat!(env!("CARGO_MANIFEST_DIR"), "/tests/aws/jobs_client_v2.py"),
            host,
            port,
            "pump-07",
        ],
    );
    let line = client.wait_for_line(|line| line.starts_with('{'));
    assert!(client.wait_exit().success(), "{}", client.output.join("\n"));
    let outcome: Value = serde_json::from_str(&line).unwrap();
    let done = outcome["done"].as_array().unwrap();
    let seen: Vec<(&str, i64, i64, i64, &str)> = done
        .iter()
        .map(|d| {
            (
                d["jobId"].as_str().unwrap(),
                d["executionNumber"].as_i64().unwrap(),
                d["startedVersion"].as_i64().unwrap(),
                d["updatedVersion"].as_i64().unwrap(),
                d["describeAfterwards"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("first", 1, 2, 3, "TerminalStateReached"),
            ("second", 1, 2, 3, "TerminalStateReached"),
        ]
    );
    assert_eq!(done[0]["document"], json!({"job": "first"}));
    assert_eq!(
        (outcome["inProgress"].clone(), outcome["queued"].clone()),
        (json!(0), json!(0))
    );
    let listed = boto3.ok(
        "list_job_executions_for_thing",
        json!({"thingName": "pump-07", "status": "SUCCEEDED"}),
    );
    assert_eq!(listed["executionSummaries"].as_array().unwrap().len(), 2);
}

/// The ARN of thing group `name`.
fn group_arn(name: &str) -> String {
    format!("arn:aws:iot:us-east-1:123456789012:thinggroup/{name}")
}

/// `(executionNumber, status, versionNumber)` of the latest execution of `job` on `thing`.
fn latest(boto3: &mut Boto3, job: &str, thing: &str) -> (i64, String, i64) {
    let e = boto3.ok(
        "describe_job_execution",
        json!({"jobId": job, "thingName": thing}),
    )["execution"]
        .clone();
    (
        e["executionNumber"].as_i64().unwrap(),
        e["status"].as_str().unwrap().to_owned(),
        e["versionNumber"].as_i64().unwrap(),
    )
}

#[test]
fn boto3_drives_a_continuous_group_job_through_join_leave_removed_and_rejoin() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    let group = boto3.ok("create_thing_group", json!({"thingGroupName": "pumps"}));
    assert_eq!(group["thingGroupArn"], group_arn("pumps"));
    for thing in ["pump-07", "pump-08", "pump-09"] {
        boto3.thing(thing);
    }
    for thing in ["pump-07", "pump-08"] {
        boto3.ok(
            "add_thing_to_thing_group",
            json!({"thingGroupName": "pumps", "thingName": thing}),
        );
    }
    boto3.ok(
        "create_job",
        json!({"jobId": "fw", "targets": [group_arn("pumps")], "targetSelection": "CONTINUOUS",
               "document": "{\"operation\":\"install\"}"}),
    );
    let pump07 = device(&broker, "pump-07");
    let running = pump07.start_next().unwrap().unwrap();
    assert_eq!(running.status(), Some(&JobStatus::InProgress));

    // A thing joining later gets the job.
    boto3.ok(
        "add_thing_to_thing_group",
        json!({"thingGroupName": "pumps", "thingName": "pump-09"}),
    );
    assert_eq!(latest(&mut boto3, "fw", "pump-09"), (1, "QUEUED".into(), 1));
    let listed = boto3.ok(
        "list_things_in_thing_group",
        json!({"thingGroupName": "pumps"}),
    );
    assert_eq!(listed["things"], json!(["pump-07", "pump-08", "pump-09"]));

    // Leaving: QUEUED becomes REMOVED (version kept), IN_PROGRESS stays.
    for thing in ["pump-07", "pump-08"] {
        boto3.ok(
            "remove_thing_from_thing_group",
            json!({"thingGroupName": "pumps", "thingName": thing}),
        );
    }
    assert_eq!(
        latest(&mut boto3, "fw", "pump-08"),
        (1, "REMOVED".into(), 1)
    );
    assert_eq!(
        latest(&mut boto3, "fw", "pump-07"),
        (1, "IN_PROGRESS".into(), 2)
    );
    let pump08 = device(&broker, "pump-08");
    let mut describe = pump08.job(jobs_core::JobId::new("fw").unwrap()).unwrap();
    let error = describe.describe().unwrap_err();
    assert_eq!(
        error.rejection().unwrap().code,
        RejectCode::TerminalStateReached
    );
    let mut removed = pump08.job(jobs_core::JobId::new("fw").unwrap()).unwrap();
    let error = removed.update(JobStatus::InProgress, None).unwrap_err();
    let rejection = error.rejection().unwrap();
    assert_eq!(rejection.code, RejectCode::InvalidStateTransition);
    assert_eq!(
        rejection.execution_state.as_ref().unwrap().status,
        Some(JobStatus::Removed)
    );

    // Rejoining runs the job again, as execution 2.
    boto3.ok(
        "add_thing_to_thing_group",
        json!({"thingGroupName": "pumps", "thingName": "pump-08"}),
    );
    let again = pump08.start_next().unwrap().unwrap();
    assert_eq!(again.execution_number(), Some(ExecutionNumber::new(2)));
    let groups = boto3.ok(
        "list_thing_groups_for_thing",
        json!({"thingName": "pump-08"}),
    );
    assert_eq!(groups["thingGroups"][0]["groupName"], "pumps");
    let job = boto3.ok("describe_job", json!({"jobId": "fw"}))["job"].clone();
    assert_eq!(job["targets"], json!([group_arn("pumps")]));
}

#[test]
fn boto3_sees_a_paced_rollout_and_a_failed_execution_retried() {
    let broker = LocalBroker::start().unwrap();
    let (_service, endpoint) = start_service(&broker, &[]);
    let mut boto3 = Boto3::start(&endpoint);
    boto3.ok("create_thing_group", json!({"thingGroupName": "pumps"}));
    for i in 0..5 {
        let thing = format!("pump-{i}");
        boto3.thing(&thing);
        boto3.ok(
            "add_thing_to_thing_group",
            json!({"thingGroupName": "pumps", "thingName": thing}),
        );
    }
    boto3.ok(
        "create_job",
        json!({"jobId": "fw", "targets": [group_arn("pumps")], "document": "{}",
               "jobExecutionsRolloutConfig": {"maximumPerMinute": 2},
               "jobExecutionsRetryConfig": {"criteriaList": [
                   {"failureType": "FAILED", "numberOfRetries": 2}]}}),
    );
    let count = |boto3: &mut Boto3| {
        boto3.ok("list_job_executions_for_job", json!({"jobId": "fw"}))["executionSummaries"]
            .as_array()
            .unwrap()
            .len()
    };
    assert_eq!(count(&mut boto3), 2);
    boto3.ok(
        "http_post",
        json!({"path": "/jobs-service/advance-clock", "body": {"seconds": 60}}),
    );
    assert_eq!(count(&mut boto3), 4);
    let job = boto3.ok("describe_job", json!({"jobId": "fw"}))["job"].clone();
    assert_eq!(
        job["jobExecutionsRolloutConfig"],
        json!({"maximumPerMinute": 2})
    );

    let pump0 = device(&broker, "pump-0");
    let mut first = pump0.start_next().unwrap().unwrap();
    first.update(JobStatus::Failed, None).unwrap();
    let retry = pump0.start_next().unwrap().unwrap();
    assert_eq!(retry.execution_number(), Some(ExecutionNumber::new(2)));
    let listed = boto3.ok(
        "list_job_executions_for_thing",
        json!({"thingName": "pump-0"}),
    );
    let retries: Vec<(i64, i64)> = listed["executionSummaries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let s = &s["jobExecutionSummary"];
            (
                s["executionNumber"].as_i64().unwrap(),
                s["retryAttempt"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(retries, [(1, 0), (2, 1)]);
}

/// A GET of `url` (`http://HOST:PORT/PATH`) with an optional `Range`, over a plain
/// `TcpStream`: status, headers (lowercase names) and body.
fn http_get(url: &str, range: Option<&str>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    use std::io::Read as _;
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let range = range.map_or_else(String::new, |r| format!("Range: {r}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\n{range}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let split = response.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(response[..split].to_vec()).unwrap();
    let body = response[split + 4..].to_vec();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body)
}

#[test]
fn the_aws_cli_creates_a_group_job_with_a_presigned_url_the_device_downloads_with_ranges() {
    /// Removes the store's directory however the test ends.
    struct Cleanup(PathBuf);
    impl Drop for Cleanup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
    let dir = std::env::temp_dir().join(format!("jobs-mock-aws-files-{}", std::process::id()));
    let _cleanup = Cleanup(dir.clone());
    let firmware: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::create_dir_all(dir.join("fw-bucket")).unwrap();
    std::fs::write(dir.join("fw-bucket/firmware-3.0.0.bin"), &firmware).unwrap();
    let broker = LocalBroker::start().unwrap();
    let files = dir.to_str().unwrap().to_owned();
    let (_service, endpoint) = start_service(&broker, &["--files", &files]);
    let aws = |args: &[&str]| {
        let output = Command::new(aws_cli())
            .args(["iot", "--endpoint-url", &endpoint, "--region", "us-east-1"])
            .args(["--output", "json"])
            .args(args)
            .env("AWS_ACCESS_KEY_ID", "x")
            .env("AWS_SECRET_ACCESS_KEY", "x")
            .env("AWS_MAX_ATTEMPTS", "1")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "aws {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice::<Value>(&output.stdout).unwrap_or(Value::Null)
    };
    // The registry through boto3 (one process for many calls); the job through the AWS CLI,
    // as the README shows it.
    let mut boto3 = Boto3::start(&endpoint);
    boto3.ok("create_thing_group", json!({"thingGroupName": "pumps"}));
    boto3.thing("pump-07");
    boto3.ok(
        "add_thing_to_thing_group",
        json!({"thingGroupName": "pumps", "thingName": "pump-07"}),
    );
    let placeholder = "${aws:iot:s3-presigned-url-v2:https://s3.us-east-1.amazonaws.com/fw-bucket/firmware-3.0.0.bin}";
    let document = format!(r#"{{"operation":"install-firmware","url":"{placeholder}"}}"#);
    let arn = group_arn("pumps");
    aws(&[
        "create-job",
        "--job-id",
        "fw-3",
        "--targets",
        &arn,
        "--target-selection",
        "CONTINUOUS",
        "--presigned-url-config",
        "roleArn=arn:aws:iam::123456789012:role/jobs-s3,expiresInSec=60",
        "--document",
        &document,
    ]);
    let got = aws(&["get-job-document", "--job-id", "fw-3"]);
    assert_eq!(
        got["document"], document,
        "the control plane keeps the placeholder"
    );

    let jobs = device(&broker, "pump-07");
    let job = jobs.start_next().unwrap().unwrap();
    let url = job.document().unwrap().to_value()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let address = endpoint.trim_start_matches("http://");
    assert!(
        url.starts_with(&format!(
            "http://{address}/jobs-service/files/fw-bucket/firmware-3.0.0.bin?Expires="
        )),
        "{url}"
    );
    let (status, headers, body) = http_get(&url, None);
    assert_eq!((status, body.len()), (200, firmware.len()));
    // The size up front, as S3 sends it (before the fix the body came chunked).
    assert!(headers.contains(&("content-length".into(), "200000".into())));
    assert_eq!(body, firmware);
    let (status, headers, body) = http_get(&url, Some("bytes=150000-"));
    assert_eq!(status, 206);
    assert!(headers.contains(&("content-range".into(), "bytes 150000-199999/200000".into())));
    assert_eq!(body, firmware[150_000..]);

    // Past expiresInSec on the service's clock: S3's 403; a describe gives a fresh URL.
    let post = |path: &str, body: &str| {
        let mut stream = std::net::TcpStream::connect(address).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "POST {path} HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    };
    post("/jobs-service/advance-clock", r#"{"seconds": 60}"#);
    let (status, _, body) = http_get(&url, Some("bytes=150000-"));
    assert_eq!(status, 403);
    let text = String::from_utf8(body).unwrap();
    assert!(
        text.contains("<Error><Code>AccessDenied</Code><Message>Request has expired</Message>"),
        "{text}"
    );
    let mut job = job;
    job.describe().unwrap();
    let fresh = job.document().unwrap().to_value()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(fresh, url);
    let (status, _, body) = http_get(&fresh, Some("bytes=150000-"));
    assert_eq!((status, body.as_slice()), (206, &firmware[150_000..]));

    // An upload (as `curl -T` does) lands in the store, in DIR/BUCKET/KEY.
    let mut stream = std::net::TcpStream::connect(address).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    write!(
        stream,
        "PUT /jobs-service/files/fw-bucket/notes.txt HTTP/1.1\r\nHost: {address}\r\n\
         Content-Length: 5\r\nConnection: close\r\n\r\nhello"
    )
    .unwrap();
    let mut response = String::new();
    std::io::Read::read_to_string(&mut stream, &mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert_eq!(
        std::fs::read(dir.join("fw-bucket/notes.txt")).unwrap(),
        b"hello"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

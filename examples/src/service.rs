//! The pieces of the `jobs-service` program that need no broker: the jobs file format, the
//! control commands and their replies, and the log of execution changes. All of them work on
//! a [`Simulator`] over any transport, so they are tested offline over the `MockBroker`.
//!
//! # Jobs file
//! ```json
//! {
//!   "jobs": [
//!     {
//!       "jobId": "rotate-logs",
//!       "document": {"action": "rotate-logs", "keep": 5},
//!       "things": ["pump-07", "pump-08"],
//!       "inProgressTimeoutMinutes": 30
//!     }
//!   ]
//! }
//! ```
//! `jobId` (1–64 of `[a-zA-Z0-9_-]`), `document` (any JSON value) and `things` (at least one)
//! are required; `inProgressTimeoutMinutes` (1–10080) is optional. Unknown fields are errors.
//! Jobs are created in file order, so each thing's queue follows the file.
//!
//! # Control topic
//! Publish a JSON request on [`CONTROL_TOPIC`]; the reply comes on [`RESULT_TOPIC`] (QoS 1).
//! The operations, their inputs and outputs are those of the HTTP API (see
//! [`crate::http`] and `jobs_mock::service::api`), by AWS name:
//!
//! ```json
//! {"operation": "CancelJobExecution", "requestId": 7,
//!  "input": {"jobId": "rotate-logs", "thingName": "pump-07", "force": true}}
//! ```
//! `input` holds the operation's members under their AWS names, wherever HTTP would carry them
//! (path, query string or body); it may be left out when empty. The reply echoes `requestId`
//! (any JSON value; `null` if absent) and `operation`, and carries either `output` (the HTTP
//! response body) or `error` (the HTTP error body, `{"__type": "ResourceNotFoundException",
//! "message": …}`):
//!
//! ```json
//! {"requestId": 7, "operation": "CancelJobExecution", "output": {}}
//! ```

use std::collections::BTreeMap;
use std::error::Error;

use jobs_core::{Document, JobId, JobStatus, ThingName};
use jobs_mock::service::api::Operation;
use jobs_mock::service::{ExecutionInfo, JobSpec, Simulator};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::http::RouteError;

/// The topic `jobs-service` takes commands on.
pub const CONTROL_TOPIC: &str = "jobs-service/control";

/// The topic `jobs-service` publishes the reply to each command on.
pub const RESULT_TOPIC: &str = "jobs-service/control/result";

/// One job: an entry of the jobs file, or the body of a `create` command.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct JobEntry {
    /// The job ID.
    pub job_id: String,
    /// The job document.
    pub document: Value,
    /// The target things.
    pub things: Vec<String>,
    /// The in-progress timeout in minutes, if any.
    #[serde(default)]
    pub in_progress_timeout_minutes: Option<i64>,
}

impl JobEntry {
    /// The simulator's job specification.
    ///
    /// # Errors
    /// An invalid job ID or thing name, or a document that cannot be serialised.
    pub fn to_spec(&self) -> Result<JobSpec, Box<dyn Error>> {
        let things = self
            .things
            .iter()
            .map(|t| ThingName::new(t.as_str()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut spec = JobSpec::new(
            JobId::new(self.job_id.as_str())?,
            Document::from_serialize(&self.document)?,
        )
        .things(things);
        if let Some(minutes) = self.in_progress_timeout_minutes {
            spec = spec.in_progress_timeout_minutes(minutes);
        }
        Ok(spec)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct JobsFile {
    jobs: Vec<JobEntry>,
}

/// Parses a jobs file (see the [module docs](self)).
///
/// # Errors
/// Invalid JSON, or JSON that is not a jobs file.
pub fn parse_jobs_file(text: &str) -> Result<Vec<JobEntry>, serde_json::Error> {
    Ok(serde_json::from_str::<JobsFile>(text)?.jobs)
}

/// What a control request did: the reply to publish on [`RESULT_TOPIC`], and a line for the
/// service's log.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlOutcome {
    /// The reply.
    pub reply: Value,
    /// A one-line description, such as `CreateJob: ok`.
    pub summary: String,
}

/// Runs one control request (the payload of a message on [`CONTROL_TOPIC`]) on `simulator`.
/// Never fails: a bad request gets a reply with an `error` (`InvalidRequestException`, or
/// `UnknownOperationException` for an operation name that is not one of
/// [`Operation::ALL`]).
pub fn handle_control(simulator: &Simulator, payload: &[u8]) -> ControlOutcome {
    let mut object = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return invalid(Value::Null, Value::Null, "the request is not a JSON object"),
        Err(error) => {
            return invalid(Value::Null, Value::Null, &format!("invalid JSON: {error}"));
        }
    };
    let request_id = object.remove("requestId").unwrap_or(Value::Null);
    let name = object.remove("operation").unwrap_or(Value::Null);
    let input = object.remove("input").unwrap_or(Value::Null);
    if let Some(extra) = object.keys().next() {
        return invalid(request_id, name, &format!("unknown member {extra:?}"));
    }
    let Some(operation) = name.as_str().and_then(Operation::from_name) else {
        let error = RouteError::UnknownOperation(format!("unknown operation {name}"));
        return ControlOutcome {
            summary: format!("{name}: {}", error.message()),
            reply: json!({"requestId": request_id, "operation": name, "error": error.to_json()}),
        };
    };
    match simulator.call_json(operation, input) {
        Ok(output) => ControlOutcome {
            summary: format!("{operation}: ok"),
            reply: json!({"requestId": request_id, "operation": name, "output": output}),
        },
        Err(error) => ControlOutcome {
            summary: format!("{operation}: {error}"),
            reply: json!({"requestId": request_id, "operation": name, "error": error.to_json()}),
        },
    }
}

fn invalid(request_id: Value, operation: Value, message: &str) -> ControlOutcome {
    let error = RouteError::Invalid(message.to_owned());
    ControlOutcome {
        summary: format!("{operation}: {message}"),
        reply: json!({"requestId": request_id, "operation": operation, "error": error.to_json()}),
    }
}

/// Remembers the status of every execution and describes what changed since the last look.
#[derive(Debug, Default)]
pub struct ChangeLog {
    seen: BTreeMap<(String, String), (JobStatus, i64)>,
}

impl ChangeLog {
    /// A log that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// One line per execution that is new or whose status or version changed since the last
    /// call, such as `pump-07 rotate-logs: QUEUED -> IN_PROGRESS (version 2; step=archiving)`.
    pub fn changes(&mut self, executions: &[ExecutionInfo]) -> Vec<String> {
        let mut lines = Vec::new();
        for e in executions {
            let key = (e.thing_name.to_string(), e.job_id.to_string());
            let now = (e.status.clone(), e.version_number);
            let before = self.seen.insert(key, now.clone());
            if before.as_ref() == Some(&now) {
                continue;
            }
            let details = e.status_details.as_ref().map_or_else(String::new, |d| {
                let pairs: Vec<String> = d.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("; {}", pairs.join(", "))
            });
            let from = before.map_or_else(|| "new".to_owned(), |(status, _)| status.to_string());
            lines.push(format!(
                "{} {}: {from} -> {} (version {}{details})",
                e.thing_name, e.job_id, e.status, e.version_number
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use jobs_mock::MockBroker;
    use jobs_mock::service::{Clock, JobsService};

    use super::*;

    fn simulator() -> Simulator {
        let broker = MockBroker::new();
        Simulator::start(
            Arc::new(broker.connect("jobs-service")),
            JobsService::new(Clock::virtual_at(1_750_000_000)),
        )
        .unwrap()
    }

    fn control(simulator: &Simulator, command: Value) -> Value {
        handle_control(simulator, command.to_string().as_bytes()).reply
    }

    #[test]
    fn the_shipped_jobs_file_parses_into_valid_job_specs() {
        let entries = parse_jobs_file(include_str!("../jobs.json")).unwrap();
        assert!(entries.len() >= 3);
        for entry in entries {
            let _spec = entry.to_spec().unwrap();
        }
    }

    #[test]
    fn a_jobs_file_with_an_unknown_field_is_refused() {
        let text = r#"{"jobs":[{"jobId":"a","document":{},"things":["t"],"colour":"red"}]}"#;
        assert!(parse_jobs_file(text).is_err());
    }

    #[test]
    fn operations_run_by_name_and_echo_the_request_id() {
        let simulator = simulator();
        let reply = control(
            &simulator,
            json!({"operation": "CreateJob", "requestId": 7,
                   "input": {"jobId": "a", "document": "{\"x\":1}", "targets": ["t1", "t2"]}}),
        );
        assert_eq!(
            reply,
            json!({"requestId": 7, "operation": "CreateJob", "output":
                   {"jobArn": "arn:aws:iot:us-east-1:123456789012:job/a", "jobId": "a"}})
        );
        let reply = control(
            &simulator,
            json!({"operation": "CancelJobExecution", "requestId": "c",
                   "input": {"jobId": "a", "thingName": "t2"}}),
        );
        assert_eq!(
            reply,
            json!({"requestId": "c", "operation": "CancelJobExecution", "output": {}})
        );
        let reply = control(
            &simulator,
            json!({"operation": "ListJobExecutionsForJob", "input": {"jobId": "a"}}),
        );
        assert_eq!(reply["requestId"], Value::Null);
        let statuses: Vec<&str> = reply["output"]["executionSummaries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["jobExecutionSummary"]["status"].as_str().unwrap())
            .collect();
        assert_eq!(statuses, ["QUEUED", "CANCELED"]);
    }

    #[test]
    fn bad_requests_get_an_error_with_a_reason() {
        let simulator = simulator();
        for (request, code) in [
            (json!({"operation": "Explode"}), "UnknownOperationException"),
            (json!({"input": {}}), "UnknownOperationException"),
            (
                json!({"operation": "CancelJob", "input": {"jobId": "never-created"}}),
                "ResourceNotFoundException",
            ),
            (
                json!({"operation": "CreateJob", "input": {"jobId": "bad id!", "targets": ["t"], "document": "{}"}}),
                "InvalidRequestException",
            ),
            (
                json!({"operation": "ListJobs", "colour": "red"}),
                "InvalidRequestException",
            ),
            (json!([1, 2]), "InvalidRequestException"),
        ] {
            let reply = control(&simulator, request.clone());
            assert_eq!(reply["error"]["__type"], code, "{request}");
            assert!(
                reply["error"]["message"]
                    .as_str()
                    .is_some_and(|e| !e.is_empty())
            );
        }
        let reply = handle_control(&simulator, b"{not json").reply;
        assert_eq!(reply["error"]["__type"], "InvalidRequestException");
    }

    #[test]
    fn the_change_log_reports_new_and_changed_executions_once() {
        let simulator = simulator();
        let mut log = ChangeLog::new();
        control(
            &simulator,
            json!({"operation": "CreateJob", "input": {"jobId": "a", "document": "{}", "targets": ["t1"]}}),
        );
        assert_eq!(
            log.changes(&simulator.executions()),
            ["t1 a: new -> QUEUED (version 1)"]
        );
        assert!(log.changes(&simulator.executions()).is_empty());
        control(
            &simulator,
            json!({"operation": "CancelJob", "input": {"jobId": "a"}}),
        );
        assert_eq!(
            log.changes(&simulator.executions()),
            ["t1 a: QUEUED -> CANCELED (version 1)"]
        );
    }
}

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
//! Publish a JSON command on [`CONTROL_TOPIC`]; the reply comes on [`RESULT_TOPIC`] (QoS 1),
//! echoing `requestId` (any JSON value; optional) and `command`, with `"ok": true` or
//! `"ok": false` and an `"error"` message. Commands (`command` field):
//!
//! | command | other fields | effect |
//! |---|---|---|
//! | `create` | as one entry of the jobs file | creates the job; `notify` and `notify-next` go out before the reply |
//! | `cancel` | `jobId` | every execution of the job that has not ended becomes `CANCELED` |
//! | `remove-thing` | `jobId`, `thing` | that thing's execution becomes `REMOVED` (unless it has ended) |
//! | `list` | — | the reply carries `executions`: every execution, in thing then creation order |
//!
//! An execution in `list` is `{"thingName", "jobId", "status", "versionNumber",
//! "executionNumber", "queuedAt", "startedAt", "lastUpdatedAt", "statusDetails"}` (times in
//! seconds since the epoch; `startedAt` and `statusDetails` may be `null`).

use std::collections::BTreeMap;
use std::error::Error;
use std::fmt;

use jobs_core::{Document, JobId, JobStatus, ThingName};
use jobs_mock::{ExecutionInfo, JobSpec, Simulator};
use serde::Deserialize;
use serde_json::{Map, Value, json};

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

/// What a control command did: the reply to publish on [`RESULT_TOPIC`], and a line for the
/// service's log.
#[derive(Debug, Clone, PartialEq)]
pub struct ControlOutcome {
    /// The reply.
    pub reply: Value,
    /// A one-line description, such as `create rotate-logs for pump-07: ok`.
    pub summary: String,
}

/// A refused command, as text for the reply.
#[derive(Debug)]
struct Refused(String);

impl fmt::Display for Refused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Error for Refused {}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct CancelArgs {
    job_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RemoveThingArgs {
    job_id: String,
    thing: String,
}

/// Runs one control command (the payload of a message on [`CONTROL_TOPIC`]) on `simulator`.
/// Never fails: a bad command gets an `"ok": false` reply.
pub fn handle_control(simulator: &Simulator, payload: &[u8]) -> ControlOutcome {
    let mut object = match serde_json::from_slice::<Value>(payload) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return refused(Value::Null, "?", "the command is not a JSON object"),
        Err(error) => return refused(Value::Null, "?", &format!("invalid JSON: {error}")),
    };
    let request_id = object.remove("requestId").unwrap_or(Value::Null);
    let command = match object.remove("command") {
        Some(Value::String(command)) => command,
        _ => return refused(request_id, "?", "missing \"command\" string"),
    };
    let result = run_command(simulator, &command, Value::Object(object));
    match result {
        Ok((what, extra)) => {
            let mut reply = Map::new();
            reply.insert("requestId".into(), request_id);
            reply.insert("command".into(), Value::String(command.clone()));
            reply.insert("ok".into(), Value::Bool(true));
            reply.extend(extra);
            ControlOutcome {
                reply: Value::Object(reply),
                summary: format!("{command} {what}: ok"),
            }
        }
        Err(error) => refused(request_id, &command, &error.to_string()),
    }
}

/// Runs one command; returns a description and the reply's extra fields.
fn run_command(
    simulator: &Simulator,
    command: &str,
    args: Value,
) -> Result<(String, Map<String, Value>), Box<dyn Error>> {
    match command {
        "create" => {
            let entry: JobEntry = serde_json::from_value(args)?;
            simulator.create_job(entry.to_spec()?)?;
            Ok((
                format!("{} for {}", entry.job_id, entry.things.join(", ")),
                Map::new(),
            ))
        }
        "cancel" => {
            let args: CancelArgs = serde_json::from_value(args)?;
            simulator.cancel_job(&JobId::new(args.job_id.as_str())?)?;
            Ok((args.job_id, Map::new()))
        }
        "remove-thing" => {
            let args: RemoveThingArgs = serde_json::from_value(args)?;
            simulator.remove_thing(
                &JobId::new(args.job_id.as_str())?,
                &ThingName::new(args.thing.as_str())?,
            )?;
            Ok((format!("{} from {}", args.thing, args.job_id), Map::new()))
        }
        "list" => {
            if !args.as_object().is_some_and(Map::is_empty) {
                return Err(Box::new(Refused("list takes no arguments".into())));
            }
            let executions: Vec<Value> =
                simulator.executions().iter().map(execution_json).collect();
            let summary = format!("{} executions", executions.len());
            let mut extra = Map::new();
            extra.insert("executions".into(), Value::Array(executions));
            Ok((summary, extra))
        }
        other => Err(Box::new(Refused(format!("unknown command {other:?}")))),
    }
}

fn refused(request_id: Value, command: &str, error: &str) -> ControlOutcome {
    ControlOutcome {
        reply: json!({"requestId": request_id, "command": command, "ok": false, "error": error}),
        summary: format!("{command}: refused: {error}"),
    }
}

/// One execution as JSON (the `list` reply's format, see the [module docs](self)).
pub fn execution_json(execution: &ExecutionInfo) -> Value {
    json!({
        "thingName": execution.thing_name.as_str(),
        "jobId": execution.job_id.as_str(),
        "status": execution.status.to_string(),
        "versionNumber": execution.version_number,
        "executionNumber": execution.execution_number,
        "queuedAt": execution.queued_at,
        "startedAt": execution.started_at,
        "lastUpdatedAt": execution.last_updated_at,
        "statusDetails": execution.status_details.as_ref().map(|details| {
            details
                .iter()
                .map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())))
                .collect::<Map<_, _>>()
        }),
    })
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

    use jobs_mock::{Clock, JobsService, MockBroker};

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
    fn create_cancel_remove_and_list_work_and_echo_the_request_id() {
        let simulator = simulator();
        let reply = control(
            &simulator,
            json!({"command": "create", "requestId": 7, "jobId": "a", "document": {"x": 1},
                   "things": ["t1", "t2"]}),
        );
        assert_eq!(
            reply,
            json!({"requestId": 7, "command": "create", "ok": true})
        );
        let reply = control(
            &simulator,
            json!({"command": "remove-thing", "jobId": "a", "thing": "t2"}),
        );
        assert_eq!(reply["ok"], true);
        control(
            &simulator,
            json!({"command": "create", "jobId": "b", "document": {}, "things": ["t1"]}),
        );
        assert_eq!(
            control(&simulator, json!({"command": "cancel", "jobId": "b"}))["ok"],
            true
        );

        let reply = control(&simulator, json!({"command": "list", "requestId": "r"}));
        assert_eq!(reply["requestId"], "r");
        let states: Vec<(&str, &str, &str)> = reply["executions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["thingName"].as_str().unwrap(),
                    e["jobId"].as_str().unwrap(),
                    e["status"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            states,
            [
                ("t1", "a", "QUEUED"),
                ("t1", "b", "CANCELED"),
                ("t2", "a", "REMOVED")
            ]
        );
    }

    #[test]
    fn bad_commands_get_a_refusal_with_a_reason() {
        let simulator = simulator();
        for command in [
            json!({"command": "explode"}),
            json!({"command": "cancel", "jobId": "never-created"}),
            json!({"command": "create", "jobId": "a", "document": {}, "things": []}),
            json!({"command": "create", "jobId": "bad id!", "document": {}, "things": ["t"]}),
            json!({"command": "list", "extra": 1}),
            json!({"jobId": "a"}),
            json!([1, 2]),
        ] {
            let reply = control(&simulator, command.clone());
            assert_eq!(reply["ok"], false, "{command}");
            assert!(reply["error"].as_str().is_some_and(|e| !e.is_empty()));
        }
        let reply = handle_control(&simulator, b"{not json").reply;
        assert_eq!(reply["ok"], false);
    }

    #[test]
    fn the_change_log_reports_new_and_changed_executions_once() {
        let simulator = simulator();
        let mut log = ChangeLog::new();
        control(
            &simulator,
            json!({"command": "create", "jobId": "a", "document": {}, "things": ["t1"]}),
        );
        assert_eq!(
            log.changes(&simulator.executions()),
            ["t1 a: new -> QUEUED (version 1)"]
        );
        assert!(log.changes(&simulator.executions()).is_empty());
        control(&simulator, json!({"command": "cancel", "jobId": "a"}));
        assert_eq!(
            log.changes(&simulator.executions()),
            ["t1 a: QUEUED -> CANCELED (version 1)"]
        );
    }
}

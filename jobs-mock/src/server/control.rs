//! The control topic of `jobs-service`: the operations of the HTTP API as JSON over MQTT.
//!
//! Publish a JSON request on [`CONTROL_TOPIC`]; the reply comes on [`RESULT_TOPIC`] (QoS 1).
//! The operations, their inputs and outputs are those of the HTTP API (see
//! [`super::http`] and [`crate::service::api`]), by AWS name:
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

use serde_json::{Value, json};

use super::http::RouteError;
use crate::service::Simulator;
use crate::service::api::Operation;

/// The topic `jobs-service` takes commands on.
pub const CONTROL_TOPIC: &str = "jobs-service/control";

/// The topic `jobs-service` publishes the reply to each command on.
pub const RESULT_TOPIC: &str = "jobs-service/control/result";

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
    // The one type mistake people make: the document as a JSON object. AWS takes it as a
    // string holding JSON; say so, naming the member (serde's own error names none).
    if operation == Operation::CreateJob
        && let Some(document) = input.get("document")
        && !document.is_string()
    {
        return invalid(
            request_id,
            name,
            &format!(
                "CreateJob: input.document must be a string holding the job document as JSON \
                 (as in the AWS API), such as \"document\": {}, not {document}",
                Value::String(document.to_string())
            ),
        );
    }
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

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::MockBroker;
    use crate::service::{Clock, JobsService};

    use super::*;

    /// A simulator with the things `t1` and `t2` registered.
    fn simulator() -> Simulator {
        let broker = MockBroker::new();
        let simulator = Simulator::start(
            Arc::new(broker.connect("jobs-service")),
            JobsService::new(Clock::virtual_at(1_750_000_000)),
        )
        .unwrap();
        for thing in ["t1", "t2"] {
            simulator
                .call_json(
                    crate::service::api::Operation::CreateThing,
                    serde_json::json!({"thingName": thing}),
                )
                .unwrap();
        }
        simulator
    }

    fn control(simulator: &Simulator, command: Value) -> Value {
        handle_control(simulator, command.to_string().as_bytes()).reply
    }

    #[test]
    fn operations_run_by_name_and_echo_the_request_id() {
        let simulator = simulator();
        let reply = control(
            &simulator,
            json!({"operation": "CreateJob", "requestId": 7,
                   "input": {"jobId": "a", "document": "{\"x\":1}", "targets": ["arn:aws:iot:us-east-1:123456789012:thing/t1", "arn:aws:iot:us-east-1:123456789012:thing/t2"]}}),
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
        let reply = control(
            &simulator,
            json!({"operation": "CreateJob", "input": {"jobId": "j", "targets": ["t"],
                   "document": {"operation": "rotate-logs"}}}),
        );
        let message = reply["error"]["message"].as_str().unwrap();
        assert!(
            message.contains("input.document must be a string"),
            "{message}"
        );
        let reply = handle_control(&simulator, b"{not json").reply;
        assert_eq!(reply["error"]["__type"], "InvalidRequestException");
    }
}

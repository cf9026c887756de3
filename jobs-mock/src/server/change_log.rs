//! The change log `jobs-service` prints: one line per execution whose status or version
//! changed, keyed by execution (thing, job and execution number), so that two executions of
//! one job on one thing are two lines, not one that flips between them.

use std::collections::BTreeMap;

use jobs_core::JobStatus;

use crate::service::ExecutionInfo;

/// Remembers the status of every execution and describes what changed since the last look.
#[derive(Debug, Default)]
pub struct ChangeLog {
    seen: BTreeMap<(String, String, i64), (JobStatus, i64)>,
}

impl ChangeLog {
    /// A log that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// One line per execution that is new or whose status or version changed since the last
    /// call, such as `pump-07 rotate-logs: QUEUED -> IN_PROGRESS (version 2; step=archiving)`;
    /// an execution after the first of its job on its thing (a re-run) is named with its
    /// number: `pump-07 config #2: new -> QUEUED (version 1)`.
    pub fn changes(&mut self, executions: &[ExecutionInfo]) -> Vec<String> {
        let mut lines = Vec::new();
        for e in executions {
            let key = (
                e.thing_name.to_string(),
                e.job_id.to_string(),
                e.execution_number,
            );
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
            // The first execution is the job; later ones (re-runs) carry their number.
            let number = if e.execution_number > 1 {
                format!(" #{}", e.execution_number)
            } else {
                String::new()
            };
            lines.push(format!(
                "{} {}{number}: {from} -> {} (version {}{details})",
                e.thing_name, e.job_id, e.status, e.version_number
            ));
        }
        lines
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::{Value, json};

    use super::*;
    use crate::MockBroker;
    use crate::server::control::handle_control;
    use crate::service::{Clock, JobsService, Simulator};

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
    fn the_change_log_reports_new_and_changed_executions_once() {
        let simulator = simulator();
        let mut log = ChangeLog::new();
        control(
            &simulator,
            json!({"operation": "CreateJob", "input": {"jobId": "a", "document": "{}", "targets": ["arn:aws:iot:us-east-1:123456789012:thing/t1"]}}),
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

    #[test]
    fn two_executions_of_one_job_on_one_thing_are_logged_apart_and_then_stay_quiet() {
        let simulator = simulator();
        let mut log = ChangeLog::new();
        control(
            &simulator,
            json!({"operation": "CreateJob", "input": {"jobId": "c", "document": "{}",
                   "targets": ["arn:aws:iot:us-east-1:123456789012:thing/t1"], "targetSelection": "CONTINUOUS"}}),
        );
        control(
            &simulator,
            json!({"operation": "CancelJobExecution", "input": {"jobId": "c", "thingName": "t1"}}),
        );
        control(
            &simulator,
            json!({"operation": "AssociateTargetsWithJob", "input": {"jobId": "c", "targets": ["arn:aws:iot:us-east-1:123456789012:thing/t1"]}}),
        );
        assert_eq!(
            log.changes(&simulator.executions()),
            [
                "t1 c: new -> CANCELED (version 1)",
                "t1 c #2: new -> QUEUED (version 1)"
            ]
        );
        // Before the fix, the two executions shared one key and flipped on every look.
        for _ in 0..5 {
            assert_eq!(log.changes(&simulator.executions()), Vec::<String>::new());
        }
    }
}

//! The device loop shared by the offline `quickstart` and the `device` program: when the
//! service reports a change, list the pending executions, describe each one to get its
//! document, report `IN_PROGRESS`, do the work, then report `SUCCEEDED` or `FAILED` — or
//! `REJECTED` for a document the device cannot handle.
//!
//! The documents it understands, by their `"operation"` field (the convention of the job
//! runner, `jobs_core::runner`, and of the AWS IoT Device Client):
//!
//! | operation | work | result |
//! |---|---|---|
//! | `rotate-logs` (`keep`) | 30 s "archiving" | SUCCEEDED |
//! | `install-firmware` (`version`) | 120 s "downloading" | SUCCEEDED, but FAILED on a thing named `pump-08` (its flash is nearly full) |
//! | `calibrate-flow` (`litresPerMinute`) | 45 s "measuring" | SUCCEEDED |
//! | anything else, or no `operation` | none | REJECTED, with the reason in the status details and printed |

use std::error::Error;
use std::ops::AddAssign;

use jobs_core::{Document, JobStatus, Jobs, StatusDetails};
use serde_json::Value;

use crate::say;

/// The operations [`plan`] knows, for the reason given with a rejection.
pub const OPERATIONS: [&str; 3] = ["rotate-logs", "install-firmware", "calibrate-flow"];

/// Where the loop runs: how it stamps its output lines and how time passes while it works.
pub trait Host {
    /// A prefix for each output line, such as the current time.
    fn timestamp(&self) -> String;

    /// Lets `seconds` of work pass: advance a virtual clock, or sleep.
    ///
    /// # Errors
    /// Whatever stops the work; the loop returns it.
    fn work(&self, seconds: u64) -> Result<(), Box<dyn Error>>;
}

/// How many executions one call of [`process_pending`] brought to each final status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Reported `SUCCEEDED`.
    pub succeeded: usize,
    /// Reported `FAILED`.
    pub failed: usize,
    /// Reported `REJECTED`.
    pub rejected: usize,
}

impl AddAssign for Tally {
    fn add_assign(&mut self, other: Self) {
        self.succeeded += other.succeeded;
        self.failed += other.failed;
        self.rejected += other.rejected;
    }
}

/// Works through the pending executions of `jobs`' thing for as long as the service reports
/// changes ([`Jobs::changed`] is true at first, so the loop lists at least once on its first
/// call; `force` lists once even if nothing changed, e.g. to retry after an error). Every
/// execution that ends sends a `notify`, which makes it look again, so it returns once a list
/// shows nothing new. Prints one line per step, prefixed with [`Host::timestamp`].
///
/// # Errors
/// The first failed request (timeout, rejection, transport), or a failure of [`Host::work`].
pub fn process_pending(jobs: &Jobs, host: &dyn Host, force: bool) -> Result<Tally, Box<dyn Error>> {
    let thing = jobs.thing_name().as_str().to_owned();
    let mut tally = Tally::default();
    let mut force = force;
    while std::mem::take(&mut force) | jobs.changed() {
        let pending = jobs.list()?;
        let names: Vec<String> = pending
            .iter()
            .map(|job| format!("{} {}", job.id(), status_name(job.status())))
            .collect();
        say!(
            "{} list: {}",
            host.timestamp(),
            if names.is_empty() {
                "nothing pending".to_owned()
            } else {
                names.join(", ")
            }
        );
        for mut job in pending {
            job.describe()?;
            let document = job
                .document()
                .map(Document::to_value)
                .unwrap_or(Value::Null);
            let id = job.id().to_string();
            say!("{} {id}: document {document}", host.timestamp());
            let Some(work) = plan(&thing, &document) else {
                let reason = rejection_reason(&document);
                let details = StatusDetails::from_pairs([("reason", reason.as_str())])?;
                job.update(JobStatus::Rejected, Some(&details))?;
                say!("{} {id}: REJECTED: {reason}", host.timestamp());
                tally.rejected += 1;
                continue;
            };
            let progress = StatusDetails::from_pairs([("step", work.step)])?;
            job.update(JobStatus::InProgress, Some(&progress))?;
            say!("{} {id}: IN_PROGRESS ({})", host.timestamp(), work.step);
            host.work(work.seconds)?;
            let (status, details) = match work.result {
                Ok(result) => {
                    tally.succeeded += 1;
                    (
                        JobStatus::Succeeded,
                        StatusDetails::from_pairs([("result", result)])?,
                    )
                }
                Err(error) => {
                    tally.failed += 1;
                    (
                        JobStatus::Failed,
                        StatusDetails::from_pairs([("error", error)])?,
                    )
                }
            };
            job.update(status.clone(), Some(&details))?;
            let (key, value) = details.iter().next().unwrap_or(("", ""));
            say!(
                "{} {id}: {status} after {} s ({key}: {value})",
                host.timestamp(),
                work.seconds
            );
        }
    }
    Ok(tally)
}

/// What a device does for a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Work {
    /// The step reported with `IN_PROGRESS`.
    pub step: &'static str,
    /// How long the work takes, in seconds.
    pub seconds: u64,
    /// The result (`SUCCEEDED` with a message) or the error (`FAILED`).
    pub result: Result<String, String>,
}

/// Why a document is rejected, for the status details and the output: it has no
/// `operation`, or one this device does not know.
pub fn rejection_reason(document: &Value) -> String {
    match &document["operation"] {
        Value::String(operation) => format!(
            "unsupported operation {operation:?} (this device knows {})",
            OPERATIONS.join(", ")
        ),
        Value::Null if document.get("action").is_some() => {
            "no \"operation\" field (this device reads \"operation\", not \"action\")".to_owned()
        }
        Value::Null => "no \"operation\" field in the document".to_owned(),
        other => format!("\"operation\" is not a string: {other}"),
    }
}

/// The work `thing` does for `document`; `None` when it cannot handle it (see the
/// [module docs](self)).
pub fn plan(thing: &str, document: &Value) -> Option<Work> {
    match document["operation"].as_str()? {
        "rotate-logs" => Some(Work {
            step: "archiving",
            seconds: 30,
            result: Ok(format!(
                "kept {} archives",
                document["keep"].as_u64().unwrap_or(1)
            )),
        }),
        "install-firmware" => {
            let version = document["version"].as_str().unwrap_or("?");
            Some(Work {
                step: "downloading",
                seconds: 120,
                // pump-08 is the one with a nearly full flash.
                result: if thing == "pump-08" {
                    Err(format!("not enough flash for {version}"))
                } else {
                    Ok(format!("running {version}"))
                },
            })
        }
        "calibrate-flow" => Some(Work {
            step: "measuring",
            seconds: 45,
            result: Ok(format!(
                "calibrated to {} l/min",
                document["litresPerMinute"].as_u64().unwrap_or(0)
            )),
        }),
        _ => None,
    }
}

/// A status for display; `?` when unknown.
pub fn status_name(status: Option<&JobStatus>) -> String {
    status.map_or_else(|| "?".to_owned(), ToString::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn firmware_fails_on_pump_08_only_and_unknown_operations_are_not_planned() {
        let firmware = json!({"operation": "install-firmware", "version": "2.4.0"});
        assert!(plan("pump-07", &firmware).is_some_and(|w| w.result.is_ok()));
        assert!(plan("pump-08", &firmware).is_some_and(|w| w.result.is_err()));
        assert_eq!(plan("pump-07", &json!({"operation": "teleport"})), None);
        assert_eq!(plan("pump-07", &json!("not an object")), None);
    }

    #[test]
    fn the_document_convention_is_operation_as_the_runner_reads_it_and_rejections_say_why() {
        let document = json!({"action": "rotate-logs"});
        assert_eq!(plan("pump-07", &document), None);
        assert!(rejection_reason(&document).contains("not \"action\""));
        let reason = rejection_reason(&json!({"operation": "teleport"}));
        assert!(
            reason.contains("\"teleport\"") && reason.contains("rotate-logs"),
            "{reason}"
        );
        assert!(plan("pump-07", &json!({"operation": "rotate-logs"})).is_some());
    }
}

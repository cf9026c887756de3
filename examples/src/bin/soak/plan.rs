//! The plan of a run: every job, what its handler does on each execution and the state AWS
//! must give each execution, decided up front from the seed.

use std::collections::HashMap;
use std::fmt;

use jobs_core::{Document, JobId, JobStatus, RejectCode};
use serde::{Deserialize, Serialize};

use crate::chaos::OutageKind;
use crate::dice::Dice;
use crate::ota::FileRef;

/// The thing name of device `index`.
pub(crate) fn thing_name(index: usize) -> String {
    format!("soak-{index:03}")
}

/// The ARN of thing `name`, as the simulator gives it (job targets are ARNs, as on AWS).
pub(crate) fn thing_arn(name: &str) -> String {
    use jobs_mock::service::api::{ACCOUNT_ID, REGION};
    format!("arn:aws:iot:{REGION}:{ACCOUNT_ID}:thing/{name}")
}

/// The operation the soak's handler serves.
pub(crate) const OPERATION: &str = "work";

/// An operation no handler serves: the runner reports it `REJECTED` itself.
pub(crate) const UNHANDLED: &str = "no-such-operation";

/// The `reason` of a handler that fails on purpose.
pub(crate) const FAILURE: &str = "deliberate failure";

/// What the handler does on one execution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Act {
    /// Returns `SUCCEEDED`.
    Succeed,
    /// Returns an error: `FAILED` with the error as `reason`.
    Fail,
    /// Panics: `FAILED` with "the handler panicked".
    Panic,
    /// Returns `REJECTED`.
    Reject,
    /// Waits to be canceled: the soak cancels the execution with CancelJobExecution (force).
    Cancel,
    /// Waits to be ended: the soak removes the thing from the job's targets (`REMOVED`).
    Remove,
    /// Waits to be ended: the soak deletes the execution (DeleteJobExecution, force); the
    /// service forgets it, and answers `ResourceNotFound` about it.
    Delete,
    /// Returns `SUCCEEDED` during an outage, and the soak cancels the execution right then,
    /// while the broker is down: the report can only reach the service after the cancel.
    CancelLate,
    /// Starts a 1-minute step timer (1 s on the soak's scaled clock) and waits to be timed out.
    Timeout,
    /// Downloads the document's file (OTA mode) and returns `SUCCEEDED`.
    Download,
}

impl Act {
    /// True for the acts that return an outcome for the runner to report.
    pub(crate) fn returns(self) -> bool {
        matches!(
            self,
            Self::Succeed | Self::Fail | Self::Panic | Self::Reject
        )
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            Self::Succeed => "succeed",
            Self::Fail => "fail",
            Self::Panic => "panic",
            Self::Reject => "reject",
            Self::Cancel => "cancel",
            Self::Remove => "remove",
            Self::Delete => "delete",
            Self::CancelLate => "cancel while the report waits",
            Self::Timeout => "time out",
            Self::Download => "download",
        };
        f.write_str(name)
    }
}

/// One execution's part of the plan (execution number = index + 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Run {
    pub(crate) act: Act,
    /// Return during the next broker outage of this kind instead of after `ms`.
    pub(crate) outage: Option<OutageKind>,
    /// How long the work takes, in milliseconds, when not timed to an outage.
    pub(crate) ms: u64,
    /// Crash after the side effect on the first run: the device's runner is torn down with
    /// the handler still running, and a new runner resumes the execution.
    pub(crate) crash: bool,
}

/// The job document the handler reads.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Doc {
    pub(crate) operation: String,
    pub(crate) n: usize,
    pub(crate) runs: Vec<Run>,
    /// OTA mode: the file's pre-signed URL (a placeholder when created) and its SHA-256.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) sha256: Option<String>,
}

/// One job of the plan.
#[derive(Debug, Clone)]
pub(crate) struct JobPlan {
    pub(crate) id: JobId,
    /// Index of the target device.
    pub(crate) device: usize,
    /// A CONTINUOUS job run twice: execution 2 is queued by AssociateTargetsWithJob once
    /// execution 1 ended (at once after the cancel, if execution 1 is canceled).
    pub(crate) rerun: bool,
    /// The document names an operation no handler serves.
    pub(crate) unhandled: bool,
    /// The simulator refuses the job's first updates with this code, this many times.
    pub(crate) refused: Option<(RejectCode, usize)>,
    pub(crate) runs: Vec<Run>,
}

/// The state AWS must give an execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    /// `None`: deleted, the service no longer has it.
    pub(crate) status: Option<JobStatus>,
    /// The `reason` status detail it must hold, if any.
    pub(crate) reason: Option<String>,
}

impl JobPlan {
    /// The job's document; `file`: the file it installs (OTA mode).
    pub(crate) fn document(
        &self,
        n: usize,
        file: Option<&FileRef>,
    ) -> Result<Document, serde_json::Error> {
        Document::from_serialize(&Doc {
            operation: if self.unhandled { UNHANDLED } else { OPERATION }.to_owned(),
            n,
            runs: self.runs.clone(),
            url: file.map(|f| f.placeholder.clone()),
            sha256: file.map(|f| f.sha256.clone()),
        })
    }

    /// The plan of execution `number`, if the plan has one.
    pub(crate) fn run(&self, number: i64) -> Option<&Run> {
        usize::try_from(number)
            .ok()
            .and_then(|n| n.checked_sub(1))
            .and_then(|i| self.runs.get(i))
    }

    /// The state AWS must give execution `number`.
    pub(crate) fn expected(&self, number: i64) -> Option<Expected> {
        let run = self.run(number)?;
        if self.unhandled {
            return Some(Expected {
                status: Some(JobStatus::Rejected),
                reason: Some(format!("no handler for operation {UNHANDLED:?}")),
            });
        }
        let (status, reason) = match run.act {
            Act::Succeed | Act::Download => (Some(JobStatus::Succeeded), None),
            Act::Fail => (Some(JobStatus::Failed), Some(FAILURE.to_owned())),
            Act::Panic => (
                Some(JobStatus::Failed),
                Some("the handler panicked".to_owned()),
            ),
            Act::Reject => (Some(JobStatus::Rejected), None),
            Act::Cancel | Act::CancelLate => (Some(JobStatus::Canceled), None),
            Act::Remove => (Some(JobStatus::Removed), None),
            Act::Timeout => (Some(JobStatus::TimedOut), None),
            Act::Delete => (None, None),
        };
        Some(Expected { status, reason })
    }
}

/// Every job of the run, by index and by job ID.
#[derive(Debug)]
pub(crate) struct Plan {
    pub(crate) jobs: Vec<JobPlan>,
    by_id: HashMap<String, usize>,
    /// OTA mode: the file every job installs.
    pub(crate) file: Option<FileRef>,
}

impl Plan {
    /// `jobs` jobs spread over `devices` devices; with `file` (OTA mode), every job downloads
    /// it, and the first two and a fifth of the others crash on purpose in the middle of the
    /// download.
    pub(crate) fn generate(
        jobs: usize,
        devices: usize,
        file: Option<FileRef>,
        dice: &mut Dice,
    ) -> Result<Self, String> {
        let mut plans = Vec::with_capacity(jobs);
        for n in 0..jobs {
            let id = JobId::new(format!("soak-job-{n:05}")).map_err(|e| e.to_string())?;
            let device = n % devices.max(1);
            plans.push(match file {
                None => job(id, device, n, dice),
                Some(_) => JobPlan {
                    id,
                    device,
                    rerun: false,
                    unhandled: false,
                    refused: None,
                    runs: vec![Run {
                        act: Act::Download,
                        outage: None,
                        ms: 0,
                        // The first two always: every run sees a download resumed.
                        crash: n < 2 || dice.chance(20),
                    }],
                },
            });
        }
        let by_id = plans
            .iter()
            .enumerate()
            .map(|(i, plan)| (plan.id.to_string(), i))
            .collect();
        Ok(Self {
            jobs: plans,
            by_id,
            file,
        })
    }

    pub(crate) fn get(&self, job: &str) -> Option<&JobPlan> {
        self.by_id.get(job).and_then(|&i| self.jobs.get(i))
    }

    /// Whether the plan has every scenario of the catalogue.
    pub(crate) fn has_every_scenario(&self) -> bool {
        self.file.is_none() && self.jobs.len() >= CATALOGUE.len()
    }

    /// How many executions the plan makes.
    pub(crate) fn executions(&self) -> usize {
        self.jobs.iter().map(|job| job.runs.len()).sum()
    }
}

/// The kinds of job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    Single(Act),
    /// Succeeds; the simulator refuses its first updates (the variant of [`refusal`]).
    Refused(u8),
    /// Names an operation no handler serves.
    Unhandled,
    /// A CONTINUOUS job run twice: execution 1 acts as the first, execution 2 as the second.
    Rerun(Act, Act),
}

/// The first jobs of every plan, one of each scenario (the second field: crash on purpose), so
/// that even a short run has them all; the rest are drawn at random.
const CATALOGUE: [(Shape, bool); 18] = [
    (Shape::Single(Act::Cancel), false),
    (Shape::Single(Act::Remove), false),
    (Shape::Single(Act::Delete), false),
    (Shape::Single(Act::CancelLate), false),
    (Shape::Single(Act::Timeout), false),
    (Shape::Rerun(Act::Cancel, Act::Succeed), false),
    (Shape::Rerun(Act::Succeed, Act::Fail), false),
    (Shape::Rerun(Act::Fail, Act::Succeed), false),
    (Shape::Single(Act::Fail), false),
    (Shape::Single(Act::Panic), false),
    (Shape::Single(Act::Reject), false),
    (Shape::Unhandled, false),
    (Shape::Refused(0), false),
    (Shape::Refused(1), false),
    (Shape::Refused(2), false),
    (Shape::Single(Act::Succeed), true),
    (Shape::Single(Act::Cancel), true),
    (Shape::Single(Act::Timeout), true),
];

/// The refusals of [`Shape::Refused`]: none of them changes the outcome (a re-read is all a
/// `VersionMismatch` needs; the others are retried).
fn refusal(variant: u8) -> (RejectCode, usize) {
    match variant {
        0 => (RejectCode::RequestThrottled, 2),
        1 => (RejectCode::InternalError, 2),
        _ => (RejectCode::VersionMismatch, 1),
    }
}

fn random_shape(dice: &mut Dice) -> Shape {
    match dice.below(100) {
        0..10 => {
            let first = match dice.below(10) {
                0..4 => Act::Succeed,
                4..6 => Act::Fail,
                _ => Act::Cancel,
            };
            let second = if dice.chance(70) {
                Act::Succeed
            } else {
                Act::Fail
            };
            Shape::Rerun(first, second)
        }
        10..17 => Shape::Single(Act::Cancel),
        17..20 => Shape::Single(Act::Remove),
        20..23 => Shape::Single(Act::CancelLate),
        23..27 => Shape::Single(Act::Timeout),
        27..34 => Shape::Single(Act::Fail),
        34..37 => Shape::Single(Act::Panic),
        37..41 => Shape::Single(Act::Reject),
        41..43 => Shape::Unhandled,
        43..47 => Shape::Refused(u8::try_from(dice.below(3)).unwrap_or(0)),
        47..49 => Shape::Single(Act::Delete),
        _ => Shape::Single(Act::Succeed),
    }
}

fn job(id: JobId, device: usize, n: usize, dice: &mut Dice) -> JobPlan {
    let (shape, crash) = match CATALOGUE.get(n) {
        Some(&(shape, crash)) => (shape, Some(crash)),
        None => (random_shape(dice), None),
    };
    let mut plan = JobPlan {
        id,
        device,
        rerun: false,
        unhandled: false,
        refused: None,
        runs: Vec::new(),
    };
    let acts = match shape {
        Shape::Single(act) => vec![act],
        Shape::Refused(variant) => {
            plan.refused = Some(refusal(variant));
            vec![Act::Succeed]
        }
        Shape::Unhandled => {
            plan.unhandled = true;
            vec![Act::Succeed]
        }
        Shape::Rerun(first, second) => {
            plan.rerun = true;
            vec![first, second]
        }
    };
    for act in acts {
        let mut run = run(act, dice);
        if let Some(crash) = crash {
            run.crash = crash && plan.runs.is_empty();
        }
        plan.runs.push(run);
    }
    plan
}

fn run(act: Act, dice: &mut Dice) -> Run {
    Run {
        act,
        outage: (act == Act::CancelLate || (act.returns() && dice.chance(65))).then(|| {
            if dice.chance(50) {
                OutageKind::Kill
            } else {
                OutageKind::Freeze
            }
        }),
        ms: 20 + dice.below(280),
        crash: dice.chance(8),
    }
}

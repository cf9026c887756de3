//! When `notify` and `notify-next` are sent: a snapshot of a thing's pending list before a
//! change, compared with the list after it.

use jobs_core::Timestamp;
use jobs_core::model::{JobExecutionsChanged, NextJobExecutionChanged, PendingByStatus};
use jobs_core::{JobId, JobStatus, ThingName};

use super::Outgoing;
use super::presign::UrlSigner;
use super::state::{ThingState, seconds};

/// A thing's pending list as it was before a change: (job and execution number, status),
/// head first. The execution number tells a retry or re-run from the execution it replaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pending: Vec<((JobId, i64), JobStatus)>,
}

impl Snapshot {
    pub(crate) fn of(state: &ThingState) -> Self {
        Self {
            pending: state
                .pending()
                .into_iter()
                .map(|e| ((e.job_id.clone(), e.execution_number), e.status.clone()))
                .collect(),
        }
    }

    fn head(&self) -> Option<&(JobId, i64)> {
        self.pending.first().map(|(job, _)| job)
    }
}

/// The events a change from `before` to `after` causes, `notify` before `notify-next`:
///
/// - `notify` when an execution joined or left the pending list (queued, or reached a terminal
///   status), or when an execution other than the head changed status (QUEUED→IN_PROGRESS).
///   The head's own QUEUED→IN_PROGRESS sends no `notify`, as in AWS's worked example.
/// - `notify-next` when the head changed (another execution, or none).
pub(crate) fn changes(
    thing: &ThingName,
    before: &Snapshot,
    after: &ThingState,
    signer: &UrlSigner,
    now_ms: i64,
) -> Vec<Outgoing> {
    let current = Snapshot::of(after);
    let mut out = Vec::new();
    let membership_changed = {
        let mut a: Vec<&(JobId, i64)> = before.pending.iter().map(|(job, _)| job).collect();
        let mut b: Vec<&(JobId, i64)> = current.pending.iter().map(|(job, _)| job).collect();
        a.sort();
        b.sort();
        a != b
    };
    let non_head_status_changed = before.pending.iter().any(|(job, status)| {
        Some(job) != before.head() && current.pending.iter().any(|(j, s)| j == job && s != status)
    });
    if membership_changed || non_head_status_changed {
        out.push(notify(thing, after, seconds(now_ms)));
    }
    if before.head() != current.head() {
        out.push(notify_next(thing, after, signer, now_ms));
    }
    out
}

/// A `notify` (JobExecutionsChanged) with the thing's current pending list.
pub(crate) fn notify(thing: &ThingName, state: &ThingState, now: i64) -> Outgoing {
    let (in_progress, queued) = state.pending_summaries();
    let mut jobs = PendingByStatus::default();
    jobs.in_progress = in_progress;
    jobs.queued = queued;
    let mut event = JobExecutionsChanged::default();
    event.timestamp = Some(Timestamp::new(now));
    event.jobs = jobs;
    Outgoing::json(jobs_core::topics::notify_topic(thing), &event)
}

/// A `notify-next` (NextJobExecutionChanged) with the thing's current head and its document
/// (as the device receives it: pre-signed URLs fresh).
pub(crate) fn notify_next(
    thing: &ThingName,
    state: &ThingState,
    signer: &UrlSigner,
    now_ms: i64,
) -> Outgoing {
    let mut event = NextJobExecutionChanged::default();
    event.timestamp = Some(Timestamp::new(seconds(now_ms)));
    event.execution = state.head().map(|e| e.to_wire(Some(signer), now_ms));
    Outgoing::json(jobs_core::topics::notify_next_topic(thing), &event)
}

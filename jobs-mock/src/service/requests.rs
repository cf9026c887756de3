//! The four device operations: GetPending, StartNext, Describe and Update.

use jobs_core::model::{
    DescribeRequest, ExecutionReply, GetPendingRequest, PendingJobs, StartNextRequest, UpdateReply,
    UpdateRequest,
};
use jobs_core::{ExecutionNumber, Timestamp};
use jobs_core::{JobStatus, RejectCode, StatusDetails, ThingName};

use super::jobs_service::{JobsService, Outgoing, Reject, encode};
use super::state::{Execution, ThingState, seconds};
use super::topic::JobRef;

/// `stepTimeoutInMinutes` range (1 minute to 7 days).
const STEP_TIMEOUT_RANGE: std::ops::RangeInclusive<i64> = 1..=10_080;

/// The message of AWS's `TerminalStateReached` (quoted from the real service).
pub(crate) const TERMINAL_STATE_MESSAGE: &str =
    "Job Execution has reached terminal state. It is neither IN_PROGRESS nor QUEUED";

/// `stepTimeoutInMinutes: -1` on Update cancels the step timer.
const CANCEL_STEP_TIMER: i64 = -1;

impl JobsService {
    pub(crate) fn get_pending(
        &self,
        thing: &ThingName,
        _request: &GetPendingRequest,
        token: Option<String>,
        now_ms: i64,
    ) -> Vec<u8> {
        let (in_progress, queued) = self
            .things
            .get(thing)
            .map(ThingState::pending_summaries)
            .unwrap_or_default();
        let mut reply = PendingJobs::default();
        reply.in_progress_jobs = in_progress;
        reply.queued_jobs = queued;
        reply.timestamp = Some(Timestamp::new(seconds(now_ms)));
        reply.client_token = token;
        encode(&reply)
    }

    pub(crate) fn start_next(
        &mut self,
        thing: &ThingName,
        request: StartNextRequest,
        token: Option<String>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Vec<u8>, Reject> {
        let details = validate_details(request.status_details)?;
        if let Some(minutes) = request.step_timeout_in_minutes
            && !STEP_TIMEOUT_RANGE.contains(&minutes)
        {
            return Err(Reject::invalid(format!(
                "stepTimeoutInMinutes {minutes} is outside 1 to 10080"
            )));
        }
        let now = seconds(now_ms);
        let signer = self.signer.clone();
        let execution = self.mutate(thing, now_ms, out, |state| {
            let head_id = state.head_id()?;
            let head = state.get_mut(&head_id, None)?;
            if head.status == JobStatus::Queued {
                head.start(now_ms);
                head.version_number = head.version_number.saturating_add(1);
                head.last_updated_at = now;
                if details.is_some() {
                    head.status_details = details;
                }
                if let Some(minutes) = request.step_timeout_in_minutes {
                    head.set_step_timer(minutes, now_ms);
                }
            }
            Some(head.to_wire(Some(&signer), now_ms))
        });
        let mut reply = ExecutionReply::default();
        reply.execution = execution;
        reply.timestamp = Some(Timestamp::new(now));
        reply.client_token = token;
        Ok(encode(&reply))
    }

    pub(crate) fn describe(
        &self,
        thing: &ThingName,
        job: &JobRef,
        request: &DescribeRequest,
        token: Option<String>,
        now_ms: i64,
    ) -> Result<Vec<u8>, Reject> {
        let include_document = request.include_job_document.unwrap_or(true);
        let document = include_document.then_some(&self.signer);
        let state = self.things.get(thing);
        let execution = match job {
            JobRef::Next => match state.and_then(ThingState::head) {
                Some(head) => Some(head.to_wire(document, now_ms)),
                None if self.quirks.idle_next_is_not_found => {
                    return Err(Reject::new(
                        RejectCode::ResourceNotFound,
                        "no pending job execution",
                    ));
                }
                None => None,
            },
            JobRef::Id(job) => {
                let execution = state
                    .and_then(|s| s.get(job, request.execution_number.map(ExecutionNumber::get)))
                    .ok_or_else(|| not_found(thing, job.as_str()))?;
                if execution.status.is_terminal()
                    && !self.quirks.terminal_describe_returns_execution
                {
                    return Err(Reject::new(
                        RejectCode::TerminalStateReached,
                        TERMINAL_STATE_MESSAGE,
                    ));
                }
                Some(execution.to_wire(document, now_ms))
            }
        };
        let mut reply = ExecutionReply::default();
        reply.execution = execution;
        reply.timestamp = Some(Timestamp::new(seconds(now_ms)));
        reply.client_token = token;
        Ok(encode(&reply))
    }

    pub(crate) fn update(
        &mut self,
        thing: &ThingName,
        job: &JobRef,
        request: UpdateRequest,
        token: Option<String>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Vec<u8>, Reject> {
        let JobRef::Id(job) = job else {
            return Err(Reject::invalid("$next cannot be updated; name the job ID"));
        };
        let status = match request.status {
            None => return Err(Reject::invalid("status is required")),
            Some(JobStatus::Unknown(status)) => {
                return Err(Reject::invalid(format!("unknown status {status:?}")));
            }
            Some(status) => status,
        };
        let details = validate_details(request.status_details)?;
        let step = request.step_timeout_in_minutes;
        if let Some(minutes) = step
            && minutes != CANCEL_STEP_TIMER
            && !STEP_TIMEOUT_RANGE.contains(&minutes)
        {
            return Err(Reject::invalid(format!(
                "stepTimeoutInMinutes {minutes} is outside 1 to 10080 (or -1)"
            )));
        }
        let queued_to_done_is_rejected = self.quirks.queued_to_done_is_rejected;
        let now = seconds(now_ms);
        let signer = self.signer.clone();
        let (state, document) = self.mutate(thing, now_ms, out, |state| {
            let execution = state
                .get_mut(job, request.execution_number.map(ExecutionNumber::get))
                .ok_or_else(|| not_found(thing, job.as_str()))?;
            if let Some(expected) = request.expected_version
                && expected.get() != execution.version_number
            {
                return Err(Reject::new(
                    RejectCode::VersionMismatch,
                    format!(
                        "expected version {expected}, current version {}",
                        execution.version_number
                    ),
                )
                .with_state(execution.state()));
            }
            check_transition(execution, &status, queued_to_done_is_rejected)?;
            if step == Some(CANCEL_STEP_TIMER) && execution.step_deadline.is_none() {
                return Err(Reject::invalid(
                    "stepTimeoutInMinutes -1 but no step timer is running",
                ));
            }
            if status == JobStatus::InProgress {
                if execution.status == JobStatus::Queued {
                    execution.start(now_ms);
                }
                match step {
                    Some(CANCEL_STEP_TIMER) => execution.step_deadline = None,
                    Some(minutes) => execution.set_step_timer(minutes, now_ms),
                    None => {}
                }
                execution.last_updated_at = now;
            } else {
                execution.finish(status, now);
            }
            if details.is_some() {
                execution.status_details = details;
            }
            execution.version_number = execution.version_number.saturating_add(1);
            Ok((
                execution.state(),
                execution.document_for_device(&signer, now_ms),
            ))
        })?;
        let mut reply = UpdateReply::default();
        if request.include_job_execution_state == Some(true) {
            reply.execution_state = Some(state);
        }
        if request.include_job_document == Some(true) {
            reply.job_document = Some(document);
        }
        reply.timestamp = Some(Timestamp::new(now));
        reply.client_token = token;
        Ok(encode(&reply))
    }
}

/// Whether a device may move `execution` to `status`; `InvalidStateTransition` with the
/// current state if not.
fn check_transition(
    execution: &Execution,
    status: &JobStatus,
    queued_to_done_is_rejected: bool,
) -> Result<(), Reject> {
    let refuse = |why: String| {
        Err(Reject::new(RejectCode::InvalidStateTransition, why).with_state(execution.state()))
    };
    let from = &execution.status;
    if from.is_terminal() {
        return refuse(format!("job execution is already {from}"));
    }
    if !status.is_settable_by_device() {
        return refuse(format!("a device cannot set {status}"));
    }
    if queued_to_done_is_rejected
        && *from == JobStatus::Queued
        && matches!(status, JobStatus::Succeeded | JobStatus::Failed)
    {
        return refuse(format!("{from} cannot change to {status} directly"));
    }
    Ok(())
}

/// Re-validates status details with the device-API rules (the model decodes them leniently).
fn validate_details(details: Option<StatusDetails>) -> Result<Option<StatusDetails>, Reject> {
    match details {
        None => Ok(None),
        Some(details) => StatusDetails::from_pairs(details.iter())
            .map(Some)
            .map_err(|error| Reject::invalid(format!("invalid statusDetails: {error}"))),
    }
}

fn not_found(thing: &ThingName, job: &str) -> Reject {
    Reject::new(
        RejectCode::ResourceNotFound,
        format!("no job execution of {job} on {thing}"),
    )
}

//! The small handlers (`rotate-logs`, `fail`, the fallback) and what the agent says about a job
//! the service ended.

use examples::say;
use jobs_core::runner::{Context, HandlerError, Outcome};
use jobs_core::{JobStatus, StatusDetails};

use super::Host;

pub(crate) fn rotate_logs(ctx: &Context, host: &Host) -> Result<Outcome, HandlerError> {
    let keep = ctx.document().to_value()["keep"].as_u64().unwrap_or(5);
    say!("agent: {} rotating logs, keeping {keep}", ctx.job_id());
    host.work(ctx, 5);
    Ok(Outcome::succeeded().with_details(StatusDetails::from_pairs([("kept", keep.to_string())])?))
}

pub(crate) fn fail(ctx: &Context) -> Result<Outcome, HandlerError> {
    say!("agent: {} fails on purpose", ctx.job_id());
    let reason = StatusDetails::from_pairs([("reason", "asked to fail")])?;
    Ok(Outcome::failed().with_details(reason))
}

/// Documents no handler takes: REJECTED, with the reason printed and reported.
pub(crate) fn unsupported(ctx: &Context) -> Result<Outcome, HandlerError> {
    let reason = match ctx.operation() {
        Some(operation) => format!(
            "unsupported operation {operation:?} (this agent knows rotate-logs, \
             install-firmware, fail)"
        ),
        None => "no \"operation\" field in the document".to_owned(),
    };
    say!("agent: {} REJECTED: {reason}", ctx.job_id());
    rejected(reason)
}

/// `REJECTED` with `reason` in the status details.
pub(crate) fn rejected(reason: String) -> Result<Outcome, HandlerError> {
    Ok(Outcome::rejected().with_details(StatusDetails::from_pairs([("reason", reason)])?))
}

/// `FAILED` with `reason` in the status details.
pub(crate) fn failed(reason: String) -> Result<Outcome, HandlerError> {
    Ok(Outcome::failed().with_details(StatusDetails::from_pairs([("reason", reason)])?))
}

/// Says that the service ended the job and how, and returns an outcome that is not reported
/// (the runner reports nothing for an execution the service ended).
pub(crate) fn stopped_by_service(ctx: &Context) -> Result<Outcome, HandlerError> {
    say!(
        "agent: {} {}; stopping",
        ctx.job_id(),
        ended_by_service(ctx)
    );
    Ok(Outcome::failed())
}

/// What the service did to a canceled execution, from the state its refusal of one more
/// progress update carries (AWS names the execution's status there): "canceled in the cloud",
/// "timed out", "removed".
fn ended_by_service(ctx: &Context) -> String {
    let probe = StatusDetails::from_pairs([("step", "stopping")]).unwrap_or_default();
    let status = match ctx.progress(probe) {
        Err(error) => error
            .rejection()
            .and_then(|rejection| rejection.execution_state.as_ref())
            .and_then(|state| state.status.clone()),
        Ok(()) => None,
    };
    match status {
        Some(JobStatus::Canceled) => "canceled in the cloud".to_owned(),
        Some(JobStatus::TimedOut) => {
            "timed out (TIMED_OUT: a step or in-progress timer ran out)".to_owned()
        }
        Some(JobStatus::Removed) => "removed in the cloud".to_owned(),
        Some(other) => format!("ended by the service ({other})"),
        None => "ended by the service".to_owned(),
    }
}

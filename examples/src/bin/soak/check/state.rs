//! The service's final state: as AWS would give it, and as `on_ended` said.

use jobs_core::JobStatus;
use jobs_core::runner::Ending;

use super::{Findings, Index, Observed};
use crate::ledger::{EndRecord, Returned};
use crate::plan::Act;
use crate::report::Counts;

/// The terminal statuses only the service sets (`None`: deleted).
fn service_made(status: Option<&JobStatus>) -> bool {
    status.is_none_or(|status| {
        matches!(
            status,
            JobStatus::Canceled | JobStatus::TimedOut | JobStatus::Removed
        )
    })
}

/// Whether `ending` agrees with the service's final state of the execution (`None`: deleted).
fn agrees(ending: &Ending, status: Option<&JobStatus>) -> bool {
    match ending {
        Ending::Reported(reported) => Some(reported) == status && !service_made(status),
        Ending::EndedByService(Some(ended)) => Some(ended) == status && service_made(status),
        Ending::EndedByService(None) | Ending::LeftInProgress => service_made(status),
        Ending::Unconfirmed => status.is_some_and(JobStatus::is_terminal),
        _ => false,
    }
}

fn name(status: Option<&JobStatus>) -> String {
    status.map_or_else(|| "deleted".to_owned(), ToString::to_string)
}

/// Every execution is in the state AWS would give it.
pub(super) fn service_state(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &mut Counts,
) {
    if index.finals.len() != o.plan.executions() {
        findings.fail(
            None,
            format!(
                "the service holds {} executions and deleted {}, the plan made {}",
                o.executions.len(),
                o.ledger.deletions_made.len(),
                o.plan.executions()
            ),
        );
    }
    for (key, info) in &index.finals {
        let status = info.map(|i| &i.status);
        *counts.by_status.entry(name(status)).or_default() += 1;
        let Some(mut expected) = o.plan.get(&key.job).and_then(|p| p.expected(key.number)) else {
            findings.fail(Some(key), format!("{key} is not in the plan"));
            continue;
        };
        let act = o
            .plan
            .get(&key.job)
            .and_then(|p| p.run(key.number))
            .map(|r| r.act);
        if act == Some(Act::CancelLate) && o.ledger.late_cancels.get(key) != Some(&true) {
            // The handler returned when the broker was up: no cancel was made.
            expected.status = Some(JobStatus::Succeeded);
        }
        let reason = info
            .and_then(|i| i.status_details.as_ref())
            .and_then(|d| d.get("reason"))
            .map(str::to_owned);
        if status != expected.status.as_ref() {
            findings.fail(
                Some(key),
                format!(
                    "{key} ended {} (reason {reason:?}); AWS would give it {}",
                    name(status),
                    name(expected.status.as_ref())
                ),
            );
        } else if expected.reason.is_some() && reason != expected.reason {
            findings.fail(
                Some(key),
                format!(
                    "{key} ended {} with reason {reason:?}, expected {:?}",
                    name(status),
                    expected.reason
                ),
            );
        }
    }
}

/// Per execution: one final ending that agrees with the service (or none, when the service
/// ended it while no runner held it); cancels and timeouts reached a handler.
pub(super) fn service_endings(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &mut Counts,
) {
    for (key, info) in &index.finals {
        let status = info.map(|i| &i.status);
        let mine = index.endings_of.get(key).cloned().unwrap_or_default();
        // Reported and EndedByService settle an execution; Unconfirmed and LeftInProgress
        // leave it to a later runner, if the service still has it pending.
        let settled: Vec<&EndRecord> = mine
            .iter()
            .copied()
            .filter(|e| matches!(e.ending, Ending::Reported(_) | Ending::EndedByService(_)))
            .collect();
        let last = mine.last().map(|e| &e.ending);
        let unheld =
            settled.is_empty() && last == Some(&Ending::LeftInProgress) && service_made(status);
        let all = || mine.iter().map(|e| &e.ending).collect::<Vec<_>>();
        match settled.as_slice() {
            [one] if !agrees(&one.ending, status) => findings.fail(
                Some(key),
                format!(
                    "{key}: on_ended said {:?}, the service holds {}",
                    one.ending,
                    name(status)
                ),
            ),
            [one] if last != Some(&one.ending) => findings.fail(
                Some(key),
                format!("{key}: on_ended again after it was settled: {:?}", all()),
            ),
            [_] => {}
            [] if unheld => counts.unheld += 1,
            [] if last == Some(&Ending::Unconfirmed)
                && status.is_some_and(JobStatus::is_terminal) =>
            {
                counts.unconfirmed += 1;
            }
            _ => findings.fail(
                Some(key),
                format!(
                    "{key} ({}): {} settling endings (on_ended: {:?})",
                    name(status),
                    settled.len(),
                    all()
                ),
            ),
        }
        let act = o
            .plan
            .get(&key.job)
            .and_then(|p| p.run(key.number))
            .map(|r| r.act);
        if let Some(act @ (Act::Cancel | Act::Remove | Act::Delete | Act::Timeout)) = act {
            let saw = index.calls.get(key).is_some_and(|list| {
                list.iter()
                    .any(|c| matches!(c.returned, Some((_, Returned::Canceled))))
            });
            if saw {
                *counts.seen.entry(act).or_default() += 1;
            } else if !unheld {
                findings.fail(
                    Some(key),
                    format!(
                        "{key} ({}) ended while its handler ran, and the handler never saw it",
                        name(status)
                    ),
                );
            }
        }
    }
}

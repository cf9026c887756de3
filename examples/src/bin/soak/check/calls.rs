//! Handler calls, side effects and `on_ended` calls, by execution and runner.

use jobs_core::runner::Ending;

use super::{Findings, Index, Observed};
use crate::ledger::{Call, Cause, Key, Ledger, Returned};
use crate::report::Counts;

/// Handler calls and side effects: one effect per execution; every second run explained.
pub(super) fn calls(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &mut Counts,
) {
    for (key, list) in &index.calls {
        if !index.finals.contains_key(*key) {
            findings.fail(
                Some(key),
                format!("{key} ran, but the service has no such execution"),
            );
        }
        let effects = o.ledger.effects.get(*key).copied().unwrap_or(0);
        if effects != 1 {
            findings.fail(Some(key), format!("{key}: {effects} side effects"));
        }
        for pair in list.windows(2) {
            let [prev, next] = pair else { continue };
            match rerun_cause(key, prev, next, index, o.ledger) {
                Ok(cause) => *counts.second_runs.entry(cause).or_default() += 1,
                Err(why) => {
                    counts.duplicates += 1;
                    findings.fail(Some(key), format!("{key} ran again: {why}"));
                }
            }
        }
        for call in list {
            if let Some((_, how @ (Returned::GaveUp | Returned::TimerNotArmed))) = call.returned {
                findings.fail(Some(key), format!("{key}: its handler {how:?}"));
            }
            if call.returned.is_none() {
                findings.fail(
                    Some(key),
                    format!(
                        "{key}: the handler run by runner {} never returned",
                        call.generation
                    ),
                );
            }
        }
    }
    for key in index.finals.keys() {
        let handled = o
            .plan
            .get(&key.job)
            .is_some_and(|p| !p.unhandled && p.run(key.number).is_some());
        if handled && !index.calls.contains_key(key) {
            findings.fail(Some(key), format!("{key}: its handler never ran"));
        }
    }
}

/// Why `next` ran an execution that `prev` ran before, or why that is a duplicate.
fn rerun_cause(
    key: &Key,
    prev: &Call,
    next: &Call,
    index: &Index<'_>,
    ledger: &Ledger,
) -> Result<&'static str, String> {
    if prev.generation == next.generation {
        return Err(format!("twice by runner {}", prev.generation));
    }
    let Some(teardown) = index.teardowns.get(&prev.generation) else {
        return Err(format!(
            "runner {} ran it before and was never stopped",
            prev.generation
        ));
    };
    if teardown.cause == Cause::Final {
        return Err("after the final stop".to_owned());
    }
    if !next.resumed {
        return Err("the second run was not marked resumed".to_owned());
    }
    let ending = index
        .endings
        .get(&(key, prev.generation))
        .and_then(|list| list.first())
        .map(|e| &e.ending);
    match ending {
        Some(Ending::LeftInProgress) => {
            if ledger.crashed.get(key) == Some(&prev.generation) {
                Ok("crashed")
            } else if prev.returned.is_none_or(|(at, _)| at > teardown.stopped_at) {
                Ok(match teardown.cause {
                    Cause::Reboot => "abandoned at a reboot",
                    _ => "abandoned at another handler's crash",
                })
            } else {
                Ok("outcome unreported at a teardown")
            }
        }
        Some(Ending::Unconfirmed) => Ok("report unconfirmed at a teardown"),
        Some(other) => Err(format!(
            "runner {} had ended it as {other:?}",
            prev.generation
        )),
        None => Err(format!(
            "runner {} ran it before and never ended it",
            prev.generation
        )),
    }
}

/// `on_ended`: once per execution and runner, for every execution a runner ran, nothing left
/// at the final stop.
pub(super) fn endings(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &mut Counts,
) {
    for end in &o.ledger.endings {
        *counts.endings.entry(ending_name(&end.ending)).or_default() += 1;
        let last = index.torn_down_by(end.generation) == Some(Cause::Final);
        if last && matches!(end.ending, Ending::LeftInProgress | Ending::Unconfirmed) {
            findings.fail(
                Some(&end.key),
                format!(
                    "{}: runner {} still held it at the final stop ({:?})",
                    end.key, end.generation, end.ending
                ),
            );
        }
    }
    for ((key, generation), list) in &index.endings {
        if list.len() > 1 {
            findings.fail(
                Some(key),
                format!(
                    "{key}: on_ended called {} times by runner {generation}",
                    list.len()
                ),
            );
        }
    }
    for call in &o.ledger.calls {
        if !index.endings.contains_key(&(&call.key, call.generation)) {
            findings.fail(
                Some(&call.key),
                format!(
                    "{}: runner {} ran it but never called on_ended for it",
                    call.key, call.generation
                ),
            );
        }
    }
}

fn ending_name(ending: &Ending) -> &'static str {
    match ending {
        Ending::Reported(_) => "Reported",
        Ending::EndedByService(Some(_)) => "EndedByService(status)",
        Ending::EndedByService(None) => "EndedByService(None)",
        Ending::Unconfirmed => "Unconfirmed",
        Ending::LeftInProgress => "LeftInProgress",
        _ => "unknown",
    }
}

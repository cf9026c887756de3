//! Reports during outages, what the service received, and whether every scenario happened.

use std::collections::BTreeSet;

use jobs_core::runner::Ending;

use super::{Findings, Index, OUTAGE_SHARE_MIN, Observed};
use crate::chaos::OutageKind;
use crate::ledger::{Cause, Returned};
use crate::plan::Act;
use crate::report::Counts;

/// More terminal updates than this about one execution is a storm.
const STORM: u32 = 10;

/// The share of terminal reports whose handler returned while the broker was down.
pub(super) fn outage_reports(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &mut Counts,
) {
    for end in &o.ledger.endings {
        if !matches!(end.ending, Ending::Reported(_) | Ending::Unconfirmed) {
            continue;
        }
        let returned = index.calls.get(&end.key).and_then(|list| {
            list.iter()
                .rev()
                .find(|c| c.generation == end.generation)
                .and_then(|c| c.returned)
        });
        let Some((at, Returned::Outcome)) = returned else {
            continue;
        };
        counts.reports += 1;
        let took = end.at.saturating_duration_since(at);
        counts.report_latency.push(took);
        counts
            .report_uptime
            .push(took.saturating_sub(o.outages.down_between(at, end.at)));
        let during = o.outages.during(at);
        if let Some(outage) = during {
            *counts.reports_during.entry(outage.kind).or_default() += 1;
        }
        let run = o.plan.get(&end.key.job).and_then(|p| p.run(end.key.number));
        if run.is_some_and(|r| r.outage.is_some()) {
            counts.timed_to_outage += 1;
            counts.timed_in_outage += usize::from(during.is_some());
            let last = o.outages.intervals().iter().map(|i| i.end).max();
            counts.timed_after_last += usize::from(last.is_some_and(|last| at > last));
        }
    }
    // OTA mode times no handler to an outage: its share is printed, not required.
    if o.plan.file.is_none()
        && !o.outages.intervals().is_empty()
        && counts.outage_share() < OUTAGE_SHARE_MIN
    {
        findings.fail(
            None,
            format!(
                "only {:.0} % of terminal reports happened during an outage (at least {:.0} % wanted)",
                counts.outage_share() * 100.0,
                OUTAGE_SHARE_MIN * 100.0
            ),
        );
    }
}

/// What the service received: every request names its execution; no storms.
pub(super) fn requests(o: &Observed<'_>, findings: &mut Findings, counts: &mut Counts) {
    counts.unnumbered = o
        .received
        .job_requests
        .iter()
        .filter(|(key, _)| key.number == 0)
        .map(|(_, n)| n)
        .sum();
    if counts.unnumbered > 0 {
        findings.fail(
            None,
            format!(
                "{} describes or updates named no execution number",
                counts.unnumbered
            ),
        );
    }
    for (key, &n) in &o.received.terminal_updates {
        if n > STORM {
            findings.fail(
                Some(key),
                format!("{key}: {n} terminal updates reached the service"),
            );
        }
    }
}

/// The run did what it claims to test: with every scenario in the plan, each happened.
pub(super) fn coverage(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &Counts,
) {
    let mut missing = Vec::new();
    if o.plan.has_every_scenario() {
        if counts.seen.get(&Act::Cancel).is_none_or(|&n| n == 0) {
            missing.push("a cancel seen by its handler");
        }
        if counts.seen.get(&Act::Timeout).is_none_or(|&n| n == 0) {
            missing.push("a step timeout seen by its handler");
        }
        if counts.seen.get(&Act::Remove).is_none_or(|&n| n == 0) {
            missing.push("a removal seen by its handler");
        }
        if counts.seen.get(&Act::Delete).is_none_or(|&n| n == 0) {
            missing.push("a deletion seen by its handler");
        }
        if !o.ledger.late_cancels.values().any(|&made| made) {
            missing.push("a cancel while a report waited out an outage");
        }
        if o.ledger.reruns_queued.is_empty() {
            missing.push("a re-run");
        }
        if counts.second_runs.get("crashed").is_none_or(|&n| n == 0) {
            missing.push("a crashed execution resumed");
        }
    }
    let causes: BTreeSet<Cause> = index.teardowns.values().map(|t| t.cause).collect();
    if o.reboots > 0 && !causes.contains(&Cause::Reboot) {
        missing.push("a reboot");
    }
    let kinds: BTreeSet<OutageKind> = o.outages.intervals().iter().map(|i| i.kind).collect();
    if o.kills > 0 && !kinds.contains(&OutageKind::Kill) {
        missing.push("a kill");
    }
    if o.freezes > 0 && !kinds.contains(&OutageKind::Freeze) {
        missing.push("a freeze");
    }
    for (kind, wanted, name) in [
        (OutageKind::Kill, o.kills, "a terminal report during a kill"),
        (
            OutageKind::Freeze,
            o.freezes,
            "a terminal report during a freeze",
        ),
    ] {
        // OTA mode times no report to an outage.
        if wanted > 0
            && o.plan.file.is_none()
            && counts.reports_during.get(&kind).is_none_or(|&n| n == 0)
        {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        findings.fail(None, format!("the run never had {}", missing.join(", ")));
    }
}

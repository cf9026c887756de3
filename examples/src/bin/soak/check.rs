//! The checks at the end of a run: what the service holds against the plan, and everything the
//! ledger recorded — handler calls, side effects, endings, teardowns — against both.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use jobs_core::JobStatus;
use jobs_core::runner::Ending;
use jobs_mock::service::ExecutionInfo;

use crate::chaos::{OutageKind, Outages};
use crate::device::JOBS_TIMEOUT;
use crate::ledger::{Call, Cause, EndRecord, Generation, Key, Ledger, Returned, Teardown};
use crate::plan::{Act, Plan};
use crate::report::Counts;
use crate::tap::Received;

/// The share of terminal reports that must happen during outages.
pub(crate) const OUTAGE_SHARE_MIN: f64 = 0.25;

/// More terminal updates than this about one execution is a storm.
const STORM: u32 = 10;

/// What the run observed.
pub(crate) struct Observed<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) ledger: &'a Ledger,
    pub(crate) received: &'a Received,
    pub(crate) outages: &'a Outages,
    /// The service's final state.
    pub(crate) executions: &'a [ExecutionInfo],
    /// When the abandoned handlers were released.
    pub(crate) released_at: Instant,
    /// When the run started: times are printed from here.
    pub(crate) started: Instant,
    /// The kills, freezes and reboots asked for.
    pub(crate) kills: usize,
    pub(crate) freezes: usize,
    pub(crate) reboots: usize,
}

/// The failures found, and the executions they concern (whose history is printed).
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub(crate) failures: Vec<String>,
    pub(crate) keys: BTreeSet<Key>,
}

impl Findings {
    pub(crate) fn fail(&mut self, key: Option<&Key>, failure: String) {
        if let Some(key) = key {
            self.keys.insert(key.clone());
        }
        self.failures.push(failure);
    }
}

pub(crate) fn key_of(info: &ExecutionInfo) -> Key {
    Key {
        thing: info.thing_name.to_string(),
        job: info.job_id.to_string(),
        number: info.execution_number,
    }
}

/// The ledger, indexed.
struct Index<'a> {
    /// Handler calls by execution, in the order they started.
    calls: BTreeMap<&'a Key, Vec<&'a Call>>,
    /// Endings by execution and runner.
    endings: HashMap<(&'a Key, Generation), Vec<&'a EndRecord>>,
    /// Endings by execution.
    endings_of: HashMap<&'a Key, Vec<&'a EndRecord>>,
    teardowns: HashMap<Generation, &'a Teardown>,
}

impl<'a> Index<'a> {
    fn new(ledger: &'a Ledger) -> Self {
        let mut calls: BTreeMap<&Key, Vec<&Call>> = BTreeMap::new();
        for call in &ledger.calls {
            calls.entry(&call.key).or_default().push(call);
        }
        for list in calls.values_mut() {
            list.sort_by_key(|call| call.started);
        }
        let mut endings: HashMap<(&Key, Generation), Vec<&EndRecord>> = HashMap::new();
        let mut endings_of: HashMap<&Key, Vec<&EndRecord>> = HashMap::new();
        for end in &ledger.endings {
            endings
                .entry((&end.key, end.generation))
                .or_default()
                .push(end);
            endings_of.entry(&end.key).or_default().push(end);
        }
        let teardowns = ledger.teardowns.iter().map(|t| (t.generation, t)).collect();
        Self {
            calls,
            endings,
            endings_of,
            teardowns,
        }
    }

    fn torn_down_by(&self, generation: Generation) -> Option<Cause> {
        self.teardowns.get(&generation).map(|t| t.cause)
    }
}

fn service_made(status: &JobStatus) -> bool {
    matches!(
        status,
        JobStatus::Canceled | JobStatus::TimedOut | JobStatus::Removed
    )
}

/// Whether `ending` agrees with the service's final state of the execution.
fn agrees(ending: &Ending, status: &JobStatus) -> bool {
    match ending {
        Ending::Reported(reported) => reported == status && !service_made(status),
        Ending::EndedByService(Some(ended)) => ended == status && service_made(status),
        Ending::EndedByService(None) | Ending::LeftInProgress => service_made(status),
        Ending::Unconfirmed => status.is_terminal(),
        _ => false,
    }
}

/// Runs every check; returns what failed and the counts to print.
pub(crate) fn check(o: &Observed<'_>) -> (Findings, Counts) {
    let mut findings = Findings::default();
    let mut counts = Counts::default();
    for problem in o.ledger.problems.iter().chain(&o.ledger.runner_errors) {
        findings.fail(None, problem.clone());
    }
    findings.keys.extend(o.ledger.problem_keys.iter().cloned());
    let index = Index::new(o.ledger);
    service_state(o, &mut findings, &mut counts);
    calls(o, &index, &mut findings, &mut counts);
    endings(o, &index, &mut findings, &mut counts);
    service_endings(o, &index, &mut findings, &mut counts);
    outage_reports(o, &index, &mut findings, &mut counts);
    requests(o, &mut findings, &mut counts);
    coverage(o, &index, &mut findings, &counts);
    counts.fill(o, &index.calls);
    (findings, counts)
}

/// Every execution is in the state AWS would give it.
fn service_state(o: &Observed<'_>, findings: &mut Findings, counts: &mut Counts) {
    if o.executions.len() != o.plan.executions() {
        findings.fail(
            None,
            format!(
                "the service holds {} executions, the plan made {}",
                o.executions.len(),
                o.plan.executions()
            ),
        );
    }
    for info in o.executions {
        let key = key_of(info);
        *counts.by_status.entry(info.status.to_string()).or_default() += 1;
        let Some(mut expected) = o.plan.get(&key.job).and_then(|p| p.expected(key.number)) else {
            findings.fail(Some(&key), format!("{key} is not in the plan"));
            continue;
        };
        let act = o
            .plan
            .get(&key.job)
            .and_then(|p| p.run(key.number))
            .map(|r| r.act);
        if act == Some(Act::CancelLate) && o.ledger.late_cancels.get(&key) != Some(&true) {
            // The handler returned when the broker was up: no cancel was made.
            expected.status = JobStatus::Succeeded;
        }
        let reason = info
            .status_details
            .as_ref()
            .and_then(|d| d.get("reason"))
            .map(str::to_owned);
        if info.status != expected.status {
            findings.fail(
                Some(&key),
                format!(
                    "{key} ended {} (reason {reason:?}); AWS would give it {}",
                    info.status, expected.status
                ),
            );
        } else if expected.reason.is_some() && reason != expected.reason {
            findings.fail(
                Some(&key),
                format!(
                    "{key} ended {} with reason {reason:?}, expected {:?}",
                    info.status, expected.reason
                ),
            );
        }
    }
}

/// Handler calls and side effects: one effect per execution; every second run explained.
fn calls(o: &Observed<'_>, index: &Index<'_>, findings: &mut Findings, counts: &mut Counts) {
    let service: BTreeSet<Key> = o.executions.iter().map(key_of).collect();
    for (key, list) in &index.calls {
        if !service.contains(*key) {
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
    for info in o.executions {
        let key = key_of(info);
        let handled = o
            .plan
            .get(&key.job)
            .is_some_and(|p| !p.unhandled && p.run(key.number).is_some());
        if handled && !index.calls.contains_key(&key) {
            findings.fail(Some(&key), format!("{key}: its handler never ran"));
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
fn endings(o: &Observed<'_>, index: &Index<'_>, findings: &mut Findings, counts: &mut Counts) {
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

/// Per execution: one final ending that agrees with the service (or none, when the service
/// ended it while no runner held it); cancels and timeouts reached a handler.
fn service_endings(
    o: &Observed<'_>,
    index: &Index<'_>,
    findings: &mut Findings,
    counts: &mut Counts,
) {
    for info in o.executions {
        let key = key_of(info);
        let mine = index.endings_of.get(&key).cloned().unwrap_or_default();
        // Reported and EndedByService settle an execution; Unconfirmed and LeftInProgress
        // leave it to a later runner, if the service still has it pending.
        let settled: Vec<&EndRecord> = mine
            .iter()
            .copied()
            .filter(|e| matches!(e.ending, Ending::Reported(_) | Ending::EndedByService(_)))
            .collect();
        let last = mine.last().map(|e| &e.ending);
        let unheld = settled.is_empty()
            && last == Some(&Ending::LeftInProgress)
            && service_made(&info.status);
        let all = || mine.iter().map(|e| &e.ending).collect::<Vec<_>>();
        match settled.as_slice() {
            [one] if !agrees(&one.ending, &info.status) => findings.fail(
                Some(&key),
                format!(
                    "{key}: on_ended said {:?}, the service holds {}",
                    one.ending, info.status
                ),
            ),
            [one] if last != Some(&one.ending) => findings.fail(
                Some(&key),
                format!("{key}: on_ended again after it was settled: {:?}", all()),
            ),
            [_] => {}
            [] if unheld => counts.unheld += 1,
            [] if last == Some(&Ending::Unconfirmed) && info.status.is_terminal() => {
                counts.unconfirmed += 1;
            }
            _ => findings.fail(
                Some(&key),
                format!(
                    "{key} ({}): {} settling endings (on_ended: {:?})",
                    info.status,
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
        if let Some(act @ (Act::Cancel | Act::Remove | Act::Timeout)) = act {
            let saw = index.calls.get(&key).is_some_and(|list| {
                list.iter()
                    .any(|c| matches!(c.returned, Some((_, Returned::Canceled))))
            });
            if saw {
                *counts.seen.entry(act).or_default() += 1;
            } else if !unheld {
                findings.fail(
                    Some(&key),
                    format!(
                        "{key} ({}) ended while its handler ran, and the handler never saw it",
                        info.status
                    ),
                );
            }
        }
    }
}

/// The share of terminal reports whose handler returned while the broker was down.
fn outage_reports(
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
    if !o.outages.intervals().is_empty() && counts.outage_share() < OUTAGE_SHARE_MIN {
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
fn requests(o: &Observed<'_>, findings: &mut Findings, counts: &mut Counts) {
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
fn coverage(o: &Observed<'_>, index: &Index<'_>, findings: &mut Findings, counts: &Counts) {
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
        if wanted > 0 && counts.reports_during.get(&kind).is_none_or(|&n| n == 0) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        findings.fail(None, format!("the run never had {}", missing.join(", ")));
    }
}

/// Whether a runner took longer than its documented bound to stop.
pub(crate) fn over_bound(teardown: &Teardown) -> bool {
    teardown.took > teardown.grace + JOBS_TIMEOUT
}

/// The outages within `margin` of `from..=to`.
pub(crate) fn outages_near(
    outages: &Outages,
    from: Instant,
    to: Instant,
    margin: Duration,
) -> Vec<(OutageKind, Instant, Instant)> {
    outages
        .intervals()
        .iter()
        .filter(|i| i.end + margin >= from && i.start <= to + margin)
        .map(|i| (i.kind, i.start, i.end))
        .collect()
}

//! The checks at the end of a run: everything the ledger recorded against the service's final
//! state, and every count printed.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use jobs_core::JobStatus;
use jobs_core::runner::Ending;
use jobs_mock::service::ExecutionInfo;

use crate::chaos::{OutageKind, Outages};
use crate::device::JOBS_TIMEOUT;
use crate::ledger::{Call, Cause, EndRecord, Generation, Key, Ledger, Returned, Teardown};
use crate::plan::{Act, Plan};
use crate::tap::Received;

/// The share of terminal reports that must happen during outages.
const OUTAGE_SHARE_MIN: f64 = 0.25;

/// More terminal updates than this about one execution is a storm.
const STORM: u32 = 10;

/// What the run observed, for [`check`].
pub(crate) struct Observed<'a> {
    pub(crate) plan: &'a Plan,
    pub(crate) ledger: &'a Ledger,
    pub(crate) received: &'a Received,
    pub(crate) outages: &'a Outages,
    pub(crate) executions: &'a [ExecutionInfo],
    /// When the abandoned handlers were released.
    pub(crate) released_at: Instant,
    /// When the run started: times are printed from here.
    pub(crate) started: Instant,
}

pub(crate) fn key_of(info: &ExecutionInfo) -> Key {
    Key {
        thing: info.thing_name.to_string(),
        job: info.job_id.to_string(),
        number: info.execution_number,
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
        Ending::Reported(reported) => reported == status,
        Ending::EndedByService(Some(ended)) => ended == status && service_made(status),
        Ending::EndedByService(None) | Ending::LeftInProgress => service_made(status),
        Ending::Unconfirmed => status.is_terminal(),
        _ => false,
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

/// Checks everything and prints the counts.
pub(crate) fn check(o: &Observed<'_>, out: &mut String) -> Findings {
    let mut findings = Findings::default();
    for problem in o.ledger.problems.iter().chain(&o.ledger.runner_errors) {
        findings.fail(None, problem.clone());
    }
    let ledger = o.ledger;

    let mut calls: BTreeMap<&Key, Vec<&Call>> = BTreeMap::new();
    for call in &ledger.calls {
        calls.entry(&call.key).or_default().push(call);
    }
    for list in calls.values_mut() {
        list.sort_by_key(|call| call.started);
    }
    let mut endings: HashMap<(&Key, Generation), Vec<&EndRecord>> = HashMap::new();
    for end in &ledger.endings {
        endings
            .entry((&end.key, end.generation))
            .or_default()
            .push(end);
    }
    let teardowns: HashMap<Generation, &Teardown> =
        ledger.teardowns.iter().map(|t| (t.generation, t)).collect();

    // The service's final state against the plan.
    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let service: HashMap<Key, &ExecutionInfo> =
        o.executions.iter().map(|e| (key_of(e), e)).collect();
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
        *by_status.entry(info.status.to_string()).or_default() += 1;
        let Some(expected) = o.plan.get(&key.job).and_then(|p| p.expected(key.number)) else {
            findings.fail(Some(&key), format!("{key} is not in the plan"));
            continue;
        };
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

    // Handler calls and side effects.
    let mut causes: BTreeMap<&str, usize> = BTreeMap::new();
    let mut duplicates = 0;
    for (key, list) in &calls {
        if !service.contains_key(*key) {
            findings.fail(
                Some(key),
                format!("{key} ran, but the service has no such execution"),
            );
        }
        let effects = ledger.effects.get(*key).copied().unwrap_or(0);
        if effects != 1 {
            findings.fail(Some(key), format!("{key}: {effects} side effects"));
        }
        for pair in list.windows(2) {
            let [prev, next] = pair else { continue };
            match rerun_cause(key, prev, next, &endings, &teardowns, ledger) {
                Ok(cause) => *causes.entry(cause).or_default() += 1,
                Err(why) => {
                    duplicates += 1;
                    findings.fail(Some(key), format!("{key} ran again: {why}"));
                }
            }
        }
    }
    for (key, plan_run) in o.executions.iter().map(|e| {
        let key = key_of(e);
        let run = o
            .plan
            .get(&key.job)
            .filter(|p| !p.unhandled)
            .and_then(|p| p.run(key.number));
        (key, run)
    }) {
        if plan_run.is_some() && !calls.contains_key(&key) {
            findings.fail(Some(&key), format!("{key}: its handler never ran"));
        }
    }

    // Endings.
    let mut ending_counts: BTreeMap<&str, usize> = BTreeMap::new();
    for end in &ledger.endings {
        *ending_counts.entry(ending_name(&end.ending)).or_default() += 1;
    }
    for ((key, generation), list) in &endings {
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
    for call in &ledger.calls {
        if !endings.contains_key(&(&call.key, call.generation)) {
            findings.fail(
                Some(&call.key),
                format!(
                    "{}: runner {} ran it but never called on_ended for it",
                    call.key, call.generation
                ),
            );
        }
    }
    let mut unheld = 0;
    for info in o.executions {
        let key = key_of(info);
        let mine: Vec<&EndRecord> = ledger.endings.iter().filter(|e| e.key == key).collect();
        let final_ones: Vec<&&EndRecord> = mine
            .iter()
            .filter(|e| e.ending != Ending::LeftInProgress)
            .collect();
        match final_ones.as_slice() {
            [one] => {
                if !agrees(&one.ending, &info.status) {
                    findings.fail(
                        Some(&key),
                        format!(
                            "{key}: on_ended said {:?}, the service holds {}",
                            one.ending, info.status
                        ),
                    );
                }
            }
            [] if !mine.is_empty() && service_made(&info.status) => unheld += 1,
            [] => findings.fail(
                Some(&key),
                format!(
                    "{key} ({}): no runner ended it (on_ended: {:?})",
                    info.status,
                    mine.iter().map(|e| &e.ending).collect::<Vec<_>>()
                ),
            ),
            many => findings.fail(
                Some(&key),
                format!(
                    "{key}: {} final endings: {:?}",
                    many.len(),
                    many.iter().map(|e| &e.ending).collect::<Vec<_>>()
                ),
            ),
        }
    }

    // Cancels and timeouts: a handler saw each one, unless no runner held the execution then.
    let mut seen = BTreeMap::<Act, usize>::new();
    for info in o.executions {
        let key = key_of(info);
        let Some(run) = o.plan.get(&key.job).and_then(|p| p.run(key.number)) else {
            continue;
        };
        if matches!(run.act, Act::Cancel | Act::Timeout) {
            let saw = calls.get(&key).is_some_and(|list| {
                list.iter()
                    .any(|c| matches!(c.returned, Some((_, Returned::Canceled))))
            });
            let held = ledger
                .endings
                .iter()
                .any(|e| e.key == key && e.ending != Ending::LeftInProgress);
            if saw {
                *seen.entry(run.act).or_default() += 1;
            } else if held {
                findings.fail(
                    Some(&key),
                    format!(
                        "{key} ({}) ended while its handler ran, and the handler never saw it",
                        info.status
                    ),
                );
            }
        }
        if let Some(list) = calls.get(&key) {
            for call in list {
                if let Some((_, how @ (Returned::GaveUp | Returned::TimerNotArmed))) = call.returned
                {
                    findings.fail(Some(&key), format!("{key}: its handler {how:?}"));
                }
            }
        }
    }

    // Terminal reports during outages.
    let (mut reports, mut during) = (0usize, BTreeMap::<OutageKind, usize>::new());
    for end in &ledger.endings {
        if !matches!(end.ending, Ending::Reported(_) | Ending::Unconfirmed) {
            continue;
        }
        let returned = calls.get(&end.key).and_then(|list| {
            list.iter()
                .rev()
                .find(|c| c.generation == end.generation)
                .and_then(|c| c.returned)
        });
        if let Some((at, Returned::Outcome)) = returned {
            reports += 1;
            if let Some(kind) = o.outages.during(at) {
                *during.entry(kind).or_default() += 1;
            }
        }
    }
    let in_outage: usize = during.values().sum();
    let share = if reports == 0 {
        0.0
    } else {
        in_outage as f64 / reports as f64
    };
    let intervals = o.outages.intervals();
    if !intervals.is_empty() && share < OUTAGE_SHARE_MIN {
        findings.fail(None, format!(
            "only {:.0} % of terminal reports happened during an outage (at least {:.0} % wanted)",
            share * 100.0,
            OUTAGE_SHARE_MIN * 100.0
        ));
    }

    // Abandoned handlers: every one returned.
    let mut abandoned = 0;
    let mut abandoned_released = 0;
    for call in &ledger.calls {
        let Some(teardown) = teardowns.get(&call.generation) else {
            continue;
        };
        let after_stop = call.returned.is_none_or(|(at, _)| at > teardown.stopped_at);
        if teardown.cause != Cause::Final && after_stop {
            abandoned += 1;
            if call.returned.is_some_and(|(at, _)| at >= o.released_at) {
                abandoned_released += 1;
            }
        }
        if call.returned.is_none() {
            findings.fail(
                Some(&call.key),
                format!(
                    "{}: the handler run by runner {} never returned",
                    call.key, call.generation
                ),
            );
        }
    }

    // Storms.
    let terminal_total: u32 = o.received.terminal_updates.values().sum();
    let terminal_max = o
        .received
        .terminal_updates
        .values()
        .copied()
        .max()
        .unwrap_or(0);
    for (key, &n) in &o.received.terminal_updates {
        if n > STORM {
            findings.fail(
                Some(key),
                format!("{key}: {n} terminal updates reached the service"),
            );
        }
    }

    // Counts.
    let mut teardown_causes = BTreeMap::<String, usize>::new();
    let mut took: Vec<Duration> = Vec::new();
    let mut over_bound = 0;
    for t in &ledger.teardowns {
        *teardown_causes.entry(t.cause.to_string()).or_default() += 1;
        took.push(t.took);
        if t.took > t.grace + JOBS_TIMEOUT {
            over_bound += 1;
        }
    }
    took.sort();
    let pick = |q: usize| {
        took.get((took.len().saturating_sub(1)) * q / 100)
            .map_or(0.0, |d| d.as_secs_f64())
    };
    let resumed = ledger.calls.iter().filter(|c| c.resumed).count();
    let effects: u32 = ledger.effects.values().sum();
    let acts = |act: Act| {
        o.executions
            .iter()
            .filter(|e| {
                let key = key_of(e);
                o.plan
                    .get(&key.job)
                    .filter(|p| !p.unhandled)
                    .and_then(|p| p.run(key.number))
                    .is_some_and(|r| r.act == act)
            })
            .count()
    };
    let unhandled = o.plan.jobs.iter().filter(|p| p.unhandled).count();
    let mut refused = BTreeMap::<String, usize>::new();
    for plan in &o.plan.jobs {
        if let Some((code, times)) = &plan.refused {
            *refused.entry(format!("{code} x{times}")).or_default() += 1;
        }
    }
    let while_running = ledger
        .reruns_queued
        .iter()
        .filter(|(key, at)| {
            calls.get(key).is_some_and(|list| {
                list.iter()
                    .any(|c| c.returned.is_none_or(|(r, _)| r > **at))
            })
        })
        .count();
    let down: Duration = intervals.iter().map(|i| i.end - i.start).sum();
    let kills = intervals
        .iter()
        .filter(|i| i.kind == OutageKind::Kill)
        .count();
    let w = |out: &mut String, line: String| {
        let _ = writeln!(out, "  {line}");
    };
    w(out, format!("executions by final status: {by_status:?}"));
    w(
        out,
        format!(
            "on_ended: {} calls {ending_counts:?}; ended by the service while no runner held them: {unheld}",
            ledger.endings.len()
        ),
    );
    w(
        out,
        format!(
            "handler calls: {} ({resumed} resumed) over {} executions; side effects: {effects}; \
         second runs by cause: {causes:?}; duplicates: {duplicates}",
            ledger.calls.len(),
            calls.len()
        ),
    );
    w(
        out,
        format!(
            "runners: {} built; stopped by {teardown_causes:?}; stop took p50 {:.2} s, p90 {:.2} s, \
         max {:.2} s ({over_bound} over grace + one Jobs timeout)",
            ledger.teardowns.len(),
            pick(50),
            pick(90),
            pick(100)
        ),
    );
    w(
        out,
        format!(
            "abandoned handlers: {abandoned} ({} crashed on purpose), {abandoned_released} returned \
         only at the final release; all returned: {}",
            ledger.crashed.len(),
            ledger.calls.iter().all(|c| c.returned.is_some())
        ),
    );
    w(
        out,
        format!(
            "cancels: {} planned, {} asked, {} made, {} seen by the handler; timeouts: {} planned, \
         {} timers armed, {} seen by the handler",
            acts(Act::Cancel),
            ledger.cancels_asked.len(),
            ledger.cancels_made,
            seen.get(&Act::Cancel).unwrap_or(&0),
            acts(Act::Timeout),
            ledger.timers_armed,
            seen.get(&Act::Timeout).unwrap_or(&0)
        ),
    );
    w(
        out,
        format!(
            "re-runs (execution 2): {} planned, {} queued ({while_running} while execution 1's \
         handler still ran)",
            o.plan.jobs.iter().filter(|p| p.rerun).count(),
            ledger.reruns_queued.len()
        ),
    );
    w(
        out,
        format!(
            "failing handlers: {} errors, {} panics, {} rejects, {unhandled} unhandled operations; \
         refused updates injected: {refused:?}",
            acts(Act::Fail),
            acts(Act::Panic),
            acts(Act::Reject)
        ),
    );
    w(
        out,
        format!(
            "terminal reports of handler outcomes: {reports}, during outages: {in_outage} \
         ({during:?}) = {:.0} % (at least {:.0} % wanted)",
            share * 100.0,
            OUTAGE_SHARE_MIN * 100.0
        ),
    );
    w(
        out,
        format!(
            "outages: {kills} kills, {} freezes, {:.1} s down in all",
            intervals.len() - kills,
            down.as_secs_f64()
        ),
    );
    w(
        out,
        format!(
            "service received {} requests; terminal updates: {terminal_total} for {} executions \
         (max {terminal_max} for one)",
            o.received.requests,
            o.received.terminal_updates.len()
        ),
    );
    findings
}

/// Why `next` ran an execution that `prev` ran before, or why that is a duplicate.
fn rerun_cause(
    key: &Key,
    prev: &Call,
    next: &Call,
    endings: &HashMap<(&Key, Generation), Vec<&EndRecord>>,
    teardowns: &HashMap<Generation, &Teardown>,
    ledger: &Ledger,
) -> Result<&'static str, String> {
    if prev.generation == next.generation {
        return Err(format!("twice by runner {}", prev.generation));
    }
    let Some(teardown) = teardowns.get(&prev.generation) else {
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
    let ending = endings
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

/// Everything recorded about one execution, for a failure's report.
pub(crate) fn history(o: &Observed<'_>, key: &Key) -> String {
    let at = |t: Instant| {
        format!(
            "+{:.3} s",
            t.saturating_duration_since(o.started).as_secs_f64()
        )
    };
    let mut text = String::new();
    let plan = o.plan.get(&key.job);
    let _ = writeln!(
        text,
        "  {key}: plan {:?}",
        plan.map(|p| (p.rerun, p.unhandled, &p.refused, &p.runs))
    );
    let info = o.executions.iter().find(|e| key_of(e) == *key);
    let _ = writeln!(
        text,
        "    service: {:?}",
        info.map(|e| (&e.status, e.version_number, &e.status_details))
    );
    let mut generations = BTreeSet::new();
    for call in o.ledger.calls.iter().filter(|c| c.key == *key) {
        generations.insert(call.generation);
        let _ = writeln!(
            text,
            "    call by runner {}: resumed {}, started {}, returned {:?}",
            call.generation,
            call.resumed,
            at(call.started),
            call.returned.map(|(t, how)| (at(t), how))
        );
    }
    for end in o.ledger.endings.iter().filter(|e| e.key == *key) {
        generations.insert(end.generation);
        let _ = writeln!(
            text,
            "    on_ended by runner {}: {:?}",
            end.generation, end.ending
        );
    }
    for generation in generations {
        if let Some(t) = o
            .ledger
            .teardowns
            .iter()
            .find(|t| t.generation == generation)
        {
            let _ = writeln!(
                text,
                "    runner {generation}: stopped by a {} at {} (grace {:.2} s), run returned after {:.2} s",
                t.cause,
                at(t.stopped_at),
                t.grace.as_secs_f64(),
                t.took.as_secs_f64()
            );
        }
    }
    if let Some(rerun) = o.ledger.reruns_queued.get(key) {
        let _ = writeln!(text, "    its re-run was queued at {}", at(*rerun));
    }
    let _ = writeln!(
        text,
        "    terminal updates received: {:?}",
        o.received.terminal_updates.get(key)
    );
    let calls = o.ledger.calls.iter().filter(|c| c.key == *key);
    let from = calls.clone().map(|c| c.started).min();
    let to = calls.filter_map(|c| c.returned.map(|(t, _)| t)).max();
    if let (Some(from), Some(to)) = (from, to) {
        let near: Vec<String> = o
            .outages
            .intervals()
            .iter()
            .filter(|i| {
                i.end + Duration::from_secs(3) >= from && i.start <= to + Duration::from_secs(3)
            })
            .map(|i| format!("{:?} {}..{}", i.kind, at(i.start), at(i.end)))
            .collect();
        let _ = writeln!(text, "    outages around it: {near:?}");
    }
    text
}

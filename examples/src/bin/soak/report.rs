//! What a run prints: every count, and the history of each execution a failure concerns.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use crate::chaos::OutageKind;
use crate::check::{self, OUTAGE_SHARE_MIN, Observed, key_of};
use crate::ledger::{Call, Cause, Key};
use crate::plan::Act;

/// The counts of a run.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) by_status: BTreeMap<String, usize>,
    pub(crate) endings: BTreeMap<&'static str, usize>,
    /// Executions the service ended while no runner held them (their runner was torn down).
    pub(crate) unheld: usize,
    /// Executions whose last ending is `Unconfirmed` (the service holds a terminal status).
    pub(crate) unconfirmed: usize,
    pub(crate) second_runs: BTreeMap<&'static str, usize>,
    pub(crate) duplicates: usize,
    /// Cancels and timeouts a handler saw.
    pub(crate) seen: BTreeMap<Act, usize>,
    pub(crate) reports: usize,
    pub(crate) reports_during: BTreeMap<OutageKind, usize>,
    pub(crate) timed_to_outage: usize,
    pub(crate) timed_in_outage: usize,
    pub(crate) timed_after_last: usize,
    /// From a handler's return to the `on_ended` of its report.
    pub(crate) report_latency: Vec<Duration>,
    /// The same, counting only the time the broker was up.
    pub(crate) report_uptime: Vec<Duration>,
    pub(crate) unnumbered: u32,
    lines: Vec<String>,
}

impl Counts {
    pub(crate) fn outage_share(&self) -> f64 {
        let during: usize = self.reports_during.values().sum();
        if self.reports == 0 {
            0.0
        } else {
            during as f64 / self.reports as f64
        }
    }

    /// Counts what the checks did not, and renders every line.
    pub(crate) fn fill(&mut self, o: &Observed<'_>, calls: &BTreeMap<&Key, Vec<&Call>>) {
        let ledger = o.ledger;
        let mut lines = Vec::new();
        lines.push(format!("executions by final status: {:?}", self.by_status));
        lines.push(format!(
            "on_ended: {} calls {:?}; executions ended by the service while no runner held \
             them: {}, left unconfirmed: {}",
            ledger.endings.len(),
            self.endings,
            self.unheld,
            self.unconfirmed
        ));
        let effects: u32 = ledger.effects.values().sum();
        lines.push(format!(
            "handler calls: {} ({} resumed) over {} executions; side effects: {effects}; \
             second runs by cause: {:?}; duplicates: {}",
            ledger.calls.len(),
            ledger.calls.iter().filter(|c| c.resumed).count(),
            calls.len(),
            self.second_runs,
            self.duplicates
        ));
        let mut causes = BTreeMap::<String, usize>::new();
        let mut took: Vec<Duration> = Vec::new();
        for t in &ledger.teardowns {
            *causes.entry(t.cause.to_string()).or_default() += 1;
            took.push(t.took);
        }
        took.sort();
        let pick = |q: usize| {
            took.get(took.len().saturating_sub(1) * q / 100)
                .map_or(0.0, Duration::as_secs_f64)
        };
        lines.push(format!(
            "runners: {} stopped, by {causes:?}; run returned after the stop in p50 {:.2} s, \
             p90 {:.2} s, max {:.2} s ({} over the stop grace + one Jobs timeout)",
            ledger.teardowns.len(),
            pick(50),
            pick(90),
            pick(100),
            ledger
                .teardowns
                .iter()
                .filter(|t| check::over_bound(t))
                .count()
        ));
        let teardowns: BTreeMap<_, _> =
            ledger.teardowns.iter().map(|t| (t.generation, t)).collect();
        let abandoned: Vec<&Call> = ledger
            .calls
            .iter()
            .filter(|c| {
                teardowns.get(&c.generation).is_some_and(|t| {
                    t.cause != Cause::Final && c.returned.is_none_or(|(at, _)| at > t.stopped_at)
                })
            })
            .collect();
        lines.push(format!(
            "abandoned handlers: {} ({} crashed on purpose), {} of them returned only at the \
             final release; every handler returned: {}",
            abandoned.len(),
            ledger.crashed.len(),
            abandoned
                .iter()
                .filter(|c| c.returned.is_some_and(|(at, _)| at >= o.released_at))
                .count(),
            ledger.calls.iter().all(|c| c.returned.is_some())
        ));
        let planned = |act: Act| {
            o.plan
                .jobs
                .iter()
                .filter(|p| !p.unhandled)
                .flat_map(|p| &p.runs)
                .filter(|r| r.act == act)
                .count()
        };
        let seen = |act: Act| self.seen.get(&act).copied().unwrap_or(0);
        lines.push(format!(
            "cancels of running executions (CancelJobExecution, force): {} planned, {} made, {} \
             seen by the handler; removals (thing removed from the job): {} planned, {} made, \
             {} seen by the handler; deletions (DeleteJobExecution, force): {} planned, {} \
             made, {} seen by the handler; cancels while the report waited out an outage: {} \
             planned, {} made",
            planned(Act::Cancel),
            ledger.cancels_made,
            seen(Act::Cancel),
            planned(Act::Remove),
            ledger.removals_made,
            seen(Act::Remove),
            planned(Act::Delete),
            ledger.deletions_made.len(),
            seen(Act::Delete),
            planned(Act::CancelLate),
            ledger.late_cancels.values().filter(|&&made| made).count()
        ));
        lines.push(format!(
            "step timeouts: {} planned, {} timers armed, {} seen by the handler",
            planned(Act::Timeout),
            ledger.timers_armed,
            seen(Act::Timeout)
        ));
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
        lines.push(format!(
            "re-runs (execution 2, AssociateTargetsWithJob): {} planned, {} queued \
             ({while_running} while execution 1's handler still ran)",
            o.plan.jobs.iter().filter(|p| p.rerun).count(),
            ledger.reruns_queued.len()
        ));
        let mut refused = BTreeMap::<String, usize>::new();
        for plan in &o.plan.jobs {
            if let Some((code, times)) = &plan.refused {
                *refused.entry(format!("{code} x{times}")).or_default() += 1;
            }
        }
        lines.push(format!(
            "failing handlers: {} errors, {} panics, {} rejects, {} unhandled operations; \
             updates refused on purpose: {refused:?}",
            planned(Act::Fail),
            planned(Act::Panic),
            planned(Act::Reject),
            o.plan.jobs.iter().filter(|p| p.unhandled).count()
        ));
        lines.push(format!(
            "terminal reports of handler outcomes: {}, whose handler returned during an outage: \
             {} ({:?}) = {:.0} % ({}); timed to an outage: {}, of which in one: {}, after the \
             last: {}",
            self.reports,
            self.reports_during.values().sum::<usize>(),
            self.reports_during,
            self.outage_share() * 100.0,
            if o.plan.file.is_some() {
                "not required in OTA mode".to_owned()
            } else {
                format!("at least {:.0} % wanted", OUTAGE_SHARE_MIN * 100.0)
            },
            self.timed_to_outage,
            self.timed_in_outage,
            self.timed_after_last
        ));
        lines.push(format!(
            "a report took (from the handler's return to on_ended): {}; counting only the \
             time the broker was up: {}",
            spread(&mut self.report_latency),
            spread(&mut self.report_uptime)
        ));
        let intervals = o.outages.intervals();
        let kills = intervals
            .iter()
            .filter(|i| i.kind == OutageKind::Kill)
            .count();
        let down: Duration = intervals.iter().map(|i| i.end - i.start).sum();
        lines.push(format!(
            "outages: {kills} kills, {} freezes, {:.1} s down in all",
            intervals.len() - kills,
            down.as_secs_f64()
        ));
        let terminal: u32 = o.received.terminal_updates.values().sum();
        lines.push(format!(
            "the service received {} requests; terminal updates: {terminal} for {} executions \
             (at most {} for one); requests naming no execution number: {}",
            o.received.requests,
            o.received.terminal_updates.len(),
            o.received.terminal_updates.values().max().unwrap_or(&0),
            self.unnumbered
        ));
        self.lines = lines;
    }

    pub(crate) fn print(&self) {
        for line in &self.lines {
            println!("  {line}");
        }
    }
}

/// The median, 90th percentile and maximum of `values`.
fn spread(values: &mut [Duration]) -> String {
    values.sort();
    let pick = |q: usize| {
        values
            .get(values.len().saturating_sub(1) * q / 100)
            .map_or(0.0, Duration::as_secs_f64)
    };
    format!(
        "p50 {:.2} s, p90 {:.2} s, max {:.2} s",
        pick(50),
        pick(90),
        pick(100)
    )
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
    let calls: Vec<&Call> = o.ledger.calls.iter().filter(|c| c.key == *key).collect();
    for call in &calls {
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
            "    on_ended by runner {} at {}: {:?}",
            end.generation,
            at(end.at),
            end.ending
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
                "    runner {generation}: stopped by a {} at {} (grace {:.2} s); run returned \
                 after {:.2} s",
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
    let from = calls.iter().map(|c| c.started).min();
    let to = calls
        .iter()
        .filter_map(|c| c.returned.map(|(t, _)| t))
        .max();
    if let (Some(from), Some(to)) = (from, to) {
        let near: Vec<String> = check::outages_near(o.outages, from, to, Duration::from_secs(3))
            .into_iter()
            .map(|(kind, start, end)| format!("{kind:?} {}..{}", at(start), at(end)))
            .collect();
        let _ = writeln!(text, "    outages around it: {near:?}");
    }
    text
}

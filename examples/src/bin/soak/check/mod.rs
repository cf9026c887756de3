//! The checks at the end of a run: what the service holds against the plan, and everything the
//! ledger recorded — handler calls, side effects, endings, teardowns — against both.

mod calls;
mod outages;
mod state;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use jobs_mock::service::ExecutionInfo;

use crate::chaos::{OutageKind, Outages};
use crate::device::JOBS_TIMEOUT;
use crate::ledger::{Call, Cause, EndRecord, Generation, Key, Ledger, Teardown};
use crate::plan::Plan;
use crate::report::Counts;
use crate::tap::Received;

/// The share of terminal reports that must happen during outages.
pub(crate) const OUTAGE_SHARE_MIN: f64 = 0.25;

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
    /// Every execution at the end: its state on the service, `None` for the deleted ones.
    finals: BTreeMap<Key, Option<&'a ExecutionInfo>>,
}

impl<'a> Index<'a> {
    fn new(o: &Observed<'a>) -> Self {
        let ledger = o.ledger;
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
        let mut finals: BTreeMap<Key, Option<&ExecutionInfo>> = ledger
            .deletions_made
            .iter()
            .map(|key| (key.clone(), None))
            .collect();
        finals.extend(o.executions.iter().map(|e| (key_of(e), Some(e))));
        Self {
            calls,
            endings,
            endings_of,
            teardowns,
            finals,
        }
    }

    fn torn_down_by(&self, generation: Generation) -> Option<Cause> {
        self.teardowns.get(&generation).map(|t| t.cause)
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
    let index = Index::new(o);
    state::service_state(o, &index, &mut findings, &mut counts);
    calls::calls(o, &index, &mut findings, &mut counts);
    calls::endings(o, &index, &mut findings, &mut counts);
    state::service_endings(o, &index, &mut findings, &mut counts);
    outages::outage_reports(o, &index, &mut findings, &mut counts);
    outages::requests(o, &mut findings, &mut counts);
    outages::coverage(o, &index, &mut findings, &counts);
    counts.fill(o, &index.calls);
    (findings, counts)
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

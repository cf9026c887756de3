//! [`Sweep`]: a gateway's walk over its things, listing each one's pending executions at the
//! connection's publish pace, in a stable order, resumable.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;

use crate::{Error, Job, Jobs, ThingName};

/// One thing's turn in a [`Sweep`].
#[derive(Debug)]
#[non_exhaustive]
pub struct Swept {
    /// The thing.
    pub thing: ThingName,
    /// Its place in the sweep's order (0-based).
    pub index: usize,
    /// How many things the sweep walks.
    pub total: usize,
    /// Its pending executions, or why listing them failed.
    pub pending: Result<Vec<Job>, Error>,
}

/// Walks the things of a gateway in a stable order (by thing name), listing each one's pending
/// executions ([`Jobs::list`]) — after a start-up or a reconnect that lost the session, every
/// thing's [`Jobs::changed`] is true, and a gateway must learn its fleet's work without being
/// throttled. Each list goes through the client's publish pacing
/// ([`ClientBuilder::publish_rate`](crate::ClientBuilder::publish_rate)), so a sweep runs at
/// that pace (on AWS IoT Core, 10,000 things take at least 250 s at the default 40 requests a
/// second); several lists may be in flight at once so that the pace, not the round trip, sets
/// the speed. A sweep can stop early and resume where it stopped.
#[derive(Debug)]
pub struct Sweep {
    things: Vec<Jobs>,
    next: usize,
}

impl Sweep {
    /// A sweep over `things`, in the order of their names (a thing given twice is walked once).
    pub fn new(things: impl IntoIterator<Item = Jobs>) -> Self {
        let mut things: Vec<Jobs> = things.into_iter().collect();
        things.sort_by(|a, b| a.thing_name().cmp(b.thing_name()));
        things.dedup_by(|a, b| a.thing_name() == b.thing_name());
        Self { things, next: 0 }
    }

    /// Starts (or resumes) at `thing`: things whose names sort before it are skipped.
    #[must_use]
    pub fn resume_at(mut self, thing: &ThingName) -> Self {
        self.next = self
            .things
            .partition_point(|jobs| jobs.thing_name() < thing);
        self
    }

    /// How many things the sweep walks.
    pub fn len(&self) -> usize {
        self.things.len()
    }

    /// True if it walks no thing.
    pub fn is_empty(&self) -> bool {
        self.things.is_empty()
    }

    /// How many things were handed to the callback so far (the resume position).
    pub fn position(&self) -> usize {
        self.next
    }

    /// The next thing to list, if any: where a later [`resume_at`](Self::resume_at) would
    /// start.
    pub fn next_thing(&self) -> Option<&ThingName> {
        self.things.get(self.next).map(Jobs::thing_name)
    }

    /// Lists the remaining things with up to `in_flight` lists at once (at least 1), calling
    /// `each` on this thread for every thing, in order; stops early when `each` returns
    /// [`ControlFlow::Break`] (the lists already in flight are finished and dropped; the sweep
    /// resumes with the first thing `each` was not given). Blocks until done; every list waits
    /// at most its `Jobs` timeout.
    pub fn run(&mut self, in_flight: usize, mut each: impl FnMut(Swept) -> ControlFlow<()>) {
        let total = self.things.len();
        let start = self.next;
        if start >= total {
            return;
        }
        let in_flight = in_flight.max(1).min(total - start);
        let things: Arc<[Jobs]> = self.things.get(start..).unwrap_or_default().to_vec().into();
        let claimed = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicUsize::new(usize::MAX));
        let (tx, rx) = crossbeam_channel::unbounded();
        thread::scope(|scope| {
            for _ in 0..in_flight {
                let (things, claimed, stop, tx) = (
                    Arc::clone(&things),
                    Arc::clone(&claimed),
                    Arc::clone(&stop),
                    tx.clone(),
                );
                scope.spawn(move || {
                    loop {
                        let offset = claimed.fetch_add(1, Ordering::AcqRel);
                        let Some(jobs) = things.get(offset) else {
                            return;
                        };
                        if offset >= stop.load(Ordering::Acquire) {
                            return;
                        }
                        if tx.send((offset, jobs.list())).is_err() {
                            return;
                        }
                    }
                });
            }
            drop(tx);
            // Hand results over in order, whatever order they arrive in.
            let mut waiting = std::collections::BTreeMap::new();
            for (offset, pending) in rx {
                waiting.insert(offset, pending);
                while let Some(pending) = waiting.remove(&(self.next - start)) {
                    let index = self.next;
                    let Some(thing) = self.things.get(index).map(|j| j.thing_name().clone()) else {
                        return;
                    };
                    self.next += 1;
                    let swept = Swept {
                        thing,
                        index,
                        total,
                        pending,
                    };
                    if each(swept).is_break() {
                        stop.store(self.next - start, Ordering::Release);
                        return;
                    }
                }
            }
        });
    }
}

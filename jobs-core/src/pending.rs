//! The table of calls waiting for a reply: one slot and one condvar per call.
//!
//! A call registers its slot under a fresh client token **before** publishing, so a reply that
//! arrives before the caller starts waiting is kept in the slot. The delivery thread completes a
//! slot and returns at once; the registration guard removes the entry on every exit path, so a
//! late or duplicate reply finds nothing and is dropped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use parking_lot::{Condvar, Mutex};

use crate::Operation;
use crate::topics::ReplyKind;
use crate::transport::TransportError;

/// The reply a call expects: the operation and, for Describe and Update, the job level of
/// the topic (`$next` included). Only a reply on exactly this topic, carrying the call's
/// token, completes the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Expected {
    pub(crate) operation: Operation,
    pub(crate) job: Option<String>,
}

impl Expected {
    fn matches(&self, operation: Operation, job: Option<&str>) -> bool {
        self.operation == operation && self.job.as_deref() == job
    }
}

/// A reply delivered to a waiting call: which topic kind it came on and its raw payload.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) kind: ReplyKind,
    pub(crate) payload: Vec<u8>,
}

pub(crate) type Outcome = Result<Reply, TransportError>;

#[derive(Debug)]
struct Slot {
    expected: Expected,
    outcome: Mutex<Option<Outcome>>,
    ready: Condvar,
}

impl Slot {
    fn fill(&self, outcome: Outcome) {
        *self.outcome.lock() = Some(outcome);
        self.ready.notify_one();
    }
}

/// What [`Pending::complete`] did with a reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Completion {
    /// A waiting call got it.
    Delivered,
    /// No call waits for it (late, duplicate or foreign reply).
    NoMatch,
    /// A call waits for the token, but on another topic; the reply was dropped.
    WrongTopic,
}

#[derive(Debug, Default)]
pub(crate) struct Pending {
    slots: Mutex<HashMap<String, Arc<Slot>>>,
}

impl Pending {
    /// Registers a call waiting for a reply to `token`. Dropping the guard unregisters it.
    pub(crate) fn register(&self, token: String, expected: Expected) -> Registration<'_> {
        let slot = Arc::new(Slot {
            expected,
            outcome: Mutex::new(None),
            ready: Condvar::new(),
        });
        self.slots.lock().insert(token.clone(), Arc::clone(&slot));
        Registration {
            table: self,
            token,
            slot,
        }
    }

    /// Delivers a reply to the call registered under `token`, if it expects a reply on this
    /// topic. Called on the transport's delivery thread; never blocks beyond two short locks.
    pub(crate) fn complete(
        &self,
        token: &str,
        operation: Operation,
        job: Option<&str>,
        reply: impl FnOnce() -> Reply,
    ) -> Completion {
        let slot = {
            let mut slots = self.slots.lock();
            match slots.get(token) {
                None => return Completion::NoMatch,
                Some(slot) if !slot.expected.matches(operation, job) => {
                    return Completion::WrongTopic;
                }
                Some(_) => slots.remove(token),
            }
        };
        if let Some(slot) = slot {
            slot.fill(Ok(reply()));
        }
        Completion::Delivered
    }

    /// Fails every waiting call with the error `make` builds (the connection dropped).
    pub(crate) fn fail_all(&self, make: impl Fn() -> TransportError) {
        let slots: Vec<Arc<Slot>> = self.slots.lock().drain().map(|(_, slot)| slot).collect();
        for slot in slots {
            slot.fill(Err(make()));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.slots.lock().len()
    }
}

/// A registered call. Waits for its outcome; unregisters on drop.
#[derive(Debug)]
pub(crate) struct Registration<'a> {
    table: &'a Pending,
    token: String,
    slot: Arc<Slot>,
}

impl Registration<'_> {
    /// The token the call must send.
    pub(crate) fn token(&self) -> &str {
        &self.token
    }

    /// Waits until the outcome arrives or `deadline` passes (`None` = timed out).
    pub(crate) fn wait_until(&self, deadline: Instant) -> Option<Outcome> {
        let mut outcome = self.slot.outcome.lock();
        while outcome.is_none() {
            if self
                .slot
                .ready
                .wait_until(&mut outcome, deadline)
                .timed_out()
            {
                break;
            }
        }
        outcome.take()
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        self.table.slots.lock().remove(&self.token);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn describe(job: &str) -> Expected {
        Expected {
            operation: Operation::Describe,
            job: Some(job.into()),
        }
    }

    fn reply() -> Reply {
        Reply {
            kind: ReplyKind::Accepted,
            payload: b"{}".to_vec(),
        }
    }

    #[test]
    fn a_reply_before_the_wait_is_kept() {
        let pending = Pending::default();
        let registration = pending.register("t1".into(), describe("a"));
        assert_eq!(
            pending.complete("t1", Operation::Describe, Some("a"), reply),
            Completion::Delivered
        );
        let outcome = registration.wait_until(Instant::now());
        assert!(matches!(
            outcome,
            Some(Ok(Reply {
                kind: ReplyKind::Accepted,
                ..
            }))
        ));
    }

    #[test]
    fn a_reply_for_another_job_with_the_same_token_is_dropped() {
        let pending = Pending::default();
        let registration = pending.register("t1".into(), describe("a"));
        assert_eq!(
            pending.complete("t1", Operation::Describe, Some("a1"), reply),
            Completion::WrongTopic
        );
        assert_eq!(
            pending.complete("t1", Operation::Update, Some("a"), reply),
            Completion::WrongTopic
        );
        assert!(
            registration
                .wait_until(Instant::now() + Duration::from_millis(1))
                .is_none()
        );
    }

    #[test]
    fn the_entry_is_removed_on_drop_and_late_replies_find_nothing() {
        let pending = Pending::default();
        drop(pending.register("t1".into(), describe("a")));
        assert_eq!(pending.len(), 0);
        assert_eq!(
            pending.complete("t1", Operation::Describe, Some("a"), reply),
            Completion::NoMatch
        );
    }

    #[test]
    fn a_duplicate_reply_is_dropped() {
        let pending = Pending::default();
        let _registration = pending.register("t1".into(), describe("a"));
        assert_eq!(
            pending.complete("t1", Operation::Describe, Some("a"), reply),
            Completion::Delivered
        );
        assert_eq!(
            pending.complete("t1", Operation::Describe, Some("a"), reply),
            Completion::NoMatch
        );
    }

    #[test]
    fn fail_all_wakes_every_waiting_call() {
        let pending = Pending::default();
        let registration = pending.register("t1".into(), describe("a"));
        pending.fail_all(|| TransportError::ConnectionLost);
        assert!(matches!(
            registration.wait_until(Instant::now()),
            Some(Err(TransportError::ConnectionLost))
        ));
    }
}

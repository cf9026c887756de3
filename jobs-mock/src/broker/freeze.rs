//! The frozen broker: [`MockBroker::freeze`] queues client operations until
//! [`MockBroker::thaw`] applies them.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jobs_core::TransportError;
use parking_lot::{Condvar, Mutex};

use super::{MockBroker, State, deadline_after};

/// Applies a queued operation (`None`) or fails it without applying it (`Some(error)`), and
/// hands the result to its caller if the caller still waits.
type Apply = Box<dyn FnOnce(&MockBroker, Option<TransportError>) + Send>;

/// A client operation received while the broker was frozen.
pub(super) struct Queued {
    /// The client (index into `State::clients`).
    index: usize,
    apply: Apply,
}

/// Where a queued operation's result meets its waiting caller.
pub(super) struct Slot<T> {
    result: Mutex<Option<Result<T, TransportError>>>,
    done: Condvar,
}

impl<T> Slot<T> {
    fn fill(&self, result: Result<T, TransportError>) {
        *self.result.lock() = Some(result);
        self.done.notify_all();
    }

    /// The operation's result, or `Timeout` if it has none by `deadline`.
    pub(super) fn wait(&self, deadline: Instant) -> Result<T, TransportError> {
        let mut result = self.result.lock();
        self.done
            .wait_while_until(&mut result, |result| result.is_none(), deadline);
        result.take().unwrap_or(Err(TransportError::Timeout))
    }
}

impl MockBroker {
    /// Freezes the broker, like a `SIGSTOP`ped process whose sockets still accept bytes.
    ///
    /// From now until [`thaw`](Self::thaw), every client `publish`, `subscribe` and
    /// `unsubscribe` of a connected client is queued in order, and its caller blocks until
    /// the operation is applied at thaw (it then returns the operation's normal result) or
    /// until its deadline (it then returns [`TransportError::Timeout`]: **outcome unknown** —
    /// the queued operation is still applied at thaw, like bytes already on the wire). A QoS 0
    /// publish is queued too but returns `Ok` at once, as it would once handed to the network.
    /// An operation whose deadline has already passed sends nothing and returns `Timeout` at
    /// once; one from an offline client returns `NotConnected` at once. Dropping the client's
    /// connection fails its queued operations with `ConnectionLost`, unapplied.
    ///
    /// [`inject`](Self::inject), [`release_held`](Self::release_held) and the connection
    /// controls act at once, frozen or not. Freezing a frozen broker changes nothing.
    pub fn freeze(&self) {
        self.shared.state.lock().frozen = true;
    }

    /// Thaws a [`freeze`](Self::freeze)d broker: applies every queued operation in order **on
    /// this thread** (deliveries to sinks and scripted replies included, with no broker lock
    /// held), waking each waiting caller once its operation is applied, and returns when the
    /// queue is empty. Operations other threads start meanwhile join the queue until then, so
    /// the order holds; operations started from a sink on this thread are applied at once.
    /// If another thread is already thawing, that thread applies the queue and this returns at
    /// once; if the broker is frozen again meanwhile, the rest waits for the next thaw.
    pub fn thaw(&self) {
        {
            let mut state = self.shared.state.lock();
            state.frozen = false;
            if state.draining.is_some() {
                return;
            }
            state.draining = Some(thread::current().id());
        }
        loop {
            let next = {
                let mut state = self.shared.state.lock();
                let next = if state.frozen {
                    None
                } else {
                    state.backlog.pop_front()
                };
                if next.is_none() {
                    state.draining = None;
                }
                next
            };
            let Some(queued) = next else {
                return;
            };
            (queued.apply)(self, None);
        }
    }

    /// Queues a client operation if the broker is frozen (or another thread is applying the
    /// queue) and returns where its result will appear; `None` means "apply it now". `make`
    /// builds the operation, owning its data, only when it is queued.
    ///
    /// # Errors
    /// `NotConnected` when the client is offline.
    pub(super) fn queue_if_frozen<T, F>(
        &self,
        index: usize,
        make: impl FnOnce() -> F,
    ) -> Result<Option<Arc<Slot<T>>>, TransportError>
    where
        T: Send + 'static,
        F: FnOnce(&MockBroker) -> Result<T, TransportError> + Send + 'static,
    {
        let mut state = self.shared.state.lock();
        // The thread's ID only matters while another thread may be applying the queue.
        if !state.frozen
            && state
                .draining
                .is_none_or(|drainer| drainer == thread::current().id())
        {
            return Ok(None);
        }
        state.connected_client(index)?;
        let slot = Arc::new(Slot {
            result: Mutex::new(None),
            done: Condvar::new(),
        });
        let filler = Arc::clone(&slot);
        let operation = make();
        state.backlog.push_back(Queued {
            index,
            apply: Box::new(move |broker, error| {
                let result = match error {
                    Some(error) => Err(error),
                    None => operation(broker),
                };
                filler.fill(result);
            }),
        });
        self.shared.changed.notify_all();
        Ok(Some(slot))
    }

    /// Number of client operations queued by [`freeze`](Self::freeze) and not yet applied
    /// (their callers may have given up already).
    pub fn queued_count(&self) -> usize {
        self.shared.state.lock().backlog.len()
    }

    /// Waits until at least `count` client operations are queued by [`freeze`](Self::freeze),
    /// or `timeout` passes; returns whether it got there. For tests that must know a caller on
    /// another thread is blocked before they [`thaw`](Self::thaw).
    pub fn wait_for_queued(&self, count: usize, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let mut state = self.shared.state.lock();
        self.shared.changed.wait_while_until(
            &mut state,
            |state| state.backlog.len() < count,
            deadline,
        );
        state.backlog.len() >= count
    }

    /// Fails queued operations whose client went away, with no lock held.
    pub(super) fn abort(&self, aborted: Vec<Queued>) {
        for queued in aborted {
            (queued.apply)(self, Some(TransportError::ConnectionLost));
        }
    }
}

impl State {
    /// Removes the queued operations of these clients from the backlog.
    pub(super) fn take_backlog_of(&mut self, indices: &[usize]) -> Vec<Queued> {
        if indices.is_empty() || self.backlog.is_empty() {
            return Vec::new();
        }
        let (taken, kept): (Vec<Queued>, Vec<Queued>) = self
            .backlog
            .drain(..)
            .partition(|q| indices.contains(&q.index));
        self.backlog = kept.into();
        taken
    }
}

//! Threads whose join is bounded: a thread that does not finish in time fails the soak with a
//! message instead of hanging it.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError};

/// A thread started by [`spawn`], joined by [`Bounded::join_within`].
pub(crate) struct Bounded<T> {
    name: String,
    result: Receiver<thread::Result<T>>,
    handle: JoinHandle<()>,
}

/// Starts `body` on a named thread whose result (or panic) is handed over through a channel.
///
/// # Errors
/// When the thread cannot be started.
pub(crate) fn spawn<T: Send + 'static>(
    name: impl Into<String>,
    body: impl FnOnce() -> T + Send + 'static,
) -> Result<Bounded<T>, String> {
    let name = name.into();
    let (tx, result) = crossbeam_channel::bounded(1);
    let handle = thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            // The receiver is gone only if the joiner gave up on this thread.
            let _ = tx.send(catch_unwind(AssertUnwindSafe(body)));
        })
        .map_err(|error| format!("could not start thread {name}: {error}"))?;
    Ok(Bounded {
        name,
        result,
        handle,
    })
}

impl<T> Bounded<T> {
    /// Waits at most `timeout` for the thread's result.
    ///
    /// # Errors
    /// A message naming the thread when it panicked or did not finish in time (it is then left
    /// running, detached).
    pub(crate) fn join_within(self, timeout: Duration) -> Result<T, String> {
        match self.result.recv_timeout(timeout) {
            Ok(Ok(value)) => {
                // The thread has handed over its result: it ends at once.
                let _ = self.handle.join();
                Ok(value)
            }
            Ok(Err(panic)) => {
                let _ = self.handle.join();
                Err(format!(
                    "thread {} panicked: {}",
                    self.name,
                    message(&*panic)
                ))
            }
            Err(RecvTimeoutError::Timeout) => Err(format!(
                "thread {} did not finish within {:.1} s",
                self.name,
                timeout.as_secs_f64()
            )),
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("thread {} ended without a result", self.name))
            }
        }
    }
}

/// The text of a panic payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "(not a string)".to_owned()
    }
}

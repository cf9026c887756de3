//! The sink the checks install: forwards every call into channels a check waits on.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{ConnectionEvent, MessageSink};

/// Called on each message before it is forwarded, from the thread the transport calls the sink on.
pub(crate) type Hook = Box<dyn Fn() + Send + Sync>;

/// A sink forwarding messages and events into channels; it says when it is dropped.
pub(crate) struct Probe {
    messages: Sender<(String, Vec<u8>)>,
    events: Sender<ConnectionEvent>,
    hook: Option<Hook>,
    _dropped: DropSignal,
}

/// What a check keeps of a [`Probe`] it installed.
pub(crate) struct Receivers {
    pub(crate) messages: Receiver<(String, Vec<u8>)>,
    pub(crate) events: Receiver<ConnectionEvent>,
    pub(crate) dropped: Receiver<()>,
}

/// Sends `()` when dropped (and disconnects the channel).
struct DropSignal(Sender<()>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        let _ = self.0.try_send(());
    }
}

impl Probe {
    /// A probe and the receivers of what reaches it; `hook` runs on each message first.
    pub(crate) fn new(hook: Option<Hook>) -> (Arc<Self>, Receivers) {
        let (messages, messages_rx) = crossbeam_channel::unbounded();
        let (events, events_rx) = crossbeam_channel::unbounded();
        let (dropped, dropped_rx) = crossbeam_channel::bounded(1);
        let probe = Arc::new(Self {
            messages,
            events,
            hook,
            _dropped: DropSignal(dropped),
        });
        let receivers = Receivers {
            messages: messages_rx,
            events: events_rx,
            dropped: dropped_rx,
        };
        (probe, receivers)
    }
}

impl MessageSink for Probe {
    fn message(&self, topic: &str, payload: &[u8]) {
        if let Some(hook) = &self.hook {
            hook();
        }
        let _ = self.messages.send((topic.to_owned(), payload.to_vec()));
    }

    fn connection(&self, event: ConnectionEvent) {
        let _ = self.events.send(event);
    }
}

impl Receivers {
    /// The next message, waiting at most `timeout`.
    pub(crate) fn message(&self, timeout: Duration) -> Option<(String, Vec<u8>)> {
        self.messages.recv_timeout(timeout).ok()
    }

    /// Waits at most `timeout` for an event matching `wanted`, skipping others; returns it.
    pub(crate) fn event(
        &self,
        timeout: Duration,
        wanted: impl Fn(&ConnectionEvent) -> bool,
    ) -> Option<ConnectionEvent> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            match self.events.recv_deadline(deadline) {
                Ok(event) if wanted(&event) => return Some(event),
                Ok(_) => {}
                Err(_) => return None,
            }
        }
    }
}

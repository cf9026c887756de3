//! The dispatcher thread: drains Paho's event channel and calls the installed sink, so that no
//! sink code ever runs on (or blocks) Paho's C callback thread.

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, select};
use jobs_core::{ConnectionEvent, MessageSink};
use log::{debug, error, info, warn};
use paho_mqtt::Event;

/// A request from the transport to its dispatcher.
pub(crate) enum Control {
    /// Install (or replace) the sink and hand it the messages buffered so far.
    Sink(Arc<dyn MessageSink>),
}

/// The transport's handle on its dispatcher thread.
#[derive(Debug)]
pub(crate) struct Dispatcher {
    control: Option<Sender<Control>>,
    /// Receives `()` once when Paho reports the first connect.
    initial: Receiver<()>,
    /// Disconnected (never sent to) when the thread ends.
    done: Receiver<()>,
    handle: Option<JoinHandle<()>>,
}

impl Dispatcher {
    /// Starts the thread on Paho's event channel.
    pub(crate) fn start(
        events: Receiver<Event>,
        client_id: &str,
        buffer_limit: usize,
    ) -> std::io::Result<Self> {
        let (control_tx, control_rx) = crossbeam_channel::unbounded();
        let (initial_tx, initial_rx) = crossbeam_channel::bounded(1);
        let (done_tx, done_rx) = crossbeam_channel::bounded::<()>(0);
        let name = format!("jobs-paho {client_id}");
        let handle = thread::Builder::new().name(name).spawn(move || {
            let _done = done_tx; // dropped when the thread ends, whatever the exit path
            Loop {
                sink: None,
                buffer: VecDeque::new(),
                buffer_limit,
                dropped: 0,
                initial: Some(initial_tx),
            }
            .run(&events, &control_rx);
        })?;
        Ok(Self {
            control: Some(control_tx),
            initial: initial_rx,
            done: done_rx,
            handle: Some(handle),
        })
    }

    /// Hands the sink to the thread; messages buffered before are delivered first, in order.
    pub(crate) fn set_sink(&self, sink: Arc<dyn MessageSink>) {
        if let Some(control) = &self.control
            && control.send(Control::Sink(sink)).is_err()
        {
            error!("dispatcher thread has ended; the sink will receive nothing");
        }
    }

    /// Waits (bounded) until the thread has seen Paho's event for the first connect, so that
    /// the event is never mistaken for a reconnect by a sink installed right after `build`.
    pub(crate) fn wait_initial_connect(&self, timeout: Duration) {
        if self.initial.recv_timeout(timeout).is_err() {
            warn!("no connected event from paho within {timeout:?} after connecting");
        }
    }

    /// Stops the thread and joins it, waiting at most `timeout` (a sink that blocks, against
    /// its contract, leaves the thread detached).
    pub(crate) fn stop(&mut self, timeout: Duration) {
        self.control = None;
        let Some(handle) = self.handle.take() else {
            return;
        };
        if handle.thread().id() == thread::current().id() {
            // Dropped from inside the sink: the thread ends by itself once the sink returns.
            return;
        }
        match self.done.recv_timeout(timeout) {
            Err(RecvTimeoutError::Disconnected) => {
                if handle.join().is_err() {
                    error!("dispatcher thread panicked");
                }
            }
            Ok(()) | Err(RecvTimeoutError::Timeout) => {
                warn!("dispatcher thread did not end within {timeout:?}; leaving it detached");
            }
        }
    }
}

impl Drop for Dispatcher {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

struct Loop {
    sink: Option<Arc<dyn MessageSink>>,
    /// Messages that arrived before the sink was installed.
    buffer: VecDeque<(String, Vec<u8>)>,
    buffer_limit: usize,
    dropped: u64,
    /// Present until the first connect has been seen.
    initial: Option<Sender<()>>,
}

impl Loop {
    fn run(mut self, events: &Receiver<Event>, control: &Receiver<Control>) {
        loop {
            select! {
                recv(control) -> request => match request {
                    Ok(Control::Sink(sink)) => self.install(sink),
                    Err(_) => break, // the transport was dropped
                },
                recv(events) -> event => match event {
                    Ok(event) => self.event(event),
                    Err(_) => break, // the client is gone
                },
            }
        }
        debug!("dispatcher thread ends");
    }

    fn install(&mut self, sink: Arc<dyn MessageSink>) {
        if self.dropped > 0 {
            warn!(
                "{} messages arrived before the sink was installed and were dropped (buffer of {})",
                self.dropped, self.buffer_limit
            );
        }
        for (topic, payload) in self.buffer.drain(..) {
            deliver_message(sink.as_ref(), &topic, &payload);
        }
        self.sink = Some(sink);
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Message(message) => match &self.sink {
                Some(sink) => deliver_message(sink.as_ref(), message.topic(), message.payload()),
                None if self.buffer.len() < self.buffer_limit => {
                    debug!(
                        "buffering message on {} until a sink is installed",
                        message.topic()
                    );
                    self.buffer
                        .push_back((message.topic().to_owned(), message.payload().to_vec()));
                }
                None => {
                    self.dropped = self.dropped.saturating_add(1);
                    debug!(
                        "pre-sink buffer full; dropping message on {}",
                        message.topic()
                    );
                }
            },
            Event::Connected => {
                if let Some(initial) = self.initial.take() {
                    // The connect made by `build`, before any sink can exist.
                    debug!("first connect seen");
                    let _ = initial.try_send(());
                } else {
                    info!("reconnected");
                    self.connection(ConnectionEvent::Connected {
                        session_present: None,
                    });
                }
            }
            Event::ConnectionLost => {
                info!("connection lost");
                self.connection(ConnectionEvent::ConnectionLost);
            }
            Event::Disconnected { reason_code, .. } => {
                info!("broker sent DISCONNECT ({reason_code})");
                self.connection(ConnectionEvent::ConnectionLost);
            }
            // Never sent by paho-mqtt 0.14; nothing to do.
            Event::Shutdown => {}
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        match &self.sink {
            Some(sink) => {
                if catch_unwind(AssertUnwindSafe(|| sink.connection(event))).is_err() {
                    error!("message sink panicked on connection event {event:?}");
                }
            }
            None => debug!("no sink installed; dropping connection event {event:?}"),
        }
    }
}

fn deliver_message(sink: &dyn MessageSink, topic: &str, payload: &[u8]) {
    if catch_unwind(AssertUnwindSafe(|| sink.message(topic, payload))).is_err() {
        error!("message sink panicked on a message on {topic}");
    }
}

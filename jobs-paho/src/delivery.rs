//! Delivery to the sink: Paho's callbacks call the installed [`MessageSink`] directly, on
//! Paho's receive thread, under `catch_unwind`. The sink is non-blocking by contract, so no
//! thread of ours sits between Paho and the sink (a hop that cost a thread wake-up per reply).

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{ConnectionEvent, MessageSink, TransportError};
use log::{debug, error, info, warn};
use paho_mqtt as paho;
use parking_lot::Mutex;

use crate::watch::ConnectionWatch;

/// What Paho's callbacks and the transport share: the sink, and the messages that arrived
/// before it was installed.
#[derive(Debug)]
pub(crate) struct Delivery {
    state: Mutex<State>,
    /// Receives `()` once when Paho reports the first connect.
    initial: Receiver<()>,
    watch: ConnectionWatch,
}

struct State {
    sink: Option<Arc<dyn MessageSink>>,
    /// Messages that arrived before the sink was installed (or while `set_sink` hands them
    /// over: they are delivered in arrival order).
    buffer: VecDeque<(String, Vec<u8>)>,
    buffer_limit: usize,
    dropped: u64,
    /// `set_sink` is handing the buffer over; new messages queue behind it.
    draining: bool,
    /// Present until the first connect has been seen.
    initial: Option<Sender<()>>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("sink", &self.sink.is_some())
            .field("buffered", &self.buffer.len())
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl Delivery {
    /// Installs Paho's callbacks on `client` (before it connects) and returns the shared
    /// state they deliver through.
    pub(crate) fn install(
        client: &paho::AsyncClient,
        buffer_limit: usize,
        watch: ConnectionWatch,
    ) -> Arc<Self> {
        let (initial_tx, initial) = crossbeam_channel::bounded(1);
        let delivery = Arc::new(Self {
            state: Mutex::new(State {
                sink: None,
                buffer: VecDeque::new(),
                buffer_limit,
                dropped: 0,
                draining: false,
                initial: Some(initial_tx),
            }),
            initial,
            watch,
        });
        let d = Arc::clone(&delivery);
        client.set_message_callback(move |_, message| {
            if let Some(message) = message {
                d.message(message.topic(), message.payload());
            }
        });
        let d = Arc::clone(&delivery);
        client.set_connected_callback(move |_| d.connected());
        let d = Arc::clone(&delivery);
        client.set_connection_lost_callback(move |_| {
            info!("connection lost");
            d.watch.lost();
            d.connection(ConnectionEvent::ConnectionLost);
        });
        let d = Arc::clone(&delivery);
        client.set_disconnected_callback(move |_, _, reason_code| {
            info!("broker sent DISCONNECT ({reason_code})");
            d.watch.lost();
            d.connection(ConnectionEvent::ConnectionLost);
        });
        delivery
    }

    /// Installs the sink and hands it the messages buffered so far, in order, with no lock
    /// held; messages arriving meanwhile queue behind them. A second sink is refused.
    pub(crate) fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        {
            let mut state = self.state.lock();
            if state.sink.is_some() {
                return Err(TransportError::SinkInstalled);
            }
            if state.dropped > 0 {
                warn!(
                    "{} messages arrived before the sink was installed and were dropped (buffer of {})",
                    state.dropped, state.buffer_limit
                );
                state.dropped = 0;
            }
            state.sink = Some(Arc::clone(&sink));
            state.draining = true;
        }
        loop {
            let batch = {
                let mut state = self.state.lock();
                if state.buffer.is_empty() {
                    state.draining = false;
                    return Ok(());
                }
                std::mem::take(&mut state.buffer)
            };
            for (topic, payload) in batch {
                deliver_message(sink.as_ref(), &topic, &payload);
            }
        }
    }

    /// Drops the sink (the transport is going away); later callbacks deliver nothing.
    pub(crate) fn clear(&self) {
        let sink = {
            let mut state = self.state.lock();
            state.buffer.clear();
            state.sink.take()
        };
        drop(sink);
    }

    /// Waits (bounded) until Paho has reported the first connect, so that the event is never
    /// mistaken for a reconnect by a sink installed right after `build`.
    pub(crate) fn wait_initial_connect(&self, timeout: Duration) {
        if self.initial.recv_timeout(timeout).is_err() {
            warn!("no connected event from paho within {timeout:?} after connecting");
        }
    }

    /// On Paho's thread: hand the message to the sink, or buffer it until there is one.
    fn message(&self, topic: &str, payload: &[u8]) {
        let sink = {
            let mut state = self.state.lock();
            match &state.sink {
                Some(sink) if !state.draining => Some(Arc::clone(sink)),
                Some(_) => {
                    state.buffer.push_back((topic.to_owned(), payload.to_vec()));
                    None
                }
                None if state.buffer.len() < state.buffer_limit => {
                    debug!("buffering message on {topic} until a sink is installed");
                    state.buffer.push_back((topic.to_owned(), payload.to_vec()));
                    None
                }
                None => {
                    state.dropped = state.dropped.saturating_add(1);
                    debug!("pre-sink buffer full; dropping message on {topic}");
                    None
                }
            }
        };
        if let Some(sink) = sink {
            deliver_message(sink.as_ref(), topic, payload);
        }
    }

    /// On Paho's thread: the first connect is `build`'s own; later ones are reconnects.
    fn connected(&self) {
        let session_present = self.watch.connected();
        let initial = self.state.lock().initial.take();
        match initial {
            Some(initial) => {
                debug!("first connect seen");
                let _ = initial.try_send(());
            }
            None => {
                debug!("reconnected");
                self.connection(ConnectionEvent::Connected { session_present });
            }
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        let sink = self.state.lock().sink.clone();
        match sink {
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

//! [`MockBroker`]: a scriptable, deterministic, in-memory MQTT broker.
//!
//! One concern per file: this one holds the broker, its clients and their sessions, scripts and
//! faults; [`MockTransport`] is in `transport`, the frozen broker in `freeze`, routing in
//! `routing`, recording in `recording` and MQTT filter matching in `topic`.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use jobs_core::{ConnectionEvent, MessageSink, QoS, TransportError};
use parking_lot::{Condvar, Mutex};

use crate::aws::relay::{self, JobsTopic};
use crate::script::{Reply, Script, ScriptEntry};

mod aws;
mod freeze;
mod recording;
mod routing;
mod subscribe;
mod topic;
mod transport;

use aws::{AwsState, PublishOutcome, Route};
use freeze::Queued;
use recording::Records;
use routing::{deliver, hand_over};

pub use recording::{BROKER_CLIENT, Published, SubscribeRequest};
pub use topic::topic_matches;
pub use transport::MockTransport;

/// An in-memory MQTT broker routing between any number of connected clients.
///
/// - **Routing** follows MQTT: `+` matches one level, `#` the rest, and a topic whose first
///   level starts with `$` is not matched by a wildcard in the first level. A client receives
///   its own publishes if it subscribed to them, as in MQTT 3.1.1, once per message however
///   many of its filters match.
/// - **QoS** follows MQTT: a subscription is granted the QoS it asked for, and a message is
///   delivered with the lower of its publish QoS and the (highest) matching subscription's
///   QoS. [`inject`](Self::inject) and scripted replies publish with QoS 1.
/// - **Sessions** persist across [`drop_connection`](Self::drop_connection): the client keeps
///   its subscriptions, and every QoS 1 delivery meant for it while it is offline is queued
///   (QoS 0 deliveries are lost, as in MQTT). [`restore_connection`](Self::restore_connection)
///   with `session_present: true` delivers the queue, in order, right after the `Connected`
///   event; with `false` the queue is discarded along with the subscriptions. The queue has
///   no bound.
/// - **Synchronous**: a publish is delivered to every connected subscriber, and any scripted
///   reply after it, on the publishing thread before `publish` returns, with no broker lock
///   held. There are no threads, sleeps or timers: everything happens when a test says so.
///   The exceptions are spelled out where they happen: [`freeze`](Self::freeze) queues
///   operations until [`thaw`](Self::thaw), which applies them on its own thread, and a
///   message published while a resumed session's queue is being delivered joins that queue
///   (so the client receives everything in order) and is delivered by the thread resuming it.
/// - **Recording**: every SUBSCRIBE and PUBLISH the broker applies is recorded (see
///   [`published`](Self::published) and [`subscribe_requests`](Self::subscribe_requests));
///   turn it off for long runs with [`set_recording`](Self::set_recording).
/// - **Scripting**: [`script`](Self::script) answers requests on a topic with accepted or
///   rejected payloads, silence, late or duplicate replies, corrupt or oversized payloads, or
///   whatever a [`Script::custom`] responder returns (it runs with no broker lock held, so it
///   may use the broker).
/// - **Faults**: [`drop_connection`](Self::drop_connection) and
///   [`restore_connection`](Self::restore_connection), [`fail_next_publish`](Self::fail_next_publish),
///   [`refuse_subscriptions`](Self::refuse_subscriptions), [`inject`](Self::inject),
///   [`freeze`](Self::freeze) and [`thaw`](Self::thaw).
/// - **AWS mode** ([`aws`](Self::aws), [`with_aws`](Self::with_aws); off by default): AWS IoT
///   Core's quotas and implicit Jobs replies, counted per client
///   ([`quota_report`](Self::quota_report)); see [`crate::aws`].
///
/// No sink is ever called with a broker lock held; a sink that panics on a message is logged
/// and skipped, never ending the publisher's call. Cloning is cheap and shares the broker.
#[derive(Clone, Default)]
pub struct MockBroker {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled after every SUBSCRIBE and every operation queued while frozen, for
    /// [`MockBroker::wait_for_subscriptions`] and [`MockBroker::wait_for_queued`].
    changed: Condvar,
}

impl fmt::Debug for MockBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.shared.state.lock();
        f.debug_struct("MockBroker")
            .field("clients", &state.clients.len())
            .field("scripts", &state.scripts.len())
            .field("held", &state.held.len())
            .field("frozen", &state.frozen)
            .field("backlog", &state.backlog.len())
            .field("aws", &state.aws.is_some())
            .finish()
    }
}

#[derive(Default)]
struct State {
    clients: Vec<ClientState>,
    scripts: Vec<ScriptEntry>,
    held: VecDeque<Held>,
    refused_filters: Vec<String>,
    recording: Option<Records>,
    /// Which clients subscribe to a topic (indices into `clients`) and the QoS they were
    /// granted, computed on first use and forgotten whenever a subscription changes;
    /// connection state is checked per delivery.
    routes: HashMap<String, Vec<(usize, QoS)>>,
    /// Set by [`MockBroker::freeze`]: client operations join `backlog`.
    frozen: bool,
    /// The thread of [`MockBroker::thaw`] while it applies the backlog; operations of other
    /// threads still join the backlog meanwhile, so they keep their order.
    draining: Option<ThreadId>,
    /// Client operations received while frozen, oldest first.
    backlog: VecDeque<Queued>,
    /// The AWS mode, if on.
    aws: Option<AwsState>,
}

/// A reply held by [`Script::held`]: for the requester alone (`to`, in AWS mode) or for
/// every subscriber.
struct Held {
    topic: String,
    payload: Vec<u8>,
    to: Option<usize>,
}

struct ClientState {
    id: String,
    sink: Option<Arc<dyn MessageSink>>,
    /// Filters with their granted QoS, in the order first subscribed.
    subscriptions: Vec<(String, QoS)>,
    connected: bool,
    /// Set when a newer connection took over the client ID; the handle stays offline.
    replaced: bool,
    /// Set when the client disconnected for good (DISCONNECT, or its last handle dropped).
    closed: bool,
    fail_next_publish: VecDeque<TransportError>,
    /// Messages kept for the session: QoS 1 deliveries while offline, and every delivery while
    /// `resuming`.
    session: VecDeque<(String, Arc<[u8]>)>,
    /// Set from a session-resuming reconnect until `session` has been delivered.
    resuming: bool,
}

impl ClientState {
    fn new(id: &str) -> Self {
        Self {
            id: id.to_owned(),
            sink: None,
            subscriptions: Vec::new(),
            connected: true,
            replaced: false,
            closed: false,
            fail_next_publish: VecDeque::new(),
            session: VecDeque::new(),
            resuming: false,
        }
    }
}

impl MockBroker {
    /// A broker with no clients and no scripts; recording is on.
    pub fn new() -> Self {
        let broker = Self::default();
        broker.shared.state.lock().recording = Some(Records::default());
        broker
    }

    /// Connects a client and returns its transport. As in MQTT, connecting with the ID of a
    /// connected client drops the older connection (it receives `ConnectionLost`, and its
    /// operations queued by [`freeze`](Self::freeze) fail with `ConnectionLost`); the new
    /// connection starts with a clean session.
    pub fn connect(&self, client_id: &str) -> MockTransport {
        let (index, kicked, aborted) = {
            let mut state = self.shared.state.lock();
            let (kicked, aborted) = state.take_offline(client_id, true);
            state.clients.push(ClientState::new(client_id));
            (state.clients.len() - 1, kicked, aborted)
        };
        for sink in kicked {
            sink.connection(ConnectionEvent::ConnectionLost);
        }
        self.abort(aborted);
        MockTransport::new(self.clone(), index, client_id)
    }

    /// Adds a script for requests published on topics matching `filter` (an MQTT filter; a
    /// plain topic matches itself). Scripts are tried in the order added; one limited with
    /// [`Script::times`] stops matching once used up. A request no script matches gets no
    /// reply (unless some client, such as a simulator, answers it).
    pub fn script(&self, filter: &str, script: Script) {
        self.shared
            .state
            .lock()
            .scripts
            .push(ScriptEntry::new(filter, script));
    }

    /// Removes every script.
    pub fn clear_scripts(&self) {
        let scripts = std::mem::take(&mut self.shared.state.lock().scripts);
        // Dropped with no lock held: a custom responder may own the last clone of a
        // transport, whose drop disconnects it from this broker.
        drop(scripts);
    }

    /// Publishes `payload` on `topic` as the broker (for example a `notify` event) with QoS 1,
    /// delivered to connected subscribers before this returns and queued for offline clients
    /// whose session persists (see [`drop_connection`](Self::drop_connection)). Not affected
    /// by [`freeze`](Self::freeze): the broker itself is never frozen for the test.
    pub fn inject(&self, topic: &str, payload: &[u8]) {
        let deliveries = {
            let mut state = self.shared.state.lock();
            state.record_publish(BROKER_CLIENT, topic, payload);
            state.deliveries(topic, payload, QoS::AtLeastOnce)
        };
        deliver(deliveries);
    }

    /// Delivers every reply held by [`Script::held`], oldest first, as [`inject`](Self::inject)
    /// does (in AWS mode a Jobs reply to its requester alone), and returns how many.
    pub fn release_held(&self) -> usize {
        let held: Vec<Held> = self.shared.state.lock().held.drain(..).collect();
        let count = held.len();
        for reply in held {
            self.answer(reply.to, &reply.topic, &reply.payload);
        }
        count
    }

    /// Delivers a scripted reply: to the connection `to` alone if given, else as
    /// [`inject`](Self::inject) does.
    fn answer(&self, to: Option<usize>, topic: &str, payload: &[u8]) {
        match to {
            Some(index) => {
                let delivery = self
                    .shared
                    .state
                    .lock()
                    .direct_delivery(index, topic, payload);
                deliver(delivery.into_iter().collect());
            }
            None => self.inject(topic, payload),
        }
    }

    /// Number of replies held by [`Script::held`] and not yet released.
    pub fn held_count(&self) -> usize {
        self.shared.state.lock().held.len()
    }

    /// Drops the connection of every connected client with this ID: they get
    /// `ConnectionLost`, their operations queued by [`freeze`](Self::freeze) fail with
    /// `ConnectionLost` (the broker never applies them), and their publishes and subscribes
    /// fail with `NotConnected` until restored. Their session stays: subscriptions are kept
    /// and QoS 1 deliveries are queued until [`restore_connection`](Self::restore_connection).
    pub fn drop_connection(&self, client_id: &str) {
        let (sinks, aborted) = self.shared.state.lock().take_offline(client_id, false);
        for sink in sinks {
            sink.connection(ConnectionEvent::ConnectionLost);
        }
        self.abort(aborted);
    }

    /// Reconnects the clients with this ID (those dropped by
    /// [`drop_connection`](Self::drop_connection)); each gets
    /// `Connected { session_present: Some(session_present) }`.
    ///
    /// With `session_present` the session resumes: the subscriptions are kept, and the QoS 1
    /// messages queued while the client was offline are delivered, in order, on this thread
    /// after the `Connected` event and before this returns (messages published meanwhile
    /// are delivered after them). Without it the subscriptions and the queue are discarded,
    /// as on a real broker.
    pub fn restore_connection(&self, client_id: &str, session_present: bool) {
        let restored: Vec<(usize, Option<Arc<dyn MessageSink>>)> = {
            let mut state = self.shared.state.lock();
            if !session_present {
                state.routes.clear();
            }
            state
                .clients
                .iter_mut()
                .enumerate()
                .filter(|(_, c)| c.id == client_id && !c.replaced && !c.closed && !c.connected)
                .map(|(index, c)| {
                    c.connected = true;
                    if session_present {
                        c.resuming = true;
                    } else {
                        c.subscriptions.clear();
                        c.session.clear();
                    }
                    (index, c.sink.clone())
                })
                .collect()
        };
        for (index, sink) in restored {
            if let Some(sink) = sink {
                sink.connection(ConnectionEvent::Connected {
                    session_present: Some(session_present),
                });
            }
            if session_present {
                self.resume(index);
            }
        }
    }

    /// Delivers a resumed session's queue, batch by batch with no lock held, until it is empty
    /// (then deliveries go straight to the client again) or the client went offline (the rest
    /// stays queued).
    fn resume(&self, index: usize) {
        loop {
            let (sink, batch) = {
                let mut state = self.shared.state.lock();
                let Some(client) = state.clients.get_mut(index) else {
                    return;
                };
                if !client.connected || client.session.is_empty() {
                    client.resuming = false;
                    return;
                }
                let batch: Vec<(String, Arc<[u8]>)> = client.session.drain(..).collect();
                (client.sink.clone(), batch)
            };
            if let Some(sink) = sink {
                for (topic, payload) in batch {
                    hand_over(sink.as_ref(), &topic, &payload);
                }
            }
        }
    }

    /// Ends a client's connection for good: no more deliveries, its queued operations fail
    /// with `ConnectionLost`, the sink is dropped (outside the lock: dropping it may drop
    /// things that use the broker).
    fn disconnect(&self, index: usize) {
        let (sink, aborted) = {
            let mut state = self.shared.state.lock();
            state.routes.clear();
            let aborted = state.take_backlog_of(&[index]);
            let Some(client) = state.clients.get_mut(index) else {
                return;
            };
            client.connected = false;
            client.closed = true;
            client.resuming = false;
            client.subscriptions.clear();
            client.session.clear();
            (client.sink.take(), aborted)
        };
        self.abort(aborted);
        drop(sink);
    }

    /// Makes the next publish of this client fail with `error` (nothing is delivered).
    pub fn fail_next_publish(&self, client_id: &str, error: TransportError) {
        let mut state = self.shared.state.lock();
        if let Some(client) = state.clients.iter_mut().rev().find(|c| c.id == client_id) {
            client.fail_next_publish.push_back(error);
        }
    }

    /// Refuses (SUBACK 0x80) every later subscription to exactly this filter.
    pub fn refuse_subscriptions(&self, filter: &str) {
        self.shared
            .state
            .lock()
            .refused_filters
            .push(filter.to_owned());
    }

    /// The current subscriptions of the newest client with this ID, in the order first
    /// subscribed.
    pub fn subscriptions(&self, client_id: &str) -> Vec<String> {
        let state = self.shared.state.lock();
        state
            .clients
            .iter()
            .rev()
            .find(|c| c.id == client_id)
            .map(|c| c.subscriptions.iter().map(|(f, _)| f.clone()).collect())
            .unwrap_or_default()
    }

    /// Waits until the newest client with this ID has at least `count` subscriptions, or
    /// `timeout` passes; returns whether it got there. For tests of code that subscribes on
    /// another thread (for example after a reconnect).
    pub fn wait_for_subscriptions(&self, client_id: &str, count: usize, timeout: Duration) -> bool {
        let deadline = deadline_after(timeout);
        let mut state = self.shared.state.lock();
        let short_of_count = |state: &mut State| {
            let current = state.clients.iter().rev().find(|c| c.id == client_id);
            current.is_none_or(|c| c.subscriptions.len() < count)
        };
        !self
            .shared
            .changed
            .wait_while_until(&mut state, short_of_count, deadline)
            .timed_out()
    }

    fn publish(
        &self,
        index: usize,
        topic: &str,
        payload: &[u8],
        qos: QoS,
    ) -> Result<PublishOutcome, TransportError> {
        let (deliveries, script, requester) = {
            let mut state = self.shared.state.lock();
            let client = state.connected_client(index)?;
            if let Some(error) = client.fail_next_publish.pop_front() {
                return Err(error);
            }
            let client_id = client.id.clone();
            let route = match &mut state.aws {
                Some(aws) => aws.inbound(&client_id, topic, payload.len()),
                None => Route::Ordinary,
            };
            let routed = match route {
                Route::Ordinary => topic.to_owned(),
                Route::Request { relay_topic } => relay_topic,
                Route::Discarded => return Ok(PublishOutcome::Discarded),
                Route::Denied => {
                    state.record_publish(&client_id, topic, payload);
                    return Ok(PublishOutcome::Acknowledged);
                }
                Route::Oversized(reaction) => {
                    drop(state);
                    return self.refuse_oversized(&client_id, reaction);
                }
                Route::Reply {
                    client_id: to,
                    topic: reply_topic,
                } => {
                    state.record_publish(&client_id, topic, payload);
                    let delivery = state
                        .session_of(&to)
                        .and_then(|to| state.direct_delivery(to, &reply_topic, payload));
                    drop(state);
                    deliver(delivery.into_iter().collect());
                    return Ok(PublishOutcome::Acknowledged);
                }
            };
            state.record_publish(&client_id, topic, payload);
            let deliveries = state.deliveries(&routed, payload, qos);
            let script = state
                .scripts
                .iter_mut()
                .find(|s| s.matches(topic))
                .map(ScriptEntry::claim);
            // In AWS mode a scripted Jobs reply reaches the requesting connection alone.
            let requester = state
                .aws
                .as_ref()
                .is_some_and(AwsState::implicit_replies)
                .then_some(index);
            (deliveries, script, requester)
        };
        deliver(deliveries);
        if let Some(script) = script {
            // A custom responder runs here, with no lock held: it may use the broker.
            for reply in script.answer(topic, payload) {
                let (held, topic, payload) = match reply {
                    Reply::Now(topic, payload) => (false, topic, payload),
                    Reply::Held(topic, payload) => (true, topic, payload),
                };
                let to = requester.filter(|_| relay::classify(&topic) == JobsTopic::Reply);
                if held {
                    let held = Held { topic, payload, to };
                    self.shared.state.lock().held.push_back(held);
                } else {
                    self.answer(to, &topic, &payload);
                }
            }
        }
        Ok(PublishOutcome::Acknowledged)
    }
}

impl State {
    /// Takes every connected client with this ID offline; with `replace` a newer connection
    /// took over the ID, so their sessions end too. Returns their sinks, to be told
    /// `ConnectionLost`, and their queued operations, to be aborted (both with no lock held).
    ///
    /// A connected client is never replaced or closed (both happen only to a client going
    /// offline, and neither is ever reconnected), so `connected` selects exactly the clients
    /// whose connection can still be lost.
    fn take_offline(
        &mut self,
        client_id: &str,
        replace: bool,
    ) -> (Vec<Arc<dyn MessageSink>>, Vec<Queued>) {
        let mut indices = Vec::new();
        let mut sinks: Vec<Arc<dyn MessageSink>> = Vec::new();
        for (index, client) in self.clients.iter_mut().enumerate() {
            if client.id == client_id && client.connected {
                client.connected = false;
                client.resuming = false;
                if replace {
                    client.replaced = true;
                    client.session.clear();
                }
                indices.push(index);
                sinks.extend(client.sink.clone());
            }
        }
        (sinks, self.take_backlog_of(&indices))
    }

    /// The client behind a transport, if it is connected.
    fn connected_client(&mut self, index: usize) -> Result<&mut ClientState, TransportError> {
        match self.clients.get_mut(index) {
            Some(client) if client.connected => Ok(client),
            _ => Err(TransportError::NotConnected),
        }
    }
}

/// The instant `timeout` from now; a timeout too large to represent means about a year.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

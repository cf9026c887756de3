//! [`MockBroker`]: a scriptable, deterministic, in-memory MQTT broker.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use parking_lot::{Condvar, Mutex};

use crate::script::{Reply, Script, ScriptEntry};

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
///
/// No sink is ever called with a broker lock held. Cloning is cheap and shares the broker.
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
            .finish()
    }
}

/// One recorded PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The publishing client's ID (`"broker"` for [`MockBroker::inject`] and scripted replies).
    pub client: String,
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// One recorded SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeRequest {
    /// The subscribing client's ID.
    pub client: String,
    /// The filters of the SUBSCRIBE, in order.
    pub filters: Vec<String>,
}

/// Client ID used in records for messages the broker itself publishes.
pub const BROKER_CLIENT: &str = "broker";

#[derive(Default)]
struct State {
    clients: Vec<ClientState>,
    scripts: Vec<ScriptEntry>,
    held: VecDeque<(String, Vec<u8>)>,
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
}

/// Routes cached at most; beyond, the cache starts afresh (tests with endless topics).
const ROUTE_CACHE_LIMIT: usize = 1024;

#[derive(Default)]
struct Records {
    published: Vec<Published>,
    subscribes: Vec<SubscribeRequest>,
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

type Delivery = (Arc<dyn MessageSink>, String, Arc<[u8]>);

/// Applies a queued operation (`None`) or fails it without applying it (`Some(error)`), and
/// hands the result to its caller if the caller still waits.
type Apply = Box<dyn FnOnce(&MockBroker, Option<TransportError>) + Send>;

/// A client operation received while the broker was frozen.
struct Queued {
    /// The client (index into `State::clients`).
    index: usize,
    apply: Apply,
}

/// Where a queued operation's result meets its waiting caller.
struct Slot<T> {
    result: Mutex<Option<Result<T, TransportError>>>,
    done: Condvar,
}

impl<T> Slot<T> {
    fn fill(&self, result: Result<T, TransportError>) {
        *self.result.lock() = Some(result);
        self.done.notify_all();
    }

    /// The operation's result, or `Timeout` if it has none by `deadline`.
    fn wait(&self, deadline: Instant) -> Result<T, TransportError> {
        let mut result = self.result.lock();
        while result.is_none() {
            if self.done.wait_until(&mut result, deadline).timed_out() {
                break;
            }
        }
        result.take().unwrap_or(Err(TransportError::Timeout))
    }
}

/// The higher of two QoS levels.
fn max_qos(a: QoS, b: QoS) -> QoS {
    if a == QoS::AtLeastOnce || b == QoS::AtLeastOnce {
        QoS::AtLeastOnce
    } else {
        QoS::AtMostOnce
    }
}

/// The lower of two QoS levels.
fn min_qos(a: QoS, b: QoS) -> QoS {
    if a == QoS::AtMostOnce || b == QoS::AtMostOnce {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
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
            let mut indices = Vec::new();
            let mut kicked: Vec<Arc<dyn MessageSink>> = Vec::new();
            for (index, client) in state.clients.iter_mut().enumerate() {
                if client.id == client_id && client.connected {
                    client.connected = false;
                    client.replaced = true;
                    client.resuming = false;
                    client.session.clear();
                    indices.push(index);
                    kicked.extend(client.sink.clone());
                }
            }
            let aborted = state.take_backlog_of(&indices);
            state.clients.push(ClientState::new(client_id));
            (state.clients.len() - 1, kicked, aborted)
        };
        for sink in kicked {
            sink.connection(ConnectionEvent::ConnectionLost);
        }
        self.abort(aborted);
        MockTransport {
            handle: Arc::new(Handle {
                broker: self.clone(),
                index,
                client_id: client_id.to_owned(),
            }),
        }
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
        self.shared.state.lock().scripts.clear();
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
    /// does, and returns how many.
    pub fn release_held(&self) -> usize {
        let held: Vec<(String, Vec<u8>)> = self.shared.state.lock().held.drain(..).collect();
        let count = held.len();
        for (topic, payload) in held {
            self.inject(&topic, &payload);
        }
        count
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
        let (sinks, aborted) = {
            let mut state = self.shared.state.lock();
            let mut indices = Vec::new();
            let mut sinks: Vec<Arc<dyn MessageSink>> = Vec::new();
            for (index, client) in state.clients.iter_mut().enumerate() {
                if client.id == client_id && !client.replaced && !client.closed && client.connected
                {
                    client.connected = false;
                    client.resuming = false;
                    indices.push(index);
                    sinks.extend(client.sink.clone());
                }
            }
            (sinks, state.take_backlog_of(&indices))
        };
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
                    sink.message(&topic, &payload);
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

    /// Fails queued operations whose client went away, with no lock held.
    fn abort(&self, aborted: Vec<Queued>) {
        for queued in aborted {
            (queued.apply)(self, Some(TransportError::ConnectionLost));
        }
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
        loop {
            let current = state.clients.iter().rev().find(|c| c.id == client_id);
            if current.is_some_and(|c| c.subscriptions.len() >= count) {
                return true;
            }
            if self
                .shared
                .changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return false;
            }
        }
    }

    /// Every recorded PUBLISH, oldest first (empty while recording is off). A publish queued
    /// by [`freeze`](Self::freeze) is recorded when it is applied.
    pub fn published(&self) -> Vec<Published> {
        self.shared
            .state
            .lock()
            .recording
            .as_ref()
            .map(|r| r.published.clone())
            .unwrap_or_default()
    }

    /// The recorded PUBLISHes on `topic`, oldest first.
    pub fn published_on(&self, topic: &str) -> Vec<Published> {
        self.published()
            .into_iter()
            .filter(|p| p.topic == topic)
            .collect()
    }

    /// Every recorded SUBSCRIBE, oldest first.
    pub fn subscribe_requests(&self) -> Vec<SubscribeRequest> {
        self.shared
            .state
            .lock()
            .recording
            .as_ref()
            .map(|r| r.subscribes.clone())
            .unwrap_or_default()
    }

    /// Turns recording on (from now on) or off (dropping what was recorded). Defaults to on;
    /// turn it off for long runs such as benchmarks.
    pub fn set_recording(&self, on: bool) {
        self.shared.state.lock().recording = on.then(Records::default);
    }

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
    fn queue_if_frozen<T, F>(
        &self,
        index: usize,
        make: impl FnOnce() -> F,
    ) -> Result<Option<Arc<Slot<T>>>, TransportError>
    where
        T: Send + 'static,
        F: FnOnce(&MockBroker) -> Result<T, TransportError> + Send + 'static,
    {
        let mut state = self.shared.state.lock();
        let me = thread::current().id();
        if !state.frozen && state.draining.is_none_or(|drainer| drainer == me) {
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
        while state.backlog.len() < count {
            if self
                .shared
                .changed
                .wait_until(&mut state, deadline)
                .timed_out()
            {
                return state.backlog.len() >= count;
            }
        }
        true
    }

    fn publish(
        &self,
        index: usize,
        topic: &str,
        payload: &[u8],
        qos: QoS,
    ) -> Result<(), TransportError> {
        let (deliveries, script) = {
            let mut state = self.shared.state.lock();
            let client = state.connected_client(index)?;
            if let Some(error) = client.fail_next_publish.pop_front() {
                return Err(error);
            }
            let client_id = client.id.clone();
            state.record_publish(&client_id, topic, payload);
            let deliveries = state.deliveries(topic, payload, qos);
            let script = state
                .scripts
                .iter_mut()
                .find(|s| s.matches(topic))
                .map(ScriptEntry::claim);
            (deliveries, script)
        };
        deliver(deliveries);
        if let Some(script) = script {
            // A custom responder runs here, with no lock held: it may use the broker.
            for reply in script.answer(topic, payload) {
                match reply {
                    Reply::Now(topic, payload) => self.inject(&topic, &payload),
                    Reply::Held(topic, payload) => {
                        self.shared.state.lock().held.push_back((topic, payload));
                    }
                }
            }
        }
        Ok(())
    }

    fn subscribe(
        &self,
        index: usize,
        filters: &[&str],
        qos: QoS,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        let mut state = self.shared.state.lock();
        state.routes.clear();
        let refused = state.refused_filters.clone();
        let client = state.connected_client(index)?;
        let client_id = client.id.clone();
        let outcomes = filters
            .iter()
            .map(|filter| {
                if refused.iter().any(|r| r == filter) {
                    return SubscribeOutcome::Refused;
                }
                // As in MQTT, subscribing again replaces the subscription (and its QoS).
                match client.subscriptions.iter_mut().find(|(f, _)| f == filter) {
                    Some((_, granted)) => *granted = qos,
                    None => client.subscriptions.push(((*filter).to_owned(), qos)),
                }
                SubscribeOutcome::Granted(qos)
            })
            .collect();
        if let Some(records) = &mut state.recording {
            records.subscribes.push(SubscribeRequest {
                client: client_id,
                filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            });
        }
        self.shared.changed.notify_all();
        Ok(outcomes)
    }

    fn unsubscribe(&self, index: usize, filters: &[&str]) -> Result<(), TransportError> {
        let mut state = self.shared.state.lock();
        state.routes.clear();
        let client = state.connected_client(index)?;
        client
            .subscriptions
            .retain(|(s, _)| !filters.contains(&s.as_str()));
        Ok(())
    }
}

impl State {
    /// The client behind a transport, if it is connected.
    fn connected_client(&mut self, index: usize) -> Result<&mut ClientState, TransportError> {
        match self.clients.get_mut(index) {
            Some(client) if client.connected => Ok(client),
            _ => Err(TransportError::NotConnected),
        }
    }

    /// Removes the queued operations of these clients from the backlog.
    fn take_backlog_of(&mut self, indices: &[usize]) -> Vec<Queued> {
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

    fn record_publish(&mut self, client: &str, topic: &str, payload: &[u8]) {
        if let Some(records) = &mut self.recording {
            records.published.push(Published {
                client: client.to_owned(),
                topic: topic.to_owned(),
                payload: payload.to_vec(),
            });
        }
    }

    /// Routes a message published with `qos` on `topic`: returns the deliveries to make now
    /// (every connected client with a sink and a matching subscription, once per client), and
    /// queues it for sessions that keep it (offline clients, if the delivery QoS is 1; clients
    /// whose resumed session is being delivered, whatever the QoS).
    fn deliveries(&mut self, topic: &str, payload: &[u8], qos: QoS) -> Vec<Delivery> {
        if !self.routes.contains_key(topic) {
            if self.routes.len() >= ROUTE_CACHE_LIMIT {
                self.routes.clear();
            }
            let route = self
                .clients
                .iter()
                .enumerate()
                .filter_map(|(index, c)| {
                    c.subscriptions
                        .iter()
                        .filter(|(f, _)| topic_matches(f, topic))
                        .map(|(_, granted)| *granted)
                        .reduce(max_qos)
                        .map(|granted| (index, granted))
                })
                .collect();
            self.routes.insert(topic.to_owned(), route);
        }
        let Some(route) = self.routes.get(topic) else {
            return Vec::new();
        };
        let payload: Arc<[u8]> = Arc::from(payload);
        let mut deliveries = Vec::new();
        for &(index, granted) in route {
            let Some(client) = self.clients.get_mut(index) else {
                continue;
            };
            let session_kept = !client.replaced && !client.closed;
            if client.connected && !client.resuming {
                if let Some(sink) = &client.sink {
                    deliveries.push((Arc::clone(sink), topic.to_owned(), Arc::clone(&payload)));
                }
            } else if client.connected
                || (session_kept && min_qos(qos, granted) == QoS::AtLeastOnce)
            {
                client
                    .session
                    .push_back((topic.to_owned(), Arc::clone(&payload)));
            }
        }
        deliveries
    }
}

fn deliver(deliveries: Vec<Delivery>) {
    for (sink, topic, payload) in deliveries {
        sink.message(&topic, &payload);
    }
}

/// The [`MqttTransport`] of one client of a [`MockBroker`].
///
/// QoS is honoured as the [`MockBroker`] describes: a subscription is granted the QoS asked
/// for, and what an offline client's session keeps depends on the delivery QoS. Delivery in
/// memory is otherwise exactly once, unless a script duplicates it. Every operation honours
/// its deadline: one called after its deadline sends nothing and returns
/// [`TransportError::Timeout`], and one blocked by [`MockBroker::freeze`] returns `Timeout` at
/// its deadline. Clones share the connection; dropping the last clone disconnects the client
/// (its sink is dropped and gets nothing more).
#[derive(Clone)]
pub struct MockTransport {
    handle: Arc<Handle>,
}

/// The connection behind every clone of a [`MockTransport`]; disconnects when dropped.
struct Handle {
    broker: MockBroker,
    index: usize,
    client_id: String,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.broker.disconnect(self.index);
    }
}

impl fmt::Debug for MockTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockTransport")
            .field("client_id", &self.handle.client_id)
            .finish()
    }
}

impl MockTransport {
    /// The client ID this transport connected with.
    pub fn client_id(&self) -> &str {
        &self.handle.client_id
    }

    /// The broker this transport is connected to.
    pub fn broker(&self) -> &MockBroker {
        &self.handle.broker
    }

    /// Disconnects now, as an MQTT DISCONNECT would: the sink is dropped and gets nothing
    /// more, operations queued by [`MockBroker::freeze`] fail with `ConnectionLost`, and every
    /// operation of every clone fails with `NotConnected` from then on.
    pub fn disconnect(&self) {
        self.handle.broker.disconnect(self.handle.index);
    }
}

/// The instant `timeout` from now; a timeout too large to represent means about a year.
fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(timeout)
        .or_else(|| now.checked_add(Duration::from_secs(365 * 24 * 3600)))
        .unwrap_or(now)
}

fn check_deadline(deadline: Instant) -> Result<(), TransportError> {
    if Instant::now() >= deadline {
        return Err(TransportError::Timeout);
    }
    Ok(())
}

impl MqttTransport for MockTransport {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut state = self.handle.broker.shared.state.lock();
        match state.clients.get_mut(self.handle.index) {
            Some(client) if client.sink.is_some() => Err(TransportError::SinkInstalled),
            Some(client) if !client.closed => {
                client.sink = Some(sink);
                Ok(())
            }
            _ => Err(TransportError::NotConnected),
        }
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        check_deadline(deadline)?;
        let (broker, index) = (&self.handle.broker, self.handle.index);
        let queued = broker.queue_if_frozen(index, || {
            let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
            move |broker: &MockBroker| {
                let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
                broker.subscribe(index, &filters, qos)
            }
        })?;
        match queued {
            Some(slot) => slot.wait(deadline),
            None => broker.subscribe(index, filters, qos),
        }
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        check_deadline(deadline)?;
        let (broker, index) = (&self.handle.broker, self.handle.index);
        let queued = broker.queue_if_frozen(index, || {
            let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
            move |broker: &MockBroker| {
                let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
                broker.unsubscribe(index, &filters)
            }
        })?;
        match queued {
            Some(slot) => slot.wait(deadline),
            None => broker.unsubscribe(index, filters),
        }
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        check_deadline(deadline)?;
        let (broker, index) = (&self.handle.broker, self.handle.index);
        let queued = broker.queue_if_frozen(index, || {
            let (topic, payload) = (topic.to_owned(), payload.to_vec());
            move |broker: &MockBroker| broker.publish(index, &topic, &payload, qos)
        })?;
        match queued {
            None => broker.publish(index, topic, payload, qos),
            // QoS 0 returns once handed to the network; the frozen broker has it.
            Some(_) if qos == QoS::AtMostOnce => Ok(()),
            Some(slot) => slot.wait(deadline),
        }
    }
}

/// MQTT topic matching: `+` matches exactly one level, `#` (last) matches the parent level and
/// everything below, and wildcards in the first level do not match a topic starting with `$`.
pub fn topic_matches(filter: &str, topic: &str) -> bool {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    // Level by level on bytes rather than `str::split`: every publish used to be matched
    // against every filter of every client, and the split machinery dominated in-process
    // benchmarks (routes are now cached too, see `State::routes`).
    let (mut filter, mut topic) = (Some(filter.as_bytes()), Some(topic.as_bytes()));
    loop {
        let Some(rest) = filter else {
            return topic.is_none();
        };
        let (level, filter_rest) = split_level(rest);
        if level == b"#" {
            return filter_rest.is_none();
        }
        let Some(rest) = topic else {
            return false;
        };
        let (topic_level, topic_rest) = split_level(rest);
        if level != b"+" && level != topic_level {
            return false;
        }
        (filter, topic) = (filter_rest, topic_rest);
    }
}

/// The first level of `levels` and what follows its `/` (`None`: it was the last level).
fn split_level(levels: &[u8]) -> (&[u8], Option<&[u8]>) {
    match levels.iter().position(|&b| b == b'/') {
        Some(slash) => (
            levels.get(..slash).unwrap_or_default(),
            levels.get(slash + 1..),
        ),
        None => (levels, None),
    }
}

#[cfg(test)]
mod tests {
    use super::topic_matches;

    #[test]
    fn wildcards_match_like_mqtt() {
        let cases = [
            ("a/+/c", "a/b/c", true),
            ("a/+/c", "a/b/d", false),
            ("a/+", "a/b/c", false),
            ("a/#", "a", true),
            ("a/#", "a/b/c", true),
            ("#", "a/b", true),
            ("+/b", "a/b", true),
            ("#", "$aws/things", false),
            ("+/things", "$aws/things", false),
            (
                "$aws/things/+/jobs/+/get/+",
                "$aws/things/T/jobs/$next/get/accepted",
                true,
            ),
            ("$aws/things/T/jobs/get/+", "$aws/things/T/jobs/get", false),
            ("a/b", "a/b", true),
            ("a/b", "a/bc", false),
            ("a/+/+", "a/b/", true),
            ("a/b/c", "a/b", false),
            ("a/b", "a/b/c", false),
            ("+", "", true),
            ("a/+", "a/", true),
            ("a//c", "a//c", true),
            ("a/#/c", "a/b/c", false),
        ];
        for (filter, topic, expected) in cases {
            assert_eq!(
                topic_matches(filter, topic),
                expected,
                "{filter} vs {topic}"
            );
        }
    }
}

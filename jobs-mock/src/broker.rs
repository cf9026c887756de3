//! [`MockBroker`]: a scriptable, deterministic, in-memory MQTT broker.

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::sync::Arc;

use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::script::{Reply, Script, ScriptEntry};

/// An in-memory MQTT broker routing between any number of connected clients.
///
/// - **Routing** follows MQTT: `+` matches one level, `#` the rest, and a topic whose first
///   level starts with `$` is not matched by a wildcard in the first level. A client receives
///   its own publishes if it subscribed to them, as in MQTT 3.1.1.
/// - **Synchronous**: a publish is delivered to every subscriber, and any scripted reply after
///   it, on the publishing thread before `publish` returns, with no broker lock held. There are
///   no threads, sleeps or timers: everything happens when a test says so.
/// - **Recording**: every SUBSCRIBE and PUBLISH is recorded (see [`published`](Self::published)
///   and [`subscribe_requests`](Self::subscribe_requests)); turn it off for long runs with
///   [`set_recording`](Self::set_recording).
/// - **Scripting**: [`script`](Self::script) answers requests on a topic with accepted or
///   rejected payloads, silence, late or duplicate replies, corrupt or oversized payloads.
/// - **Faults**: [`drop_connection`](Self::drop_connection) and
///   [`restore_connection`](Self::restore_connection), [`fail_next_publish`](Self::fail_next_publish),
///   [`refuse_subscriptions`](Self::refuse_subscriptions), [`inject`](Self::inject).
///
/// Cloning is cheap and shares the broker.
#[derive(Clone, Default)]
pub struct MockBroker {
    state: Arc<Mutex<State>>,
    /// Signalled after every SUBSCRIBE, for [`MockBroker::wait_for_subscriptions`].
    subscribed: Arc<Condvar>,
}

impl fmt::Debug for MockBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("MockBroker")
            .field("clients", &state.clients.len())
            .field("scripts", &state.scripts.len())
            .field("held", &state.held.len())
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
    /// Which clients subscribe to a topic (indices into `clients`), computed on first use and
    /// forgotten whenever a subscription changes; connection state is checked per delivery.
    routes: HashMap<String, Vec<usize>>,
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
    subscriptions: Vec<String>,
    connected: bool,
    /// Set when a newer connection took over the client ID; the handle stays offline.
    replaced: bool,
    /// Set when the client disconnected for good (DISCONNECT, or its last handle dropped).
    closed: bool,
    fail_next_publish: VecDeque<TransportError>,
}

type Delivery = (Arc<dyn MessageSink>, String, Arc<[u8]>);

impl MockBroker {
    /// A broker with no clients and no scripts; recording is on.
    pub fn new() -> Self {
        let broker = Self::default();
        broker.state.lock().recording = Some(Records::default());
        broker
    }

    /// Connects a client and returns its transport. As in MQTT, connecting with the ID of a
    /// connected client drops the older connection (it receives `ConnectionLost`).
    pub fn connect(&self, client_id: &str) -> MockTransport {
        let (index, kicked) = {
            let mut state = self.state.lock();
            let kicked: Vec<Arc<dyn MessageSink>> = state
                .clients
                .iter_mut()
                .filter(|c| c.id == client_id && c.connected)
                .filter_map(|c| {
                    c.connected = false;
                    c.replaced = true;
                    c.sink.clone()
                })
                .collect();
            state.clients.push(ClientState {
                id: client_id.to_owned(),
                sink: None,
                subscriptions: Vec::new(),
                connected: true,
                replaced: false,
                closed: false,
                fail_next_publish: VecDeque::new(),
            });
            (state.clients.len() - 1, kicked)
        };
        for sink in kicked {
            sink.connection(ConnectionEvent::ConnectionLost);
        }
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
        self.state
            .lock()
            .scripts
            .push(ScriptEntry::new(filter, script));
    }

    /// Removes every script.
    pub fn clear_scripts(&self) {
        self.state.lock().scripts.clear();
    }

    /// Publishes `payload` on `topic` as the broker (for example a `notify` event), delivered
    /// before this returns.
    pub fn inject(&self, topic: &str, payload: &[u8]) {
        let deliveries = {
            let mut state = self.state.lock();
            state.record_publish(BROKER_CLIENT, topic, payload);
            state.deliveries(topic, payload)
        };
        deliver(deliveries);
    }

    /// Delivers every reply held by [`Script::held`], oldest first, and returns how many.
    pub fn release_held(&self) -> usize {
        let held: Vec<(String, Vec<u8>)> = self.state.lock().held.drain(..).collect();
        let count = held.len();
        for (topic, payload) in held {
            self.inject(&topic, &payload);
        }
        count
    }

    /// Number of replies held by [`Script::held`] and not yet released.
    pub fn held_count(&self) -> usize {
        self.state.lock().held.len()
    }

    /// Drops the connection of every client with this ID: they get `ConnectionLost`, and their
    /// publishes and subscribes fail with `NotConnected` until restored.
    pub fn drop_connection(&self, client_id: &str) {
        let sinks = self.set_connected(client_id, false, true);
        for sink in sinks {
            sink.connection(ConnectionEvent::ConnectionLost);
        }
    }

    /// Reconnects the clients with this ID. Without a resumed session their subscriptions are
    /// gone, as on a real broker; they get `Connected { session_present }`.
    pub fn restore_connection(&self, client_id: &str, session_present: bool) {
        let sinks = self.set_connected(client_id, true, session_present);
        for sink in sinks {
            sink.connection(ConnectionEvent::Connected {
                session_present: Some(session_present),
            });
        }
    }

    /// Ends a client's connection for good: no more deliveries, the sink is dropped (outside the
    /// lock: dropping it may drop things that use the broker).
    fn disconnect(&self, index: usize) {
        let sink = {
            let mut state = self.state.lock();
            state.routes.clear();
            let Some(client) = state.clients.get_mut(index) else {
                return;
            };
            client.connected = false;
            client.closed = true;
            client.subscriptions.clear();
            client.sink.take()
        };
        drop(sink);
    }

    fn set_connected(
        &self,
        client_id: &str,
        connected: bool,
        keep_session: bool,
    ) -> Vec<Arc<dyn MessageSink>> {
        let mut state = self.state.lock();
        if !keep_session {
            state.routes.clear();
        }
        state
            .clients
            .iter_mut()
            .filter(|c| c.id == client_id && !c.replaced && !c.closed && c.connected != connected)
            .filter_map(|c| {
                c.connected = connected;
                if !keep_session {
                    c.subscriptions.clear();
                }
                c.sink.clone()
            })
            .collect()
    }

    /// Makes the next publish of this client fail with `error` (nothing is delivered).
    pub fn fail_next_publish(&self, client_id: &str, error: TransportError) {
        let mut state = self.state.lock();
        if let Some(client) = state.clients.iter_mut().rev().find(|c| c.id == client_id) {
            client.fail_next_publish.push_back(error);
        }
    }

    /// Refuses (SUBACK 0x80) every later subscription to exactly this filter.
    pub fn refuse_subscriptions(&self, filter: &str) {
        self.state.lock().refused_filters.push(filter.to_owned());
    }

    /// The current subscriptions of the newest client with this ID.
    pub fn subscriptions(&self, client_id: &str) -> Vec<String> {
        let state = self.state.lock();
        state
            .clients
            .iter()
            .rev()
            .find(|c| c.id == client_id)
            .map(|c| c.subscriptions.clone())
            .unwrap_or_default()
    }

    /// Waits until the newest client with this ID has at least `count` subscriptions, or
    /// `timeout` passes; returns whether it got there. For tests of code that subscribes on
    /// another thread (for example after a reconnect).
    pub fn wait_for_subscriptions(&self, client_id: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.state.lock();
        loop {
            let current = state.clients.iter().rev().find(|c| c.id == client_id);
            if current.is_some_and(|c| c.subscriptions.len() >= count) {
                return true;
            }
            if self.subscribed.wait_until(&mut state, deadline).timed_out() {
                return false;
            }
        }
    }

    /// Every recorded PUBLISH, oldest first (empty while recording is off).
    pub fn published(&self) -> Vec<Published> {
        self.state
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
        self.state
            .lock()
            .recording
            .as_ref()
            .map(|r| r.subscribes.clone())
            .unwrap_or_default()
    }

    /// Turns recording on (from now on) or off (dropping what was recorded). Defaults to on;
    /// turn it off for long runs such as benchmarks.
    pub fn set_recording(&self, on: bool) {
        self.state.lock().recording = on.then(Records::default);
    }

    fn publish(&self, index: usize, topic: &str, payload: &[u8]) -> Result<(), TransportError> {
        let (deliveries, replies) = {
            let mut state = self.state.lock();
            let client = state.connected_client(index)?;
            if let Some(error) = client.fail_next_publish.pop_front() {
                return Err(error);
            }
            let client_id = client.id.clone();
            state.record_publish(&client_id, topic, payload);
            let deliveries = state.deliveries(topic, payload);
            let replies = match state.scripts.iter_mut().find(|s| s.matches(topic)) {
                Some(entry) => entry.use_once(topic, payload),
                None => Vec::new(),
            };
            let mut now = Vec::new();
            for reply in replies {
                match reply {
                    Reply::Now(topic, payload) => now.push((topic, payload)),
                    Reply::Held(topic, payload) => state.held.push_back((topic, payload)),
                }
            }
            (deliveries, now)
        };
        deliver(deliveries);
        for (topic, payload) in replies {
            self.inject(&topic, &payload);
        }
        Ok(())
    }

    fn subscribe(
        &self,
        index: usize,
        filters: &[&str],
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        let mut state = self.state.lock();
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
                if !client.subscriptions.iter().any(|s| s == filter) {
                    client.subscriptions.push((*filter).to_owned());
                }
                SubscribeOutcome::Granted(QoS::AtLeastOnce)
            })
            .collect();
        if let Some(records) = &mut state.recording {
            records.subscribes.push(SubscribeRequest {
                client: client_id,
                filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            });
        }
        self.subscribed.notify_all();
        Ok(outcomes)
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

    fn record_publish(&mut self, client: &str, topic: &str, payload: &[u8]) {
        if let Some(records) = &mut self.recording {
            records.published.push(Published {
                client: client.to_owned(),
                topic: topic.to_owned(),
                payload: payload.to_vec(),
            });
        }
    }

    /// Who receives a message on `topic`: every connected client with a sink and a matching
    /// subscription, once per client.
    fn deliveries(&mut self, topic: &str, payload: &[u8]) -> Vec<Delivery> {
        if !self.routes.contains_key(topic) {
            if self.routes.len() >= ROUTE_CACHE_LIMIT {
                self.routes.clear();
            }
            let route = self
                .clients
                .iter()
                .enumerate()
                .filter(|(_, c)| c.subscriptions.iter().any(|f| topic_matches(f, topic)))
                .map(|(index, _)| index)
                .collect();
            self.routes.insert(topic.to_owned(), route);
        }
        let Some(route) = self.routes.get(topic) else {
            return Vec::new();
        };
        let payload: Arc<[u8]> = Arc::from(payload);
        route
            .iter()
            .filter_map(|&index| self.clients.get(index))
            .filter(|c| c.connected)
            .filter_map(|c| c.sink.clone())
            .map(|sink| (sink, topic.to_owned(), Arc::clone(&payload)))
            .collect()
    }
}

fn deliver(deliveries: Vec<Delivery>) {
    for (sink, topic, payload) in deliveries {
        sink.message(&topic, &payload);
    }
}

/// The [`MqttTransport`] of one client of a [`MockBroker`].
///
/// QoS is accepted and ignored: delivery in memory is always exactly once, unless a script
/// duplicates it. Every operation honours its deadline: one called after its deadline sends
/// nothing and returns [`TransportError::Timeout`]. Clones share the connection; dropping the
/// last clone disconnects the client (its sink is dropped and gets nothing more).
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
    /// more, and every operation of every clone fails with `NotConnected` from then on.
    pub fn disconnect(&self) {
        self.handle.broker.disconnect(self.handle.index);
    }
}

fn check_deadline(deadline: Instant) -> Result<(), TransportError> {
    if Instant::now() >= deadline {
        return Err(TransportError::Timeout);
    }
    Ok(())
}

impl MqttTransport for MockTransport {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut state = self.handle.broker.state.lock();
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
        _qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        check_deadline(deadline)?;
        self.handle.broker.subscribe(self.handle.index, filters)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        check_deadline(deadline)?;
        let mut state = self.handle.broker.state.lock();
        state.routes.clear();
        let client = state.connected_client(self.handle.index)?;
        client
            .subscriptions
            .retain(|s| !filters.contains(&s.as_str()));
        Ok(())
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        _qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        check_deadline(deadline)?;
        self.handle
            .broker
            .publish(self.handle.index, topic, payload)
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

//! [`Client`]: one MQTT connection shared by the [`Jobs`](crate::Jobs) of any number of things,
//! and the message sink that routes inbound traffic to them by thing name.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use log::{debug, info};
use parking_lot::RwLock;

use crate::error::{Error, InvalidInput};
use crate::names::ThingName;
use crate::shared::Shared;
use crate::topics::JobsTopic;
use crate::transport::{ConnectionEvent, MessageSink, MqttTransport, TransportError};

/// One MQTT connection, shared by the [`Jobs`](crate::Jobs) of one or many things.
///
/// A device creates one `Client` and one `Jobs`; a gateway creates one `Client` and a `Jobs`
/// per thing it serves. Cloning is cheap and shares the connection.
///
/// # Threading
/// `Client` is `Send + Sync`. It spawns no threads: inbound messages are routed on the
/// transport's delivery thread, and subscriptions are restored after a reconnect by the next
/// call of each [`Jobs`](crate::Jobs) on the caller's thread.
///
/// # Replies
/// A reply completes a call only if its topic is exactly the call's reply topic and it carries
/// the call's client token. A reply without a token cannot be attributed: it is dropped and
/// counted in a debug log (target `jobs_core`), and the call it may have answered ends by its
/// timeout.
#[derive(Clone)]
pub struct Client {
    pub(crate) transport: Arc<dyn MqttTransport>,
    pub(crate) router: Arc<Router>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("things", &self.router.things.read().len())
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Takes over `transport` and installs the client's message sink on it.
    ///
    /// # Errors
    /// [`Error::Transport`] with [`TransportError::SinkInstalled`] when the transport already
    /// serves another `Client` (a transport serves one client; clone the client to share it).
    pub fn new(transport: impl MqttTransport + 'static) -> Result<Self, Error> {
        Self::from_arc(Arc::new(transport))
    }

    /// As [`new`](Self::new), for a transport already behind an `Arc`.
    ///
    /// # Errors
    /// As for [`new`](Self::new).
    pub fn from_arc(transport: Arc<dyn MqttTransport>) -> Result<Self, Error> {
        let router = Arc::new(Router::new());
        transport
            .set_sink(Arc::clone(&router) as Arc<dyn MessageSink>)
            .map_err(|source| Error::Transport {
                operation: None,
                source,
            })?;
        Ok(Self { transport, router })
    }

    /// The transport this client drives.
    pub fn transport(&self) -> &Arc<dyn MqttTransport> {
        &self.transport
    }
}

/// Routes inbound messages to the registered things and tracks the connection's epoch.
pub(crate) struct Router {
    things: RwLock<HashMap<ThingName, Arc<Shared>>>,
    /// Incremented by every reconnect that did not resume the session; a thing whose
    /// subscription is older than the current epoch re-subscribes before its next request.
    epoch: AtomicU64,
    token_prefix: String,
    token_counter: AtomicU64,
    /// Replies dropped because they carried no client token (counted for the debug log).
    unattributed: AtomicU64,
}

impl Router {
    fn new() -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Self {
            things: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            token_prefix: format!("{:016x}", hasher.finish()),
            token_counter: AtomicU64::new(0),
            unattributed: AtomicU64::new(0),
        }
    }

    /// A fresh client token: a random per-client prefix and a counter, at most 33 bytes.
    pub(crate) fn next_token(&self) -> String {
        let n = self.token_counter.fetch_add(1, Ordering::Relaxed);
        format!("{}-{n:x}", self.token_prefix)
    }

    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// Counts a reply dropped for want of a client token; returns the count so far.
    pub(crate) fn count_unattributed(&self) -> u64 {
        self.unattributed.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Registers a thing; `false` if the thing is already registered.
    fn register(&self, shared: &Arc<Shared>) -> bool {
        let mut things = self.things.write();
        if things.contains_key(&shared.thing) {
            return false;
        }
        things.insert(shared.thing.clone(), Arc::clone(shared));
        true
    }

    /// Removes exactly this registration of its thing (a newer one stays).
    fn unregister(&self, shared: &Arc<Shared>) {
        let mut things = self.things.write();
        if things
            .get(&shared.thing)
            .is_some_and(|current| Arc::ptr_eq(current, shared))
        {
            things.remove(&shared.thing);
        }
    }

    fn lookup(&self, thing: &str) -> Option<Arc<Shared>> {
        self.things.read().get(thing).cloned()
    }

    fn all(&self) -> Vec<Arc<Shared>> {
        self.things.read().values().cloned().collect()
    }
}

/// One registration of a thing on a client, shared by every clone of its
/// [`Jobs`](crate::Jobs). Dropping the last clone unregisters the thing at once (a new `Jobs`
/// of it can be built right after, whatever the delivery thread is doing).
pub(crate) struct Registration {
    pub(crate) shared: Arc<Shared>,
    router: Arc<Router>,
}

impl Registration {
    /// Registers `thing` on `router`.
    pub(crate) fn new(router: &Arc<Router>, thing: ThingName) -> Result<Self, InvalidInput> {
        let shared = Arc::new(Shared::new(thing));
        if !router.register(&shared) {
            return Err(InvalidInput::DuplicateThing(shared.thing.clone()));
        }
        Ok(Self {
            shared,
            router: Arc::clone(router),
        })
    }

    /// Unregisters the thing now (before the last clone is dropped).
    pub(crate) fn unregister(&self) {
        self.router.unregister(&self.shared);
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.router.unregister(&self.shared);
    }
}

impl MessageSink for Router {
    fn message(&self, topic: &str, payload: &[u8]) {
        let Some(parsed) = JobsTopic::parse(topic) else {
            debug!("ignoring message on non-Jobs topic {topic}");
            return;
        };
        match self.lookup(parsed.thing()) {
            Some(shared) => shared.handle(parsed, topic, payload, || self.count_unattributed()),
            None => debug!("ignoring message for unregistered thing on {topic}"),
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Connected {
                session_present: Some(true),
            } => {
                info!("reconnected; session resumed: yes");
            }
            ConnectionEvent::Connected { session_present } => {
                let resumed = if session_present.is_some() {
                    "no"
                } else {
                    "unknown (the transport cannot tell)"
                };
                info!("reconnected; session resumed: {resumed}; subscriptions will be restored");
                self.epoch.fetch_add(1, Ordering::AcqRel);
                for shared in self.all() {
                    shared.reconnected();
                }
            }
            ConnectionEvent::ConnectionLost => {
                info!("transport lost the connection; failing calls in flight");
                for shared in self.all() {
                    shared.pending.fail_all(|| TransportError::ConnectionLost);
                }
            }
        }
    }
}

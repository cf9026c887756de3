//! [`Client`]: one MQTT connection shared by the [`Jobs`](crate::Jobs) of any number of things,
//! and the message sink that routes inbound traffic to them by thing name.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use log::{debug, info};
use parking_lot::RwLock;

use crate::error::{Error, Operation};
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
                operation: Operation::Subscribe,
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
#[derive(Debug)]
pub(crate) struct Router {
    things: RwLock<HashMap<ThingName, Weak<Shared>>>,
    /// Incremented by every reconnect that did not resume the session; a thing whose
    /// subscription is older than the current epoch re-subscribes before its next request.
    epoch: AtomicU64,
    token_prefix: String,
    token_counter: AtomicU64,
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

    /// Registers a thing; `None` if a live registration already exists.
    pub(crate) fn register(&self, shared: &Arc<Shared>) -> Option<()> {
        let mut things = self.things.write();
        let entry = things.entry(shared.thing.clone()).or_default();
        if entry.strong_count() > 0 {
            return None;
        }
        *entry = Arc::downgrade(shared);
        Some(())
    }

    /// Removes a thing's registration if it is dead (its last `Jobs` was dropped).
    pub(crate) fn unregister_dead(&self, thing: &ThingName) {
        let mut things = self.things.write();
        if things
            .get(thing)
            .is_some_and(|weak| weak.strong_count() == 0)
        {
            things.remove(thing);
        }
    }

    fn lookup(&self, thing: &str) -> Option<Arc<Shared>> {
        self.things.read().get(thing).and_then(Weak::upgrade)
    }

    fn all(&self) -> Vec<Arc<Shared>> {
        self.things
            .read()
            .values()
            .filter_map(Weak::upgrade)
            .collect()
    }
}

impl MessageSink for Router {
    fn message(&self, topic: &str, payload: &[u8]) {
        let Some(parsed) = JobsTopic::parse(topic) else {
            debug!("ignoring message on non-Jobs topic {topic}");
            return;
        };
        match self.lookup(parsed.thing()) {
            Some(shared) => shared.handle(parsed, topic, payload),
            None => debug!("ignoring message for unregistered thing on {topic}"),
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        match event {
            ConnectionEvent::Connected {
                session_present: Some(true),
            } => {
                info!("transport reconnected; session resumed");
            }
            ConnectionEvent::Connected { session_present } => {
                info!(
                    "transport connected (session present: {session_present:?}); subscriptions will be restored"
                );
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

//! [`Client`]: one MQTT connection shared by the [`Jobs`](crate::Jobs) of any number of things,
//! and the message sink that routes inbound traffic to them by thing name.

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use log::{debug, info};
use parking_lot::RwLock;

use crate::error::{Error, InvalidInput, SettingProblem};
use crate::names::ThingName;
use crate::pace::{Pace, PublishRate};
use crate::shared::Shared;
use crate::subscriptions::{Subscriptions, Table};
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
    pub(crate) connection: Arc<Connection>,
}

/// What the things of one connection share besides the router: the subscription strategy
/// and table, and the publish pacing.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) strategy: Subscriptions,
    pub(crate) table: Table,
    /// Shared with the [`Router`], which charges it for what the connection receives.
    pub(crate) pace: Arc<Pace>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("things", &self.router.things.read().len())
            .field("subscriptions", &self.connection.strategy)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Takes over `transport` with default settings; see [`ClientBuilder`].
    ///
    /// # Errors
    /// As for [`ClientBuilder::build`].
    pub fn new(transport: impl MqttTransport + 'static) -> Result<Self, Error> {
        Self::builder(transport).build()
    }

    /// As [`new`](Self::new), for a transport already behind an `Arc`.
    ///
    /// # Errors
    /// As for [`ClientBuilder::build`].
    pub fn from_arc(transport: Arc<dyn MqttTransport>) -> Result<Self, Error> {
        ClientBuilder::from_arc(transport).build()
    }

    /// Starts configuring a client over `transport`.
    pub fn builder(transport: impl MqttTransport + 'static) -> ClientBuilder {
        ClientBuilder::from_arc(Arc::new(transport))
    }

    /// The transport this client drives.
    pub fn transport(&self) -> &Arc<dyn MqttTransport> {
        &self.transport
    }

    /// The subscription strategy of this client.
    pub fn subscriptions(&self) -> Subscriptions {
        self.connection.strategy
    }

    /// How many subscriptions (distinct filters) the client holds on its connection now,
    /// including those being subscribed and those a dropped [`Jobs`](crate::Jobs) left behind.
    pub fn subscription_count(&self) -> usize {
        self.connection.table.len()
    }
}

/// Configures a [`Client`]: the subscription strategy, the subscription budget and the
/// publish pacing. The defaults come from the transport's [`BrokerLimits`](crate::BrokerLimits): for a transport
/// that talks to AWS IoT Core, a budget of 50 subscriptions, 40 requests a second (bursts of
/// 5) and 100 publishes in flight; for others, no limits.
#[must_use]
pub struct ClientBuilder {
    transport: Arc<dyn MqttTransport>,
    subscriptions: Subscriptions,
    max_subscriptions: Option<usize>,
    publish_rate: Option<PublishRate>,
    max_in_flight: Option<usize>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("subscriptions", &self.subscriptions)
            .field("max_subscriptions", &self.max_subscriptions)
            .field("publish_rate", &self.publish_rate)
            .field("max_in_flight", &self.max_in_flight)
            .finish_non_exhaustive()
    }
}

impl ClientBuilder {
    /// Starts configuring a client over a transport already behind an `Arc`.
    pub fn from_arc(transport: Arc<dyn MqttTransport>) -> Self {
        let limits = transport.broker_limits();
        Self {
            subscriptions: Subscriptions::default(),
            max_subscriptions: limits.max_subscriptions,
            publish_rate: limits.publishes_per_second.map(PublishRate::within),
            max_in_flight: limits.max_in_flight,
            transport,
        }
    }

    /// Which subscriptions the client makes for its things. Defaults to
    /// [`Subscriptions::PerThing`] (six per thing, any broker).
    pub fn subscriptions(mut self, subscriptions: Subscriptions) -> Self {
        self.subscriptions = subscriptions;
        self
    }

    /// The most subscriptions (distinct filters) the client holds on its connection. Building
    /// a [`Jobs`](crate::Jobs) that would need more fails with
    /// [`InvalidInput::SubscriptionBudget`] before anything is sent. Defaults to the
    /// transport's [`BrokerLimits::max_subscriptions`](crate::BrokerLimits::max_subscriptions) (50 for AWS IoT Core), else unlimited;
    /// `None` removes the budget; zero is refused by [`build`](Self::build).
    pub fn max_subscriptions(mut self, max: Option<usize>) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// How fast the client publishes requests. A call waits for its turn within its own
    /// timeout; one whose deadline passes first publishes nothing and returns
    /// [`Error::Timeout`]. A request's turn pays for its reply too; every other message the
    /// connection receives (events, replies nobody waits for) takes half a turn, so that
    /// events slow the requests down instead of pushing the connection over a broker's limit
    /// counted in and out together (AWS IoT Core's). Defaults to [`PublishRate::within`] the transport's
    /// [`BrokerLimits::publishes_per_second`](crate::BrokerLimits::publishes_per_second) (40 a second for AWS IoT Core), else unpaced;
    /// `None` removes the pacing.
    pub fn publish_rate(mut self, rate: Option<PublishRate>) -> Self {
        self.publish_rate = rate;
        self
    }

    /// The most requests waiting for their PUBACK at once; further calls wait for a slot
    /// within their timeout. Defaults to the transport's [`BrokerLimits::max_in_flight`](crate::BrokerLimits::max_in_flight) (100
    /// for AWS IoT Core), else unlimited; `None` removes the cap; zero is refused by
    /// [`build`](Self::build).
    pub fn max_in_flight(mut self, max: Option<usize>) -> Self {
        self.max_in_flight = max;
        self
    }

    /// Installs the client's message sink on the transport.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] ([`InvalidInput::Setting`]) for a budget or an in-flight cap of
    /// zero, or a publish rate that is not a positive, finite number or has a burst of zero;
    /// [`Error::Transport`] with [`TransportError::SinkInstalled`] when the transport already
    /// serves another `Client` (a transport serves one client; clone the client to share it).
    pub fn build(self) -> Result<Client, Error> {
        let refuse = |name| {
            Err(InvalidInput::Setting {
                name,
                problem: SettingProblem::Zero,
            }
            .into())
        };
        if self.max_subscriptions == Some(0) {
            return refuse("max_subscriptions");
        }
        if self.max_in_flight == Some(0) {
            return refuse("max_in_flight");
        }
        if self.publish_rate.is_some_and(|rate| !rate.is_valid()) {
            return Err(InvalidInput::Setting {
                name: "publish_rate",
                problem: SettingProblem::NotPositive,
            }
            .into());
        }
        let pace = Arc::new(Pace::new(self.publish_rate, self.max_in_flight));
        let router = Arc::new(Router::new(Arc::clone(&pace)));
        self.transport
            .set_sink(Arc::clone(&router) as Arc<dyn MessageSink>)
            .map_err(|source| Error::Transport {
                operation: None,
                source,
            })?;
        Ok(Client {
            transport: self.transport,
            router,
            connection: Arc::new(Connection {
                strategy: self.subscriptions,
                table: Table::new(self.max_subscriptions),
                pace,
            }),
        })
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
    /// The connection's pacing, charged for every message that is not the reply to a call
    /// (a request's token already covers its reply).
    pace: Arc<Pace>,
}

impl Router {
    fn new(pace: Arc<Pace>) -> Self {
        let mut hasher = RandomState::new().build_hasher();
        hasher.write_u32(std::process::id());
        Self {
            things: RwLock::new(HashMap::new()),
            epoch: AtomicU64::new(0),
            token_prefix: format!("{:016x}", hasher.finish()),
            token_counter: AtomicU64::new(0),
            unattributed: AtomicU64::new(0),
            pace,
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
/// [`Jobs`](crate::Jobs): the thing's place in the router and its share of the connection's
/// subscriptions. Dropping the last clone unregisters the thing at once and gives its share
/// back without unsubscribing (a new `Jobs` of it can be built right after, whatever the
/// delivery thread is doing).
pub(crate) struct Registration {
    pub(crate) shared: Arc<Shared>,
    client: Client,
}

impl Registration {
    /// Registers `thing` on `client`, taking its share of the subscriptions.
    pub(crate) fn new(client: &Client, thing: ThingName) -> Result<Self, InvalidInput> {
        let filters = client.connection.strategy.filters(&thing);
        let lease = client.connection.table.acquire(filters).map_err(|over| {
            InvalidInput::SubscriptionBudget {
                budget: over.budget,
                in_use: over.in_use,
                wanted: over.wanted,
            }
        })?;
        let shared = Arc::new(Shared::new(thing, lease));
        let registration = Self {
            shared,
            client: client.clone(),
        };
        if !client.router.register(&registration.shared) {
            // Dropping the registration gives the share back.
            return Err(InvalidInput::DuplicateThing(
                registration.shared.thing.clone(),
            ));
        }
        Ok(registration)
    }

    /// Unsubscribes the filters nobody else holds (waiting until `deadline`), then unregisters
    /// the thing: an UNSUBSCRIBE can never remove the filters of a `Jobs` built after it.
    pub(crate) fn close(&self, deadline: Instant) -> Result<(), TransportError> {
        let unsubscribed = self.client.connection.table.release(
            self.client.transport.as_ref(),
            &self.shared.lease,
            true,
            deadline,
        );
        self.client.router.unregister(&self.shared);
        unsubscribed
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.client.router.unregister(&self.shared);
        let _ = self.client.connection.table.release(
            self.client.transport.as_ref(),
            &self.shared.lease,
            false,
            Instant::now(),
        );
    }
}

impl MessageSink for Router {
    fn message(&self, topic: &str, payload: &[u8]) {
        let answered = match JobsTopic::parse(topic) {
            None => {
                debug!("ignoring message on non-Jobs topic {topic}");
                false
            }
            Some(parsed) => match self.lookup(parsed.thing()) {
                Some(shared) => shared.handle(parsed, topic, payload, || self.count_unattributed()),
                None => {
                    debug!("ignoring message for unregistered thing on {topic}");
                    false
                }
            },
        };
        // The broker counts every publish it sends: events and replies nobody waits for take
        // their share of the pace (a reply that answers a call was paid for by its request).
        if !answered {
            self.pace.charge_inbound();
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

//! [`Shared`]: the state of one thing that every clone of its [`Jobs`](crate::Jobs) and the
//! client's router share — calls waiting for replies, the changed flag, buffered events and the
//! subscription's epoch — and the handling of the thing's inbound messages on the transport's
//! delivery thread.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};

use crossbeam_channel::{Sender, TrySendError};
use log::{debug, warn};
use parking_lot::{Condvar, Mutex};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::jobs::Event;
use crate::names::ThingName;
use crate::pending::{Completion, Pending, Reply};
use crate::subscriptions::Lease;
use crate::topics::{JobsTopic, ThingTopics};

/// How many events [`Jobs::next_event`](crate::Jobs::next_event) keeps for a caller that has not asked yet; older ones
/// are dropped first. [`Jobs::changed`](crate::Jobs::changed) still reports that something happened.
const EVENT_BUFFER: usize = 64;

/// What a watcher of the thing (the job runner) hears: an event, or a wake-up to look at the
/// connection epoch and the closed flag.
#[derive(Debug, Clone)]
pub(crate) enum Notice {
    Event(Box<Event>),
    Wake,
}

/// A watcher: where it hears notices, and the tag it gave.
type Watcher = (Sender<(usize, Notice)>, usize);

/// State shared by all clones of one thing's [`Jobs`](crate::Jobs), reachable from the router.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) thing: ThingName,
    pub(crate) topics: ThingTopics,
    pub(crate) pending: Pending,
    pub(crate) changed: AtomicBool,
    pub(crate) events: Mutex<VecDeque<Event>>,
    /// Signalled when an event arrives or the connection epoch changes.
    pub(crate) wake: Condvar,
    /// The thing's share of the connection's subscriptions.
    pub(crate) lease: Lease,
    /// Set by [`Jobs::close`](crate::Jobs::close): every later call of any clone is refused.
    pub(crate) closed: AtomicBool,
    /// Watchers hear every event and every reconnect or close, tagged with the number they
    /// gave, without taking events from the buffer [`Jobs::next_event`](crate::Jobs::next_event)
    /// reads.
    watchers: Mutex<Vec<Watcher>>,
}

#[derive(Deserialize)]
struct TokenOnly<'a> {
    #[serde(rename = "clientToken", borrow, default)]
    client_token: Option<Cow<'a, str>>,
}

impl Shared {
    pub(crate) fn new(thing: ThingName, lease: Lease) -> Self {
        Self {
            topics: ThingTopics::new(&thing),
            thing,
            pending: Pending::default(),
            changed: AtomicBool::new(true),
            events: Mutex::new(VecDeque::new()),
            wake: Condvar::new(),
            lease,
            closed: AtomicBool::new(false),
            watchers: Mutex::new(Vec::new()),
        }
    }

    /// Adds a watcher: `tx` hears every later event, reconnect and close of the thing, tagged
    /// with `tag`, until its receiver is dropped. The channel should be bounded: a full one
    /// misses notices, which is safe for a watcher that looks for work and at the epoch and
    /// closed flag whenever it wakes.
    pub(crate) fn watch(&self, tx: Sender<(usize, Notice)>, tag: usize) {
        self.watchers.lock().push((tx, tag));
    }

    /// Tells every watcher; never blocks, and forgets watchers that are gone.
    pub(crate) fn tell_watchers(&self, notice: impl Fn() -> Notice) {
        let mut watchers = self.watchers.lock();
        if watchers.is_empty() {
            return;
        }
        watchers.retain(|(tx, tag)| {
            !matches!(
                tx.try_send((*tag, notice())),
                Err(TrySendError::Disconnected(_))
            )
        });
    }

    /// Handles one inbound message of this thing, on the transport's delivery thread.
    /// `unattributed` counts a reply that carries no token. True when it answered a call.
    pub(crate) fn handle(
        &self,
        topic: JobsTopic<'_>,
        raw_topic: &str,
        payload: &[u8],
        unattributed: impl FnOnce() -> u64,
    ) -> bool {
        match topic {
            JobsTopic::Reply {
                job,
                operation,
                kind,
                ..
            } => {
                let reply = || Reply {
                    kind,
                    payload: payload.to_vec(),
                };
                let Ok(TokenOnly {
                    client_token: Some(token),
                }) = serde_json::from_slice::<TokenOnly<'_>>(payload)
                else {
                    // Corrupt, or without a token: nobody can tell whose it is, and a foreign
                    // reply must never complete a call.
                    debug!(
                        "dropping a reply without a client token on {raw_topic} ({} so far)",
                        unattributed()
                    );
                    return false;
                };
                match self.pending.complete(&token, operation, job, reply) {
                    Completion::Delivered => return true,
                    Completion::NoMatch => {
                        debug!("dropping late, duplicate or foreign reply on {raw_topic}")
                    }
                    Completion::WrongTopic => debug!(
                        "dropping reply on {raw_topic}: its token belongs to a call on another topic"
                    ),
                }
            }
            JobsTopic::Notify { .. } => self.event(raw_topic, payload, Event::JobsChanged),
            JobsTopic::NotifyNext { .. } => self.event(raw_topic, payload, Event::NextJobChanged),
            JobsTopic::Request { .. } => debug!("ignoring a request on {raw_topic}"),
        }
        false
    }

    fn event<T: DeserializeOwned>(&self, topic: &str, payload: &[u8], wrap: fn(T) -> Event) {
        self.changed.store(true, Ordering::Release);
        let event = match serde_json::from_slice(payload) {
            Ok(event) => wrap(event),
            Err(error) => {
                warn!(
                    "undecodable event on {topic} ({} bytes): {error}",
                    payload.len()
                );
                return;
            }
        };
        self.tell_watchers(|| Notice::Event(Box::new(event.clone())));
        let mut events = self.events.lock();
        if events.len() == EVENT_BUFFER {
            debug!(
                "event buffer of {} full; dropping the oldest event",
                self.thing
            );
            events.pop_front();
        }
        events.push_back(event);
        self.wake.notify_all();
    }

    /// The transport reconnected without resuming the session.
    pub(crate) fn reconnected(&self) {
        self.changed.store(true, Ordering::Release);
        {
            let _events = self.events.lock();
            self.wake.notify_all();
        }
        self.tell_watchers(|| Notice::Wake);
    }
}

//! Subscriptions: the [`Subscriptions`] strategy a [`Client`](crate::Client) follows, and the
//! connection-level [`Table`] that shares filters between the things of one connection.
//!
//! The table counts the owners of each filter (the [`Jobs`](crate::Jobs) that need it), knows
//! in which connection epoch the broker granted it, and whether a caller is subscribing or
//! unsubscribing it right now. That makes sharing safe: a `Jobs` built while another closes
//! waits for the old UNSUBSCRIBE and subscribes after it, so the broker never ends up without a
//! filter somebody owns; and after a reconnect that lost the session, the first caller
//! re-subscribes every filter of the connection, at most 8 to a SUBSCRIBE (AWS IoT's limit).
//! A budget (`max_subscriptions`) is checked before any SUBSCRIBE is sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use log::debug;
use parking_lot::{Condvar, Mutex};

use crate::names::ThingName;
use crate::topics::ThingTopics;
use crate::transport::{MqttTransport, QoS, SubscribeOutcome, TransportError};

/// The most filters AWS IoT Core takes in one SUBSCRIBE or UNSUBSCRIBE.
pub(crate) const FILTERS_PER_PACKET: usize = 8;

/// Which MQTT subscriptions a [`Client`](crate::Client) makes for the things it serves. Set
/// with [`ClientBuilder::subscriptions`](crate::ClientBuilder::subscriptions).
///
/// | strategy | subscriptions | brokers |
/// |---|---|---|
/// | [`PerThing`](Self::PerThing) | 6 per thing | any |
/// | [`ImplicitReplies`](Self::ImplicitReplies) | 1 (2 with `notify`) per thing | AWS IoT Core |
/// | [`GatewayWildcards`](Self::GatewayWildcards) | 1 (2 with `notify`) per connection | AWS IoT Core, checked once on your account |
/// | [`PortableWildcards`](Self::PortableWildcards) | 6 per connection | any |
///
/// AWS IoT Core allows 50 subscriptions per connection, so a gateway serving more than 8
/// things over one connection needs one of the last three. Without `notify` the client hears
/// only `notify-next`: [`Jobs::changed`](crate::Jobs::changed) then reports changes of the
/// head of each thing's queue, not executions queued behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Subscriptions {
    /// Per thing, the six filters that cover every reply and event of the thing: `notify`,
    /// `notify-next`, `get/+`, `start-next/+`, `+/get/+`, `+/update/+`. Works on every broker.
    /// The default.
    #[default]
    PerThing,
    /// Per thing, only `notify-next` (and `notify` when `notify`): AWS IoT Core delivers each
    /// reply to the connection that published the request whether or not it subscribed
    /// (documented on the Jobs MQTT API page). Other brokers (mosquitto) deliver replies only
    /// to subscribers: calls would time out there.
    ImplicitReplies {
        /// Also subscribe to `notify` (the full pending list on every change).
        notify: bool,
    },
    /// Once per connection, `$aws/things/+/jobs/notify-next` (and `$aws/things/+/jobs/notify`
    /// when `notify`), routed to each thing by the topic; replies arrive unsubscribed as with
    /// [`ImplicitReplies`](Self::ImplicitReplies). One or two subscriptions for any number of
    /// things. A `+` wildcard on the thing level of Jobs topics is not documented by AWS
    /// either way (it is used on the sibling Shadow topics), and policies treat `+` literally:
    /// the policy must allow `iot:Subscribe` on
    /// `topicfilter/$aws/things/+/jobs/notify-next`, and `iot:Receive` on the things' topics.
    /// Check it once on your AWS account before relying on it.
    GatewayWildcards {
        /// Also subscribe to `$aws/things/+/jobs/notify`.
        notify: bool,
    },
    /// Once per connection, the two event wildcards and the four reply wildcards
    /// (`$aws/things/+/jobs/get/+`, …): six subscriptions for any number of things, on brokers
    /// that deliver replies only to subscribers. The connection receives the replies and events
    /// of every thing its broker lets it see; those of things it does not serve are dropped, and
    /// a reply completes only the call whose topic and client token it carries.
    PortableWildcards,
}

impl Subscriptions {
    /// The filters this strategy subscribes for `thing` (shared filters are the same strings
    /// for every thing).
    pub(crate) fn filters(self, thing: &ThingName) -> Vec<String> {
        let wildcard = |suffix: &str| format!("$aws/things/+/jobs/{suffix}");
        let events = |notify: bool, make: &dyn Fn(&str) -> String| {
            let mut filters = vec![make("notify-next")];
            if notify {
                filters.push(make("notify"));
            }
            filters
        };
        match self {
            Self::PerThing => ThingTopics::new(thing).filters().to_vec(),
            Self::ImplicitReplies { notify } => {
                let topics = ThingTopics::new(thing);
                events(notify, &|suffix| topics.event(suffix))
            }
            Self::GatewayWildcards { notify } => events(notify, &wildcard),
            Self::PortableWildcards => [
                "notify",
                "notify-next",
                "get/+",
                "start-next/+",
                "+/get/+",
                "+/update/+",
            ]
            .iter()
            .map(|suffix| wildcard(suffix))
            .collect(),
        }
    }
}

/// Why acquiring filters failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverBudget {
    pub(crate) budget: usize,
    pub(crate) in_use: usize,
    pub(crate) wanted: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Busy {
    Subscribing,
    Unsubscribing,
}

#[derive(Debug)]
struct Entry {
    /// The [`Lease`]s that hold it.
    owners: usize,
    /// The connection epoch in which the broker granted it; `None` while it is not
    /// subscribed (new, refused, unsubscribed, or of unknown fate after a timeout).
    granted_in: Option<u64>,
    /// A caller is subscribing or unsubscribing it right now.
    busy: Option<Busy>,
}

/// The filters one [`Jobs`](crate::Jobs) registration holds.
#[derive(Debug)]
pub(crate) struct Lease {
    filters: Vec<String>,
    released: AtomicBool,
}

/// The connection's subscriptions. See the [module documentation](self).
#[derive(Debug)]
pub(crate) struct Table {
    entries: Mutex<HashMap<String, Entry>>,
    /// Signalled when a subscribe or unsubscribe ends, and when a thing is closed.
    changed: Condvar,
    budget: Option<usize>,
}

/// How an [`ensure`](Table::ensure) or [`release`](Table::release) went.
pub(crate) type Outcome = Result<(), TransportError>;

impl Table {
    pub(crate) fn new(budget: Option<usize>) -> Self {
        Self {
            entries: Mutex::new(HashMap::new()),
            changed: Condvar::new(),
            budget,
        }
    }

    /// The number of filters the connection holds (subscribed or being subscribed, owned or
    /// not).
    pub(crate) fn len(&self) -> usize {
        self.entries.lock().len()
    }

    /// Takes a share of `filters`, refusing before anything is sent if that would exceed the
    /// budget. Filters nobody owns any more (left subscribed by a dropped `Jobs`) are given up
    /// first to make room: they are unsubscribed by the next [`ensure`](Self::ensure).
    pub(crate) fn acquire(&self, filters: Vec<String>) -> Result<Lease, OverBudget> {
        let mut entries = self.entries.lock();
        let new: Vec<&String> = filters
            .iter()
            .filter(|filter| !entries.contains_key(filter.as_str()))
            .collect();
        if let Some(budget) = self.budget {
            // Owned filters stay; unowned ones can be given up to make room.
            let owned = entries.values().filter(|entry| entry.owners > 0).count();
            let revived = filters
                .iter()
                .filter(|filter| entries.get(filter.as_str()).is_some_and(|e| e.owners == 0))
                .count();
            if owned + revived + new.len() > budget {
                return Err(OverBudget {
                    budget,
                    in_use: owned,
                    wanted: revived + new.len(),
                });
            }
        }
        for filter in &filters {
            entries
                .entry(filter.clone())
                .or_insert(Entry {
                    owners: 0,
                    granted_in: None,
                    busy: None,
                })
                .owners += 1;
        }
        Ok(Lease {
            filters,
            released: AtomicBool::new(false),
        })
    }

    /// Wakes every caller waiting in [`ensure`](Self::ensure) (a thing was closed: its callers
    /// look at their `closed` flag).
    pub(crate) fn wake_all(&self) {
        let _entries = self.entries.lock();
        self.changed.notify_all();
    }

    /// Makes sure every filter of `lease` is granted in connection `epoch`, waiting until
    /// `deadline` for subscribes another caller runs. The first caller after a reconnect
    /// re-subscribes every owned filter of the connection (at most 8 per SUBSCRIBE), and gives
    /// up unowned ones beyond the budget. Stops early with `Ok(false)` once `closed` is set.
    pub(crate) fn ensure(
        &self,
        transport: &dyn MqttTransport,
        lease: &Lease,
        epoch: u64,
        deadline: Instant,
        closed: &AtomicBool,
    ) -> Result<bool, TransportError> {
        loop {
            let (subscribe, unsubscribe) = {
                let mut entries = self.entries.lock();
                loop {
                    if closed.load(Ordering::Acquire) {
                        return Ok(false);
                    }
                    let mine = lease.filters.iter().filter_map(|f| entries.get(f));
                    let mut stale = false;
                    let mut waiting = false;
                    for entry in mine {
                        if entry.granted_in != Some(epoch) {
                            stale = true;
                            waiting |= entry.busy.is_some();
                        }
                    }
                    if !stale {
                        return Ok(true);
                    }
                    if !waiting {
                        break;
                    }
                    if self.changed.wait_until(&mut entries, deadline).timed_out() {
                        return Err(TransportError::Timeout);
                    }
                }
                self.claim(&mut entries, &lease.filters, epoch)
            };
            let result = self.apply(transport, &subscribe, &unsubscribe, epoch, deadline);
            result?;
        }
    }

    /// Marks what this caller subscribes (every owned filter not granted in `epoch` and not
    /// busy: the caller's own first, in their order, then the others sorted) and unsubscribes
    /// (unowned filters over the budget).
    fn claim(
        &self,
        entries: &mut HashMap<String, Entry>,
        own: &[String],
        epoch: u64,
    ) -> (Vec<String>, Vec<String>) {
        // Unowned filters of an earlier connection epoch went with the lost session.
        entries.retain(|_, entry| {
            entry.owners > 0 || entry.busy.is_some() || entry.granted_in == Some(epoch)
        });
        let mut others = Vec::new();
        for (filter, entry) in entries.iter_mut() {
            if entry.owners > 0 && entry.busy.is_none() && entry.granted_in != Some(epoch) {
                entry.busy = Some(Busy::Subscribing);
                others.push(filter.clone());
            }
        }
        others.sort();
        let mut subscribe: Vec<String> =
            own.iter().filter(|f| others.contains(f)).cloned().collect();
        subscribe.extend(others.into_iter().filter(|f| !own.contains(f)));
        let mut unsubscribe = Vec::new();
        if let Some(budget) = self.budget
            && entries.len() > budget
        {
            let excess = entries.len() - budget;
            for (filter, entry) in entries.iter_mut() {
                if unsubscribe.len() == excess {
                    break;
                }
                if entry.owners == 0 && entry.busy.is_none() {
                    entry.busy = Some(Busy::Unsubscribing);
                    unsubscribe.push(filter.clone());
                }
            }
        }
        (subscribe, unsubscribe)
    }

    /// Sends what [`claim`](Self::claim) marked, with no lock held, and records the outcome.
    fn apply(
        &self,
        transport: &dyn MqttTransport,
        subscribe: &[String],
        unsubscribe: &[String],
        epoch: u64,
        deadline: Instant,
    ) -> Outcome {
        // Whatever happens (an error, a panicking transport), every mark is cleared.
        let mut marks = Marks {
            table: self,
            subscribe,
            unsubscribe,
            granted: Vec::new(),
            unsubscribed: Vec::new(),
            epoch,
        };
        for batch in unsubscribe.chunks(FILTERS_PER_PACKET) {
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            debug!("giving up {} unowned subscriptions", batch.len());
            transport.unsubscribe(&batch, deadline)?;
            marks
                .unsubscribed
                .extend(batch.iter().map(|f| (*f).to_owned()));
        }
        for batch in subscribe.chunks(FILTERS_PER_PACKET) {
            let filters: Vec<&str> = batch.iter().map(String::as_str).collect();
            debug!("subscribing {} filters", filters.len());
            let outcomes = transport.subscribe(&filters, QoS::AtLeastOnce, deadline)?;
            if outcomes.len() != filters.len() {
                return Err(TransportError::backend(format!(
                    "SUBACK has {} codes for {} filters",
                    outcomes.len(),
                    filters.len()
                )));
            }
            for (filter, outcome) in batch.iter().zip(&outcomes) {
                if *outcome == SubscribeOutcome::Refused {
                    return Err(TransportError::SubscriptionRefused {
                        filter: filter.clone(),
                    });
                }
                marks.granted.push(filter.clone());
            }
        }
        Ok(())
    }

    /// Gives back the lease's filters. With `unsubscribe` (a close), the filters nobody else
    /// holds are unsubscribed now, waiting until `deadline` for the UNSUBACK and for subscribes
    /// of them in progress; otherwise (a drop, which must not block) they stay subscribed,
    /// unowned, until the budget needs their room or the connection ends.
    pub(crate) fn release(
        &self,
        transport: &dyn MqttTransport,
        lease: &Lease,
        unsubscribe: bool,
        deadline: Instant,
    ) -> Outcome {
        if lease.released.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        let mut entries = self.entries.lock();
        for filter in &lease.filters {
            if let Some(entry) = entries.get_mut(filter) {
                entry.owners = entry.owners.saturating_sub(1);
            }
        }
        if !unsubscribe {
            return Ok(());
        }
        // Wait for subscribes of our filters in progress: unsubscribing now could be
        // overtaken by their SUBSCRIBE.
        loop {
            let busy = lease
                .filters
                .iter()
                .filter_map(|f| entries.get(f))
                .any(|entry| entry.owners == 0 && entry.busy == Some(Busy::Subscribing));
            if !busy {
                break;
            }
            if self.changed.wait_until(&mut entries, deadline).timed_out() {
                return Err(TransportError::Timeout);
            }
        }
        let mut gone = Vec::new();
        for filter in &lease.filters {
            if let Some(entry) = entries.get_mut(filter)
                && entry.owners == 0
                && entry.busy.is_none()
            {
                entry.busy = Some(Busy::Unsubscribing);
                gone.push(filter.clone());
            }
        }
        drop(entries);
        let mut marks = Marks {
            table: self,
            subscribe: &[],
            unsubscribe: &gone,
            granted: Vec::new(),
            unsubscribed: Vec::new(),
            epoch: 0,
        };
        for batch in gone.chunks(FILTERS_PER_PACKET) {
            let batch: Vec<&str> = batch.iter().map(String::as_str).collect();
            transport.unsubscribe(&batch, deadline)?;
            marks
                .unsubscribed
                .extend(batch.iter().map(|f| (*f).to_owned()));
        }
        Ok(())
    }
}

/// The marks of one [`Table::apply`] or [`Table::release`]: on drop (success, error or panic)
/// every filter it marked busy is cleared and its fate recorded, and waiters are woken.
struct Marks<'a> {
    table: &'a Table,
    subscribe: &'a [String],
    unsubscribe: &'a [String],
    granted: Vec<String>,
    unsubscribed: Vec<String>,
    epoch: u64,
}

impl Drop for Marks<'_> {
    fn drop(&mut self) {
        let mut entries = self.table.entries.lock();
        for filter in self.subscribe {
            if let Some(entry) = entries.get_mut(filter) {
                entry.busy = None;
                entry.granted_in = self.granted.contains(filter).then_some(self.epoch);
            }
        }
        for filter in self.unsubscribe {
            let done = self.unsubscribed.contains(filter);
            if let Some(entry) = entries.get_mut(filter) {
                entry.busy = None;
                // Gone from the broker (or of unknown fate): a new owner subscribes it again.
                entry.granted_in = None;
                if done && entry.owners == 0 {
                    entries.remove(filter);
                }
            }
        }
        self.table.changed.notify_all();
    }
}

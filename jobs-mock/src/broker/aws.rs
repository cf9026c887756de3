//! The [`MockBroker`]'s AWS mode: AWS IoT Core's quotas and implicit Jobs replies (see
//! [`crate::aws`] for the behaviour and its evidence).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use jobs_core::{MessageSink, TransportError};

use super::recording::BROKER_CLIENT;
use super::routing::{Delivery, deliver};
use super::{MockBroker, State};
use crate::aws::relay::{self, JobsTopic};
use crate::aws::window::SlidingWindow;
use crate::aws::{AwsSettings, QuotaCounters, QuotaReaction, QuotaReport};

/// The AWS mode's state: the settings, and per client ID its rate window and counters.
pub(super) struct AwsState {
    settings: AwsSettings,
    clients: HashMap<String, ClientQuota>,
}

struct ClientQuota {
    window: Option<SlidingWindow>,
    counters: QuotaCounters,
}

/// What the broker does with one PUBLISH of a client.
pub(super) enum Route {
    /// Routed by subscription, as on any broker.
    Ordinary,
    /// A Jobs request: relayed to the service on `relay_topic` (and answered by scripts, whose
    /// replies reach the requester alone).
    Request { relay_topic: String },
    /// The service's relayed reply: `topic` to the newest connection of `client_id` alone.
    Reply { client_id: String, topic: String },
    /// Dropped (acknowledged): the topic is the service's alone.
    Denied,
    /// Discarded by the rate quota: no PUBACK.
    Discarded,
    /// Over the payload limit.
    Oversized(QuotaReaction),
}

/// How a PUBLISH ended for its publisher.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PublishOutcome {
    /// Applied and acknowledged (PUBACK).
    Acknowledged,
    /// Discarded without PUBACK: a QoS 1 publisher waits until its deadline.
    Discarded,
}

/// When the broker closes a connection for a SUBSCRIBE or UNSUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Close {
    No,
    /// After answering the packet.
    AfterAck,
    /// Instead of answering it.
    Instead,
}

/// The broker's verdict on a SUBSCRIBE: allowed or refused per filter, in order (fewer
/// verdicts than filters when the connection closes part-way), and whether it closes.
pub(super) struct SubscribePlan {
    pub(super) allowed: Vec<bool>,
    pub(super) close: Close,
}

impl AwsState {
    pub(super) fn new(settings: AwsSettings) -> Self {
        Self {
            settings,
            clients: HashMap::new(),
        }
    }

    fn is_service(&self, client_id: &str) -> bool {
        client_id == self.settings.service_client_id
    }

    fn quota(&mut self, client_id: &str) -> &mut ClientQuota {
        // Looked up before inserting: no allocation for a client already counted.
        if !self.clients.contains_key(client_id) {
            let rate = self.settings.publish_rate;
            let quota = ClientQuota {
                window: rate.map(|rate| SlidingWindow::new(rate.limit, rate.per)),
                counters: QuotaCounters::default(),
            };
            self.clients.insert(client_id.to_owned(), quota);
        }
        self.clients
            .get_mut(client_id)
            .unwrap_or_else(|| unreachable!("inserted above"))
    }

    /// Admits one publish of `client_id` (either direction) into its rate window.
    fn admit(&mut self, client_id: &str) -> bool {
        let now = self.settings.clock.elapsed();
        self.quota(client_id)
            .window
            .as_mut()
            .is_none_or(|window| window.admit(now))
    }

    /// Decides the route of a PUBLISH of `client_id` and counts it.
    pub(super) fn inbound(&mut self, client_id: &str, topic: &str, payload_len: usize) -> Route {
        if self.is_service(client_id) {
            return match relay::parse_reply(topic) {
                Some((client_id, topic)) => Route::Reply {
                    client_id,
                    topic: topic.to_owned(),
                },
                None => Route::Ordinary,
            };
        }
        if payload_len > self.settings.max_payload {
            let reaction = self.settings.payload_overrun;
            let counters = &mut self.quota(client_id).counters;
            counters.oversized += 1;
            if reaction != QuotaReaction::Refuse {
                counters.disconnected += 1;
            }
            return Route::Oversized(reaction);
        }
        if !self.admit(client_id) {
            self.quota(client_id).counters.discarded_inbound += 1;
            return Route::Discarded;
        }
        let implicit = self.settings.implicit_replies;
        let counters = &mut self.quota(client_id).counters;
        counters.published += 1;
        if relay::is_reserved_filter(topic) {
            counters.denied += 1;
            return Route::Denied;
        }
        match relay::classify(topic) {
            JobsTopic::Reply | JobsTopic::Event => {
                counters.denied += 1;
                Route::Denied
            }
            JobsTopic::Request if implicit => Route::Request {
                relay_topic: relay::request_topic(client_id, topic),
            },
            _ => Route::Ordinary,
        }
    }

    /// Admits one message to `client_id` (the service always) and counts it.
    pub(super) fn outbound(&mut self, client_id: &str) -> bool {
        if self.is_service(client_id) {
            return true;
        }
        let admitted = self.admit(client_id);
        let counters = &mut self.quota(client_id).counters;
        if admitted {
            counters.delivered += 1;
        } else {
            counters.discarded_outbound += 1;
        }
        admitted
    }

    /// Whether Jobs replies go to the requester alone.
    pub(super) fn implicit_replies(&self) -> bool {
        self.settings.implicit_replies
    }

    /// The verdict on a SUBSCRIBE of `client_id`, which holds `held` (in order) now;
    /// `refused_by_test` are the filters of [`MockBroker::refuse_subscriptions`] (refused
    /// without counting).
    pub(super) fn plan_subscribe(
        &mut self,
        client_id: &str,
        held: &[&str],
        filters: &[&str],
        refused_by_test: &[String],
    ) -> SubscribePlan {
        let by_test = |filter: &str| refused_by_test.iter().any(|r| r == filter);
        if self.is_service(client_id) {
            return SubscribePlan {
                allowed: filters.iter().map(|f| !by_test(f)).collect(),
                close: Close::No,
            };
        }
        let settings = self.settings.clone();
        let counters = &mut self.quota(client_id).counters;
        if filters.len() > settings.max_filters_per_subscribe {
            counters.subscribe_refused += count(filters.len());
            return refuse_packet(counters, settings.filters_overrun, filters.len());
        }
        let mut holding: Vec<&str> = held.to_vec();
        let mut plan = SubscribePlan {
            allowed: Vec::with_capacity(filters.len()),
            close: Close::No,
        };
        for &filter in filters {
            let allowed = if by_test(filter) {
                false
            } else if relay::is_reserved_filter(filter) {
                counters.denied += 1;
                false
            } else if holding.contains(&filter) {
                counters.subscribe_granted += 1;
                true
            } else if holding.len() < settings.max_subscriptions {
                holding.push(filter);
                counters.subscribe_granted += 1;
                true
            } else {
                counters.subscribe_refused += 1;
                match settings.subscription_overrun {
                    QuotaReaction::Refuse => {}
                    QuotaReaction::RefuseAndDisconnect => plan.close = Close::AfterAck,
                    QuotaReaction::Disconnect => {
                        plan.close = Close::Instead;
                        counters.disconnected += 1;
                        return plan;
                    }
                }
                false
            };
            plan.allowed.push(allowed);
        }
        if plan.close != Close::No {
            counters.disconnected += 1;
        }
        plan
    }

    /// The verdict on an UNSUBSCRIBE of `client_id` with `filters` filters: `None` to apply it,
    /// else how the connection closes (an UNSUBSCRIBE with too many filters changes nothing).
    pub(super) fn plan_unsubscribe(&mut self, client_id: &str, filters: usize) -> Option<Close> {
        if self.is_service(client_id) || filters <= self.settings.max_filters_per_subscribe {
            return None;
        }
        let reaction = self.settings.filters_overrun;
        let counters = &mut self.quota(client_id).counters;
        Some(refuse_packet(counters, reaction, 0).close)
    }
}

/// A whole packet refused by the filters-per-SUBSCRIBE rule.
fn refuse_packet(
    counters: &mut QuotaCounters,
    reaction: QuotaReaction,
    filters: usize,
) -> SubscribePlan {
    let close = match reaction {
        QuotaReaction::Refuse => Close::No,
        QuotaReaction::RefuseAndDisconnect => Close::AfterAck,
        QuotaReaction::Disconnect => Close::Instead,
    };
    if close != Close::No {
        counters.disconnected += 1;
    }
    let allowed = match close {
        Close::Instead => Vec::new(),
        Close::No | Close::AfterAck => vec![false; filters],
    };
    SubscribePlan { allowed, close }
}

fn count(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

impl State {
    /// The newest connection of `client_id` whose session lives (connected or not).
    pub(super) fn session_of(&self, client_id: &str) -> Option<usize> {
        self.clients
            .iter()
            .rposition(|c| c.id == client_id && !c.replaced && !c.closed)
    }

    /// Delivers `topic` to the connection `index` alone, whether or not it subscribed, with
    /// QoS 1: now if it is connected (returned, to be handed over with no lock held), else
    /// kept for its session; nothing if its session ended. Counted as outbound in AWS mode.
    pub(super) fn direct_delivery(
        &mut self,
        index: usize,
        topic: &str,
        payload: &[u8],
    ) -> Option<Delivery> {
        let client = self.clients.get(index)?;
        if client.replaced || client.closed {
            return None;
        }
        let client_id = client.id.clone();
        if let Some(aws) = &mut self.aws
            && !aws.outbound(&client_id)
        {
            return None;
        }
        self.record_publish(BROKER_CLIENT, topic, payload);
        let client = self.clients.get_mut(index)?;
        let payload: Arc<[u8]> = Arc::from(payload);
        if client.connected && !client.resuming {
            let sink: Arc<dyn MessageSink> = Arc::clone(client.sink.as_ref()?);
            return Some((sink, topic.to_owned(), payload));
        }
        client.session.push_back((topic.to_owned(), payload));
        None
    }
}

impl MockBroker {
    /// A broker in AWS mode with AWS IoT Core's quotas and implicit Jobs replies
    /// ([`AwsSettings::default`]); see [`crate::aws`]. Run the Jobs simulator on it in relay
    /// mode ([`SimulatorMode::Relay`](crate::service::SimulatorMode::Relay)) as
    /// `jobs-service`.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use jobs_core::{Client, Jobs};
    /// use jobs_mock::MockBroker;
    /// use jobs_mock::service::{Clock, JobsService, Simulator, SimulatorMode};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let broker = MockBroker::aws();
    /// let _simulator = Simulator::start_with(
    ///     Arc::new(broker.connect("jobs-service")),
    ///     JobsService::new(Clock::virtual_at(1_750_000_000)),
    ///     SimulatorMode::Relay,
    /// )?;
    /// let client = Client::new(broker.connect("pump-07"))?;
    /// let jobs = Jobs::new(&client, "pump-07")?;
    /// assert!(jobs.list()?.is_empty());
    /// let counters = broker.quota_report().client("pump-07");
    /// assert_eq!(counters.discarded(), 0);
    /// assert!(counters.published >= 1 && counters.delivered >= 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn aws() -> Self {
        Self::with_aws(AwsSettings::default())
    }

    /// A broker in AWS mode with these settings; see [`crate::aws`].
    pub fn with_aws(settings: AwsSettings) -> Self {
        let broker = Self::new();
        broker.shared.state.lock().aws = Some(AwsState::new(settings));
        broker
    }

    /// What the AWS mode counted, per client ID (empty in portable mode). `subscriptions` is
    /// what the newest connection of each client ID holds now.
    pub fn quota_report(&self) -> QuotaReport {
        let state = self.shared.state.lock();
        let Some(aws) = &state.aws else {
            return QuotaReport::default();
        };
        let clients: BTreeMap<String, QuotaCounters> = aws
            .clients
            .iter()
            .map(|(id, quota)| {
                let mut counters = quota.counters;
                counters.subscriptions = state
                    .session_of(id)
                    .and_then(|index| state.clients.get(index))
                    .map_or(0, |c| count(c.subscriptions.len()));
                (id.clone(), counters)
            })
            .collect();
        QuotaReport { clients }
    }

    /// Zeroes every counter and empties every rate window of the AWS mode.
    pub fn reset_quota_counters(&self) {
        if let Some(aws) = &mut self.shared.state.lock().aws {
            aws.clients.clear();
        }
    }

    /// Delivers `payload` on `topic` to the newest connection of `client_id` alone, whether
    /// or not it subscribed, as AWS IoT Core delivers a Jobs reply: with QoS 1, before this
    /// returns if it is connected, kept for its session if it is offline, dropped if it has
    /// none. Counted as outbound in AWS mode. Returns whether the client has a session.
    pub fn inject_to(&self, client_id: &str, topic: &str, payload: &[u8]) -> bool {
        let (exists, delivery) = {
            let mut state = self.shared.state.lock();
            match state.session_of(client_id) {
                Some(index) => (true, state.direct_delivery(index, topic, payload)),
                None => (false, None),
            }
        };
        deliver(delivery.into_iter().collect());
        exists
    }

    /// Closes the connection of `client_id` for a quota, as
    /// [`drop_connection`](Self::drop_connection) does (the session stays).
    pub(super) fn close_for_quota(&self, client_id: &str) {
        log::debug!("mock broker (AWS mode): closing the connection of {client_id} for a quota");
        self.drop_connection(client_id);
    }

    /// Applies the payload-limit reaction to a PUBLISH of `client_id`.
    pub(super) fn refuse_oversized(
        &self,
        client_id: &str,
        reaction: QuotaReaction,
    ) -> Result<PublishOutcome, TransportError> {
        match reaction {
            QuotaReaction::Refuse => Ok(PublishOutcome::Discarded),
            QuotaReaction::RefuseAndDisconnect | QuotaReaction::Disconnect => {
                self.close_for_quota(client_id);
                Err(TransportError::ConnectionLost)
            }
        }
    }
}

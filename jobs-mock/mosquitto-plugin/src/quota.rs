//! [`Quotas`]: the plugin's decisions as a pure state machine (no FFI): what mosquitto does
//! with each SUBSCRIBE filter, UNSUBSCRIBE filter, inbound PUBLISH and outbound delivery, and
//! the counters per client ID.

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::time::Duration;

use crate::config::{Config, Reaction};
use crate::relay::{self, JobsTopic};
use crate::window::SlidingWindow;

/// The client behind an event, as mosquitto describes it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Connection<'a> {
    /// The client ID.
    pub(crate) id: &'a str,
    /// The identity of the connection (mosquitto's context pointer): it changes when the
    /// client reconnects or is taken over.
    pub(crate) handle: usize,
    /// Whether the connection started a clean session.
    pub(crate) clean_session: bool,
    /// `mosquitto_client_sub_count`: array slots, not live subscriptions (it never shrinks on
    /// UNSUBSCRIBE), but above zero when a resumed session brought subscriptions along.
    pub(crate) sub_count: usize,
}

/// The verdict on a SUBSCRIBE filter or an outbound delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// `MOSQ_ERR_SUCCESS`.
    Allow,
    /// `MOSQ_ERR_ACL_DENIED`: SUBACK 0x80 for a filter; no delivery for a message.
    Deny,
    /// Any other error: mosquitto closes the connection without answering the packet.
    Disconnect,
}

/// What happens to an inbound PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Action {
    /// Routed as usual.
    Pass,
    /// A Jobs request: routed on this relay topic instead (to the service), not retained.
    Relay(String),
    /// Dropped (`MOSQ_ERR_ACL_DENIED`: mosquitto still sends the PUBACK).
    Drop,
    /// Dropped and the connection closed without PUBACK (any other error).
    Disconnect,
    /// The service's relayed reply: `topic` to `client_id` alone (if within its rate), and
    /// the relay message dropped.
    Deliver { client_id: String, topic: String },
    /// A counters request: the report (after zeroing the counters if `reset`) to the
    /// publisher alone, and the request dropped.
    Report { reset: bool },
}

/// What the plugin counted for one client ID (the fields of `jobs_mock::aws::QuotaCounters`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counters {
    pub(crate) subscribe_granted: u64,
    pub(crate) subscribe_refused: u64,
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    pub(crate) discarded_inbound: u64,
    pub(crate) discarded_outbound: u64,
    pub(crate) oversized: u64,
    pub(crate) denied: u64,
    pub(crate) disconnected: u64,
}

/// One client ID's state.
#[derive(Debug)]
struct Client {
    /// The connection seen last (0: none since its last DISCONNECT).
    handle: usize,
    /// The distinct filters its session holds.
    filters: HashSet<String>,
    window: Option<SlidingWindow>,
    counters: Counters,
}

/// The plugin's state: settings, and per client ID (the service excepted) its filters, rate
/// window and counters; the client IDs to disconnect at the next tick.
#[derive(Debug)]
pub(crate) struct Quotas {
    config: Config,
    clients: HashMap<String, Client>,
    kicks: Vec<String>,
}

impl Quotas {
    pub(crate) fn new(config: Config) -> Self {
        Self {
            config,
            clients: HashMap::new(),
            kicks: Vec::new(),
        }
    }

    pub(crate) fn is_service(&self, client_id: &str) -> bool {
        client_id == self.config.service_client_id
    }

    /// The state of the client behind an event. On the first event of a connection not seen
    /// before, the filters are kept only if it resumed a session that brought subscriptions
    /// (mosquitto then moved them to it), else forgotten (mosquitto dropped them).
    fn client(&mut self, conn: &Connection<'_>) -> &mut Client {
        let rate = self.config.publish_rate;
        let client = self
            .clients
            .entry(conn.id.to_owned())
            .or_insert_with(|| Client {
                handle: 0,
                filters: HashSet::new(),
                window: rate.map(|(limit, per)| SlidingWindow::new(limit, per)),
                counters: Counters::default(),
            });
        if client.handle != conn.handle {
            if conn.clean_session || conn.sub_count == 0 {
                client.filters.clear();
            }
            client.handle = conn.handle;
        }
        client
    }

    /// A SUBSCRIBE filter of `conn`.
    pub(crate) fn subscribe(&mut self, conn: &Connection<'_>, filter: &str) -> Verdict {
        if self.is_service(conn.id) {
            return Verdict::Allow;
        }
        let (max, reaction) = (
            self.config.max_subscriptions,
            self.config.subscription_overrun,
        );
        let client = self.client(conn);
        if relay::is_reserved_filter(filter) {
            client.counters.denied += 1;
            return Verdict::Deny;
        }
        if client.filters.contains(filter) || client.filters.len() < max {
            client.filters.insert(filter.to_owned());
            client.counters.subscribe_granted += 1;
            return Verdict::Allow;
        }
        client.counters.subscribe_refused += 1;
        match reaction {
            Reaction::Refuse => Verdict::Deny,
            Reaction::RefuseAndDisconnect => {
                client.counters.disconnected += 1;
                self.kicks.push(conn.id.to_owned());
                Verdict::Deny
            }
            Reaction::Disconnect => {
                client.counters.disconnected += 1;
                Verdict::Disconnect
            }
        }
    }

    /// An UNSUBSCRIBE filter of `conn` (always allowed).
    pub(crate) fn unsubscribe(&mut self, conn: &Connection<'_>, filter: &str) {
        if !self.is_service(conn.id) {
            self.client(conn).filters.remove(filter);
        }
    }

    /// A delivery of a message on `topic` to `conn` (by subscription); `now` is the plugin's
    /// clock.
    pub(crate) fn read(&mut self, conn: &Connection<'_>, topic: &str, now: Duration) -> Verdict {
        if self.is_service(conn.id) {
            return Verdict::Allow;
        }
        if relay::is_reserved_filter(topic) {
            return Verdict::Deny;
        }
        let client = self.client(conn);
        if outbound(client, now) {
            Verdict::Allow
        } else {
            Verdict::Deny
        }
    }

    /// A delivery of a relayed reply to `client_id` (not by subscription): within its rate?
    pub(crate) fn deliver(&mut self, client_id: &str, now: Duration) -> bool {
        if self.is_service(client_id) {
            return true;
        }
        match self.clients.get_mut(client_id) {
            Some(client) => outbound(client, now),
            // A client the plugin never saw has not connected since the broker started.
            None => false,
        }
    }

    /// An inbound PUBLISH of `conn` on `topic` with `payload_len` bytes.
    pub(crate) fn message(
        &mut self,
        conn: &Connection<'_>,
        topic: &str,
        payload_len: usize,
        now: Duration,
    ) -> Action {
        match topic {
            relay::QUOTA_GET_TOPIC => return Action::Report { reset: false },
            relay::QUOTA_RESET_TOPIC => return Action::Report { reset: true },
            _ => {}
        }
        if self.is_service(conn.id) {
            return match relay::parse_reply(topic) {
                Some((client_id, topic)) => Action::Deliver {
                    client_id,
                    topic: topic.to_owned(),
                },
                None => Action::Pass,
            };
        }
        let config = self.config.clone();
        let client = self.client(conn);
        if payload_len > config.max_payload {
            client.counters.oversized += 1;
            return match config.payload_overrun {
                Reaction::Refuse => Action::Drop,
                Reaction::RefuseAndDisconnect => {
                    client.counters.disconnected += 1;
                    self.kicks.push(conn.id.to_owned());
                    Action::Drop
                }
                Reaction::Disconnect => {
                    client.counters.disconnected += 1;
                    Action::Disconnect
                }
            };
        }
        if !client.window.as_mut().is_none_or(|w| w.admit(now)) {
            client.counters.discarded_inbound += 1;
            return Action::Drop;
        }
        client.counters.published += 1;
        if relay::is_reserved_filter(topic) {
            client.counters.denied += 1;
            return Action::Drop;
        }
        match relay::classify(topic) {
            JobsTopic::Reply | JobsTopic::Event => {
                client.counters.denied += 1;
                Action::Drop
            }
            JobsTopic::Request if config.implicit_replies => {
                Action::Relay(relay::request_topic(conn.id, topic))
            }
            _ => Action::Pass,
        }
    }

    /// A connection ended: the next event of this client ID is from a new connection.
    pub(crate) fn disconnected(&mut self, client_id: &str, handle: usize) {
        if let Some(client) = self.clients.get_mut(client_id)
            && client.handle == handle
        {
            client.handle = 0;
        }
    }

    /// The client IDs to disconnect now (`refuse-and-disconnect`), each once.
    pub(crate) fn take_kicks(&mut self) -> Vec<String> {
        let mut kicks = std::mem::take(&mut self.kicks);
        kicks.dedup();
        kicks
    }

    /// Zeroes every counter and empties every rate window (filters are kept).
    pub(crate) fn reset(&mut self) {
        let rate = self.config.publish_rate;
        for client in self.clients.values_mut() {
            client.counters = Counters::default();
            client.window = rate.map(|(limit, per)| SlidingWindow::new(limit, per));
        }
    }

    /// The counters as JSON: `{"clients":{"<id>":{"subscriptions":n,…},…}}`.
    pub(crate) fn report(&self) -> String {
        let mut json = String::from(r#"{"clients":{"#);
        let mut ids: Vec<&String> = self.clients.keys().collect();
        ids.sort();
        for (i, id) in ids.into_iter().enumerate() {
            let Some(client) = self.clients.get(id) else {
                continue;
            };
            let c = &client.counters;
            if i > 0 {
                json.push(',');
            }
            json_string(&mut json, id);
            let _ = write!(
                json,
                r#":{{"subscriptions":{},"subscribe_granted":{},"subscribe_refused":{},"published":{},"delivered":{},"discarded_inbound":{},"discarded_outbound":{},"oversized":{},"denied":{},"disconnected":{}}}"#,
                client.filters.len(),
                c.subscribe_granted,
                c.subscribe_refused,
                c.published,
                c.delivered,
                c.discarded_inbound,
                c.discarded_outbound,
                c.oversized,
                c.denied,
                c.disconnected,
            );
        }
        json.push_str("}}");
        json
    }

    #[cfg(test)]
    pub(crate) fn counters(&self, client_id: &str) -> Counters {
        self.clients
            .get(client_id)
            .map(|c| c.counters)
            .unwrap_or_default()
    }

    #[cfg(test)]
    pub(crate) fn filters(&self, client_id: &str) -> usize {
        self.clients.get(client_id).map_or(0, |c| c.filters.len())
    }
}

/// Admits one outbound message of `client` into its window and counts it.
fn outbound(client: &mut Client, now: Duration) -> bool {
    if client.window.as_mut().is_none_or(|w| w.admit(now)) {
        client.counters.delivered += 1;
        true
    } else {
        client.counters.discarded_outbound += 1;
        false
    }
}

/// Appends `s` as a JSON string.
fn json_string(json: &mut String, s: &str) {
    json.push('"');
    for c in s.chars() {
        match c {
            '"' => json.push_str("\\\""),
            '\\' => json.push_str("\\\\"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(json, "\\u{:04x}", u32::from(c));
            }
            c => json.push(c),
        }
    }
    json.push('"');
}

#[cfg(test)]
mod tests;

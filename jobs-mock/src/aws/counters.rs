//! [`QuotaCounters`] and [`QuotaReport`]: what an AWS-mode broker counted, per client ID.

use std::collections::BTreeMap;

use serde::Deserialize;

/// What an AWS-mode broker counted for one client ID since it first saw it (or since the last
/// reset), across its connections. The service's connection is exempt and never counted.
///
/// The same fields, with the same meaning, come from the
/// [`MockBroker`](crate::MockBroker) ([`quota_report`](crate::MockBroker::quota_report)) and
/// from the mosquitto plugin (its JSON report, read by `LocalBroker::quota_report`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct QuotaCounters {
    /// Distinct filters the client holds now.
    pub subscriptions: u64,
    /// Filters granted in SUBACKs, subscriptions again to a held filter included.
    pub subscribe_granted: u64,
    /// Filters refused by a quota: beyond the subscriptions per connection, or in a SUBSCRIBE
    /// with too many filters (MockBroker only).
    pub subscribe_refused: u64,
    /// PUBLISHes from the client within the rate (and the payload limit).
    pub published: u64,
    /// Messages sent to the client within the rate: by subscription, and implicit replies.
    pub delivered: u64,
    /// PUBLISHes from the client discarded by the rate quota.
    pub discarded_inbound: u64,
    /// Messages to the client discarded by the rate quota.
    pub discarded_outbound: u64,
    /// PUBLISHes from the client over the payload limit.
    pub oversized: u64,
    /// PUBLISHes and filters refused because they are the service's alone: the relay
    /// (`$jobs-emulator/…`), Jobs replies and events.
    pub denied: u64,
    /// Connections the broker closed for a quota.
    pub disconnected: u64,
}

impl QuotaCounters {
    /// Publishes discarded by the rate quota, both directions.
    pub fn discarded(&self) -> u64 {
        self.discarded_inbound + self.discarded_outbound
    }

    /// Field-wise sum.
    fn add(&mut self, other: &Self) {
        self.subscriptions += other.subscriptions;
        self.subscribe_granted += other.subscribe_granted;
        self.subscribe_refused += other.subscribe_refused;
        self.published += other.published;
        self.delivered += other.delivered;
        self.discarded_inbound += other.discarded_inbound;
        self.discarded_outbound += other.discarded_outbound;
        self.oversized += other.oversized;
        self.denied += other.denied;
        self.disconnected += other.disconnected;
    }
}

/// The counters of every client ID an AWS-mode broker has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
#[non_exhaustive]
pub struct QuotaReport {
    /// The counters per client ID.
    pub clients: BTreeMap<String, QuotaCounters>,
}

impl QuotaReport {
    /// The counters of one client ID (all zero if the broker never counted it).
    pub fn client(&self, client_id: &str) -> QuotaCounters {
        self.clients.get(client_id).copied().unwrap_or_default()
    }

    /// The sum over every client.
    pub fn total(&self) -> QuotaCounters {
        let mut total = QuotaCounters::default();
        for counters in self.clients.values() {
            total.add(counters);
        }
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_reads_the_plugins_json_and_sums_it() {
        let json = r#"{"clients":{"a/b":{"published":3,"discarded_inbound":1,"future":7},
            "c":{"published":2,"discarded_outbound":4,"subscriptions":50}}}"#;
        let report: QuotaReport = serde_json::from_str(json).unwrap();
        assert_eq!(report.client("a/b").published, 3);
        assert_eq!(report.client("nobody"), QuotaCounters::default());
        let total = report.total();
        assert_eq!(total.published, 5);
        assert_eq!(total.discarded(), 5);
        assert_eq!(total.subscriptions, 50);
    }
}

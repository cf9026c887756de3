//! Routing: which connected clients get a publish now, and which sessions keep it for later.

use std::sync::Arc;

use jobs_core::{MessageSink, QoS};

use super::{State, topic_matches};

/// Routes cached at most; beyond, the cache starts afresh (tests with endless topics).
const ROUTE_CACHE_LIMIT: usize = 1024;

/// A message to hand to a sink, with no lock held.
pub(super) type Delivery = (Arc<dyn MessageSink>, String, Arc<[u8]>);

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

impl State {
    /// Routes a message published with `qos` on `topic`: returns the deliveries to make now
    /// (every connected client with a sink and a matching subscription, once per client), and
    /// queues it for sessions that keep it (offline clients, if the delivery QoS is 1; clients
    /// whose resumed session is being delivered, whatever the QoS). In AWS mode each receiver's
    /// rate quota is applied first.
    pub(super) fn deliveries(&mut self, topic: &str, payload: &[u8], qos: QoS) -> Vec<Delivery> {
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
            let receives =
                client.connected || (session_kept && min_qos(qos, granted) == QoS::AtLeastOnce);
            // AWS mode: the message counts against the receiver's rate, and beyond it is
            // discarded.
            if receives
                && let Some(aws) = &mut self.aws
                && !aws.outbound(&client.id)
            {
                continue;
            }
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

pub(super) fn deliver(deliveries: Vec<Delivery>) {
    for (sink, topic, payload) in deliveries {
        hand_over(sink.as_ref(), &topic, &payload);
    }
}

/// Calls the sink; a panic is caught and logged, so that it ends neither the delivery of the
/// other messages nor the publisher's call (conformance rule `sink_panic_contained`).
pub(super) fn hand_over(sink: &dyn MessageSink, topic: &str, payload: &[u8]) {
    let call = std::panic::AssertUnwindSafe(|| sink.message(topic, payload));
    if std::panic::catch_unwind(call).is_err() {
        log::error!("a message sink panicked on a message on {topic}");
    }
}

//! A tap on the simulator's connection: counts the requests the service receives, so the soak
//! sees how many terminal updates each execution took (retries after outages included); and
//! publishes the service's replies and events at the QoS its transport asks requests to go out
//! with (QoS 0 on `jobs-paho`).
//!
//! The simulator publishes at QoS 1, and Paho C 1.3.16 can free a QoS 1 message twice when the
//! broker resets the connection while it is written (the `jobs-paho` docs, "Reconnect churn"):
//! with only the devices' requests at QoS 0, one full-mode run in five aborted with `free():
//! double free detected in tcache 2` — the simulator's connection was the only one in the
//! process publishing at QoS 1. Over a broker that is killed twenty times, a QoS 1 reply gains
//! nothing anyway: the sessions are clean, so what is in flight at a kill is lost either way,
//! and the runner retries and resyncs.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use parking_lot::Mutex;
use serde::Deserialize;

use crate::ledger::Key;

/// What the service received.
#[derive(Debug, Default)]
pub(crate) struct Received {
    /// Every request of every device.
    pub(crate) requests: u64,
    /// Terminal updates (SUCCEEDED, FAILED, REJECTED) by execution (the number the update
    /// named; 0 if none).
    pub(crate) terminal_updates: HashMap<Key, u32>,
    /// Requests that name a job (describe and update), by execution.
    pub(crate) job_requests: HashMap<Key, u32>,
}

/// An [`MqttTransport`] that forwards everything to `inner` and counts what comes in.
pub(crate) struct Tap<T> {
    inner: T,
    received: Arc<Mutex<Received>>,
}

impl<T> Tap<T> {
    pub(crate) fn new(inner: T, received: Arc<Mutex<Received>>) -> Self {
        Self { inner, received }
    }
}

struct TapSink {
    inner: Arc<dyn MessageSink>,
    received: Arc<Mutex<Received>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    status: Option<String>,
    execution_number: Option<i64>,
}

impl MessageSink for TapSink {
    fn message(&self, topic: &str, payload: &[u8]) {
        let segments: Vec<&str> = topic.split('/').collect();
        if let ["$aws", "things", thing, "jobs", rest @ ..] = segments.as_slice() {
            let mut received = self.received.lock();
            received.requests += 1;
            if let [job, operation @ ("update" | "get")] = rest
                && *job != "$next"
            {
                let request: Option<Request> = serde_json::from_slice(payload).ok();
                let key = Key {
                    thing: (*thing).to_owned(),
                    job: (*job).to_owned(),
                    number: request
                        .as_ref()
                        .and_then(|r| r.execution_number)
                        .unwrap_or(0),
                };
                let terminal = *operation == "update"
                    && request
                        .as_ref()
                        .and_then(|r| r.status.as_deref())
                        .is_some_and(|s| matches!(s, "SUCCEEDED" | "FAILED" | "REJECTED"));
                if terminal {
                    *received.terminal_updates.entry(key.clone()).or_default() += 1;
                }
                *received.job_requests.entry(key).or_default() += 1;
            }
        }
        self.inner.message(topic, payload);
    }

    fn connection(&self, event: ConnectionEvent) {
        self.inner.connection(event);
    }
}

impl<T: MqttTransport> MqttTransport for Tap<T> {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        self.inner.set_sink(Arc::new(TapSink {
            inner: sink,
            received: Arc::clone(&self.received),
        }))
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        self.inner.subscribe(filters, qos, deadline)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        self.inner.unsubscribe(filters, deadline)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        let qos = match self.inner.request_qos() {
            QoS::AtMostOnce => QoS::AtMostOnce,
            _ => qos,
        };
        self.inner.publish(topic, payload, qos, deadline)
    }

    fn request_qos(&self) -> QoS {
        self.inner.request_qos()
    }
}

//! Recording: every SUBSCRIBE and PUBLISH a [`MockBroker`] applies, while recording is on.

use super::{MockBroker, State};

/// One recorded PUBLISH.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// The publishing client's ID (`"broker"` for [`MockBroker::inject`] and scripted replies).
    pub client: String,
    /// The topic.
    pub topic: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// One recorded SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscribeRequest {
    /// The subscribing client's ID.
    pub client: String,
    /// The filters of the SUBSCRIBE, in order.
    pub filters: Vec<String>,
}

/// Client ID used in records for messages the broker itself publishes.
pub const BROKER_CLIENT: &str = "broker";

#[derive(Default)]
pub(super) struct Records {
    published: Vec<Published>,
    subscribes: Vec<SubscribeRequest>,
}

impl MockBroker {
    /// Every recorded PUBLISH, oldest first (empty while recording is off). A publish queued
    /// by [`freeze`](Self::freeze) is recorded when it is applied.
    pub fn published(&self) -> Vec<Published> {
        self.shared
            .state
            .lock()
            .recording
            .as_ref()
            .map(|r| r.published.clone())
            .unwrap_or_default()
    }

    /// The recorded PUBLISHes on `topic`, oldest first.
    pub fn published_on(&self, topic: &str) -> Vec<Published> {
        self.published()
            .into_iter()
            .filter(|p| p.topic == topic)
            .collect()
    }

    /// Every recorded SUBSCRIBE, oldest first.
    pub fn subscribe_requests(&self) -> Vec<SubscribeRequest> {
        self.shared
            .state
            .lock()
            .recording
            .as_ref()
            .map(|r| r.subscribes.clone())
            .unwrap_or_default()
    }

    /// Turns recording on (from now on) or off (dropping what was recorded). Defaults to on;
    /// turn it off for long runs such as benchmarks.
    pub fn set_recording(&self, on: bool) {
        self.shared.state.lock().recording = on.then(Records::default);
    }
}

impl State {
    pub(super) fn record_publish(&mut self, client: &str, topic: &str, payload: &[u8]) {
        if let Some(records) = &mut self.recording {
            records.published.push(Published {
                client: client.to_owned(),
                topic: topic.to_owned(),
                payload: payload.to_vec(),
            });
        }
    }

    /// Records a SUBSCRIBE of `client` (if recording is on).
    pub(super) fn record_subscribe(&mut self, client: String, filters: &[&str]) {
        if let Some(records) = &mut self.recording {
            records.subscribes.push(SubscribeRequest {
                client,
                filters: filters.iter().map(|f| (*f).to_owned()).collect(),
            });
        }
    }
}

//! Shared set-up for the integration tests: a broker, a client and the Jobs of one thing.

#![allow(dead_code, reason = "each test file uses a different subset")]
#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

use jobs_core::model::UpdateRequest;
use jobs_core::{Client, Jobs};
use jobs_mock::{MockBroker, Published};
use serde_json::Value;
use std::time::Duration;

pub(crate) const THING: &str = "pump-07";
pub(crate) const SHORT: Duration = Duration::from_millis(30);

pub(crate) struct Setup {
    pub(crate) broker: MockBroker,
    pub(crate) client: Client,
    pub(crate) jobs: Jobs,
}

pub(crate) fn setup() -> Setup {
    let broker = MockBroker::new();
    let client = Client::new(broker.connect(THING)).unwrap();
    let jobs = Jobs::builder(&client, THING)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    Setup {
        broker,
        client,
        jobs,
    }
}

pub(crate) fn topic(suffix: &str) -> String {
    format!("$aws/things/{THING}/jobs/{suffix}")
}

/// The JSON of the requests published on `suffix`.
pub(crate) fn requests(broker: &MockBroker, suffix: &str) -> Vec<Value> {
    broker
        .published_on(&topic(suffix))
        .iter()
        .map(|p: &Published| json(&p.payload))
        .collect()
}

pub(crate) fn json(payload: &[u8]) -> Value {
    serde_json::from_slice(payload).unwrap()
}

pub(crate) fn last_update(broker: &MockBroker, job: &str) -> UpdateRequest {
    let published = broker.published_on(&topic(&format!("{job}/update")));
    serde_json::from_slice(&published.last().unwrap().payload).unwrap()
}

pub(crate) mod fleet;

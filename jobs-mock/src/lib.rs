//! Test doubles for `jobs-core`: a scriptable in-memory MQTT broker.
//!
//! [`MockBroker`] routes between any number of in-memory clients with real MQTT filter matching,
//! records every SUBSCRIBE and PUBLISH, and answers request topics as a [`Script`] says:
//! accepted or rejected payloads, silence, late replies released on demand, duplicates, corrupt
//! or oversized payloads. It can inject events and drop and restore connections. It is
//! deterministic: no threads, sleeps or timers.

mod broker;
mod script;

pub use broker::{
    BROKER_CLIENT, MockBroker, MockTransport, Published, SubscribeRequest, topic_matches,
};
pub use script::{Script, request_token};

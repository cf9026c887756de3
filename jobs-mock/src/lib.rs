//! Test doubles for `jobs-core`: a scriptable in-memory MQTT broker and a stateful simulator of
//! the AWS IoT Jobs service.
//!
//! - [`MockBroker`] routes between any number of in-memory clients with real MQTT filter
//!   matching, records every SUBSCRIBE and PUBLISH, and answers request topics as a [`Script`]
//!   says: accepted or rejected payloads, silence, late replies released on demand,
//!   duplicates, corrupt or oversized payloads. It can inject events and drop and restore
//!   connections. It is deterministic: no threads, sleeps or timers.
//! - [`JobsService`](service::JobsService) emulates AWS IoT Jobs for any number of things — executions,
//!   transitions, versions, execution numbers, `$next`, start-next, timers, `notify` /
//!   `notify-next` with their empty forms, every rejection code — as a pure state machine on a
//!   virtual, real or N-times-faster [`Clock`](service::Clock), with the control plane as the AWS IoT API
//!   ([`service::api`]: CreateJob, CancelJobExecution, ListJobExecutionsForJob, …);
//!   [`Simulator`](service::Simulator) runs it over any MQTT transport (the `MockBroker` here, a real broker
//!   elsewhere). The [`service`] module documents its behaviour with the evidence for each
//!   rule, including the choices made where AWS documents none.
//! - [`aws`]: AWS IoT Core's MQTT-level behaviour — implicit Jobs replies, the subscription,
//!   SUBSCRIBE, publish-rate and payload quotas — as the `MockBroker`'s AWS mode
//!   ([`MockBroker::aws`]) and, with feature `local-broker`, on mosquitto through the
//!   `jobs-mosquitto-plugin` (`local_broker::LocalBroker::start_aws`).
//! - [`conformance`] checks any [`MqttTransport`](jobs_core::MqttTransport) implementation
//!   against the transport contract, rule by rule, over this crate's broker or (feature
//!   `local-broker`) a real mosquitto.
//! - With feature `local-broker`, `local_broker` runs a throwaway mosquitto on 127.0.0.1 for
//!   integration tests (it needs the `mosquitto` and `openssl` executables).
//! - With feature `jobs-service`, the `jobs-service` program (`server`): the emulator on a
//!   real MQTT broker, with the AWS IoT API over HTTP, installed with
//!   `cargo install --path jobs-mock --features jobs-service`.
//!
//! # Example
//! ```
//! use std::sync::Arc;
//! use jobs_core::{Client, Document, JobId, Jobs, ThingName};
//! use jobs_mock::MockBroker;
//! use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let broker = MockBroker::new();
//! let simulator = Simulator::start(
//!     Arc::new(broker.connect("jobs-service")),
//!     JobsService::new(Clock::virtual_at(1_750_000_000)),
//! )?;
//! let client = Client::new(broker.connect("pump-07"))?;
//! let jobs = Jobs::new(&client, "pump-07")?;
//! assert!(jobs.changed()); // always true on the first call: list once at start-up
//! assert!(jobs.list()?.is_empty());
//! assert!(!jobs.changed());
//!
//! simulator.create_job(
//!     JobSpec::new(JobId::new("calibrate")?, Document::from_json(r#"{"operation":"calibrate"}"#)?)
//!         .thing(ThingName::new("pump-07")?),
//! )?;
//! assert!(jobs.changed()); // the notify arrived before create_job returned
//! assert_eq!(jobs.list()?[0].id().as_str(), "calibrate");
//! # Ok(())
//! # }
//! ```

pub mod aws;
mod broker;
pub mod conformance;
#[cfg(feature = "local-broker")]
pub mod local_broker;
mod script;
#[cfg(feature = "jobs-service")]
pub mod server;
pub mod service;

pub use broker::{
    BROKER_CLIENT, MockBroker, MockTransport, Published, SubscribeRequest, topic_matches,
};
pub use script::{Script, request_token};

/// `{prefix}-{pid}-{n}-{nanos}`: a name unique in this process (`n` counts calls) and very
/// likely across processes (the process ID, and the sub-second nanoseconds of the clock).
pub(crate) fn unique_name(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::{SystemTime, UNIX_EPOCH};

    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

//! A blocking, device-side client for [AWS IoT Jobs] over any MQTT transport.
//!
//! A device (or a gateway serving many things over one connection) finds its pending job
//! executions, reads a job's document, reports progress and results, and hears when new work
//! arrives. Every call blocks the calling thread until the service answers, with a timeout;
//! replies are matched to calls by a fresh client token and the exact reply topic; rejections
//! say what the service said; many threads may call at once over one connection; reconnects
//! restore the subscriptions.
//!
//! | the classic device loop | here |
//! |---|---|
//! | `Jobs(thing)` | [`Jobs::new`]`(&client, thing)` |
//! | `changed()` | [`Jobs::changed`] |
//! | `list()` | [`Jobs::list`] |
//! | `Job(thing, jobid)` | [`Jobs::job`]`(jobid)` |
//! | `describe()` | [`Job::describe`] |
//! | `update(status, status_details)` | [`Job::update`] |
//!
//! # Example
//! Over the in-memory broker of `jobs-mock`, with a scripted reply; on a device the transport
//! is `jobs-paho` (or your own [`MqttTransport`]).
//! ```
//! use jobs_core::{Client, JobStatus, Jobs};
//! use jobs_mock::{MockBroker, Script};
//!
//! let broker = MockBroker::new();
//! broker.script(
//!     "$aws/things/pump-07/jobs/get",
//!     Script::accept(serde_json::json!({
//!         "inProgressJobs": [],
//!         "queuedJobs": [{"jobId": "rotate-logs", "versionNumber": 1, "executionNumber": 1}],
//!     })),
//! );
//! let client = Client::new(broker.connect("pump-07"))?;
//! let jobs = Jobs::new(&client, "pump-07")?;
//! assert!(jobs.changed()); // true on the first call: list once at start-up
//! let pending = jobs.list()?;
//! assert_eq!(pending[0].id().as_str(), "rotate-logs");
//! assert_eq!(pending[0].status(), Some(&JobStatus::Queued));
//! # Ok::<(), jobs_core::Error>(())
//! ```
//!
//! # Threading
//! [`Client`], [`Jobs`] and [`Job`] are `Send + Sync` and spawn no threads (only the optional
//! [`runner`] does, for its handlers and requests, and [`Sweep::run`], for its lists in
//! flight). Inbound
//! messages are handled on the transport's delivery thread, which only parses, records and wakes
//! the waiting caller; no lock is held while calling the transport.
//!
//! # Timeouts
//! Every blocking call waits at most the timeout of its [`Jobs`] handle: 10 s unless set with
//! [`JobsBuilder::timeout`]; `jobs.with_timeout(d)` gives any call its own
//! (`jobs.with_timeout(d).list()`, `jobs.with_timeout(d).next_event()`). The one deadline
//! covers the whole call — re-subscribing, the PUBACK, the reply — and reaches the transport,
//! which never waits past it; nothing is published once it has passed. A reply that arrives
//! after its call gave up is dropped and logged at debug level.
//!
//! # Replies
//! Only a reply on exactly the call's reply topic carrying the call's fresh client token
//! completes the call. A reply without a token cannot be attributed and is dropped (counted in
//! a debug log). An attributed reply that is malformed or incomplete — an execution or summary
//! without `jobId`, a describe without `execution`, a job document that would not parse — fails
//! the call with [`Error::Decode`], naming the field; it is never read as an empty answer.
//!
//! # Errors
//! One [`Error`] for every call: [`Error::Rejected`] with the service's code, message and
//! execution state; [`Error::Timeout`]; [`Error::Transport`]; [`Error::Decode`];
//! [`Error::InvalidInput`] for input refused before anything was published (validated with the
//! AWS rules of [`validate`]). `Display` says what was wrong in one line.
//!
//! # The job runner
//! [`runner::Runner`] is the device's job loop on top of this API: handlers by operation,
//! exactly one terminal report per execution through timeouts, reconnects, cancels and
//! reboots, and a bounded stop.
//!
//! # Logging
//! Through the `log` crate: connection changes at info, each call at debug, request payloads at
//! trace only (job documents often carry pre-signed URLs and secrets).
//!
//! [AWS IoT Jobs]: https://docs.aws.amazon.com/iot/latest/developerguide/jobs-mqtt-api.html

mod client;
mod document;
mod engine;
mod error;
mod job;
mod jobs;
pub mod model;
mod names;
mod numbers;
mod operation;
mod pace;
mod pending;
pub mod runner;
mod shared;
mod status;
mod subscriptions;
mod sweep;
pub mod topics;
mod transport;
pub mod validate;

pub use client::{Client, ClientBuilder};
pub use document::Document;
pub use error::{DecodeError, Error, InvalidInput, NameError, Rejection, SettingProblem};
pub use job::{Describe, Job, Update};
pub use jobs::{DEFAULT_TIMEOUT, Event, Jobs, JobsBuilder, StartNext};
pub use names::{JobId, StatusDetails, StepTimeout, ThingName};
pub use numbers::{ExecutionNumber, Timestamp, Version};
pub use operation::Operation;
pub use pace::PublishRate;
pub use status::{JobStatus, RejectCode};
pub use subscriptions::Subscriptions;
pub use sweep::{Sweep, Swept};
pub use transport::{
    BrokerLimits, ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome,
    TransportError,
};

//! The `jobs-service` program as a library (feature `jobs-service`): the emulator
//! ([`Simulator`](crate::service::Simulator) on the system clock) hosted on any MQTT broker
//! through `jobs-paho`, with the AWS IoT API over HTTP ([`http`]) and as JSON on an MQTT
//! control topic ([`control`]), jobs created from a file at start ([`jobs_file`]), and a log
//! of every execution's status changes ([`ChangeLog`]), and an object store for the
//! pre-signed download URLs of job documents ([`files`]).
//!
//! Install the program with `cargo install --path jobs-mock --features jobs-service`; run it
//! beside a broker:
//!
//! ```sh
//! mosquitto -p 1883 &
//! jobs-service --http 127.0.0.1:8080 &
//! aws iot create-thing --endpoint-url http://127.0.0.1:8080 --region us-east-1 \
//!     --thing-name pump-07
//! aws iot create-job --endpoint-url http://127.0.0.1:8080 --region us-east-1 \
//!     --job-id rotate-logs --targets arn:aws:iot:us-east-1:123456789012:thing/pump-07 \
//!     --document '{"operation":"rotate-logs","keep":5}'
//! ```
//!
//! It runs in the background as servers do: it reads no standard input (unless `--console`
//! asks for an interactive console) and stops on a signal. `jobs-service --help` lists the
//! flags; `examples/README.md` documents the operations, the jobs file and the control topic.
//! Tests can run the same service in-process with [`Server::start`].

mod change_log;
pub mod cli;
pub mod control;
pub mod files;
pub mod http;
pub mod jobs_file;
mod run;

pub use change_log::ChangeLog;
pub use run::{Output, Server, main, say};

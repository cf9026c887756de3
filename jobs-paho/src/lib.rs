//! The real MQTT transport for [`jobs_core`]: [`PahoTransport`] implements
//! [`MqttTransport`](jobs_core::MqttTransport) over the Eclipse Paho C client (through the
//! `paho-mqtt` crate, bundled C library, OpenSSL), with TLS and mutual TLS for AWS IoT Core,
//! automatic reconnects and bounded waits on every operation.
//!
//! Building this crate needs CMake, a C compiler and the OpenSSL headers (Debian/Ubuntu:
//! `cmake build-essential libssl-dev pkg-config`); at run time `libssl3`.
//!
//! # Example
//! A device connecting to AWS IoT Core with its certificate and listing its pending jobs:
//! ```no_run
//! use jobs_core::{Client, Jobs};
//! use jobs_paho::PahoTransport;
//!
//! let transport = PahoTransport::aws_iot(
//!     "abcdefgh123456-ats.iot.eu-west-1.amazonaws.com",
//!     "pump-07",
//!     "/etc/pump/AmazonRootCA1.pem",
//!     "/etc/pump/device.pem.crt",
//!     "/etc/pump/private.pem.key",
//! )
//! .build()?;
//! let client = Client::new(transport)?;
//! let jobs = Jobs::new(&client, "pump-07")?;
//! for job in jobs.list()? {
//!     println!("pending: {}", job.id());
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//! [`PahoTransport::aws_iot_443`] connects on port 443 with the ALPN protocol
//! `x-amzn-mqtt-ca` instead, for networks that only let HTTPS out.
//!
//! # Threading
//! Paho C runs one send and one receive thread per process, shared by all clients; its
//! callbacks run on the receive thread under a global lock, so nothing may block or wait there.
//! This crate's callbacks call the [`MessageSink`](jobs_core::MessageSink) directly on that
//! thread (the sink is non-blocking by contract; `jobs-core`'s only parses, records and wakes
//! the waiting caller): messages in arrival order, `Connected` after each automatic reconnect
//! (with `session_present: Some(false)` for a clean session; `None` for a persistent one:
//! Paho cannot tell), `ConnectionLost` when the link drops or
//! the broker sends DISCONNECT. Sink calls run under `catch_unwind`; a panic is logged and
//! delivery carries on. A slow sink therefore delays every Paho client of the process, which
//! is why the sink contract forbids blocking. Paho C also holds its process-wide mutex while the
//! callback runs, so a `publish` or `subscribe` from another thread waits until the sink
//! returns; the transport contract allows this (with `jobs-core`'s sink the wait is
//! microseconds), and the mutex is released as soon as the callback returns, so a caller the
//! sink woke publishes at once (`woken_caller_can_publish` in `jobs_mock::conformance`). No
//! thread of ours sits between Paho and the sink: that hop cost 10–15 % of a local round trip
//! (see `BENCHMARKS.md`).
//!
//! The first connect happens in `build`, before any sink can exist, so it is not reported;
//! [`PahoTransport::session_present`] tells whether the broker resumed a session then.
//! Messages arriving before [`set_sink`](jobs_core::MqttTransport::set_sink) (possible with a
//! persistent session) are buffered, up to [`PahoTransportBuilder::pre_sink_buffer`] messages,
//! and handed to the sink in order when it is installed; further ones are dropped and counted
//! in a warning.
//!
//! `subscribe`, `unsubscribe` and `publish` block the calling thread until the SUBACK,
//! UNSUBACK or PUBACK (QoS 1; QoS 0: until written to the socket), at most the
//! [operation timeout](PahoTransportBuilder::operation_timeout). While disconnected they fail
//! at once with [`TransportError::NotConnected`](jobs_core::TransportError::NotConnected);
//! nothing is queued. Reconnects do not restore subscriptions: `jobs-core` does that on its
//! next call, after the `Connected` event.
//!
//! Dropping the transport disconnects (bounded by the operation timeout), waits for running
//! Paho callbacks to finish, and drops the sink. Dropping the **last**
//! Paho client of the process also stops Paho C's own threads, which takes up to about 1 s
//! (their poll interval). With a persistent session, operations still pending in Paho keep
//! the C client alive (a small leak) rather than risk destroying it on Paho's thread.
//!
//! # Reconnect churn: the Paho C double free
//! Paho C 1.3.16, the version `paho-mqtt` 0.14 bundles, frees a QoS 1 message twice when its
//! send thread fails to write the PUBLISH because the broker has reset the connection and
//! Paho's receive thread has not processed the reset yet: the message is stored for retry
//! sharing the command's buffers, the failed command frees them (`MQTTAsync_processCommand`),
//! and the session clean-up that follows frees them again (`MQTTAsync_cleanSession` →
//! `MQTTProtocol_emptyMessageList`, reached from the internal DISCONNECT the failure queues,
//! `MQTTAsync_checkDisconnect`, or from the receive thread processing the reset).
//! The process aborts with `double free or corruption`, or its heap is corrupted without a
//! message. Any connection that drops while a QoS 1 publish is on its way to the socket can
//! hit it; many connections in one process make it likely, because Paho processes their resets
//! one at a time while its send thread keeps writing what is queued for the others (the
//! `soak` example's 100-device mode, 101 connections and 20 broker kills per run: 8 of 33 runs
//! aborted with QoS 1; 20 of 20 passed with QoS 0). Nothing in the order or timing of this
//! crate's calls can rule it out while Paho C sends QoS 1 PUBLISH packets: the window opens
//! when the broker's reset reaches the socket.
//!
//! So `PahoTransport` asks `jobs-core` to publish its requests at QoS 0
//! ([`MqttTransport::request_qos`](jobs_core::MqttTransport::request_qos)): Paho C handles a
//! failed QoS 0 write without the double free, and a Jobs request loses nothing by it, since
//! its reply is its acknowledgement (a request lost in transit ends as the call's timeout or
//! as `ConnectionLost`, both "outcome unknown" already). The transport itself keeps the
//! [`MqttTransport`](jobs_core::MqttTransport) contract: a publish asked for at QoS 1 goes
//! out as QoS 1 and waits for its PUBACK, with the exposure above. Subscriptions stay QoS 1
//! (Paho's PUBACKs for inbound messages do not take the faulty path). `tests/churn.rs` makes
//! the triggering sequence happen on purpose: with QoS 0 publishes the process survives it
//! and every connection works afterwards; its ignored companion shows the abort with QoS 1.
//!
//! # Errors
//! | Paho | [`TransportError`](jobs_core::TransportError) |
//! |---|---|
//! | `Disconnected` | `NotConnected` (nothing was sent) |
//! | `OperationIncomplete` (link lost while waiting) | `ConnectionLost` (outcome unknown) |
//! | `Failure` on a publish (writing the PUBLISH failed) | `ConnectionLost` (outcome unknown) |
//! | `Timeout` (operation timeout elapsed) | `Timeout` (outcome unknown) |
//! | SUBACK 0x80 (or an MQTT 5 refusal code) | [`SubscribeOutcome::Refused`](jobs_core::SubscribeOutcome::Refused) for that filter |
//! | anything else | `Backend`, with the Paho error as source |
//!
//! [`PahoTransportBuilder::build`] fails with [`ConnectError`], which names the URI and the
//! cause: `Config` before anything was created (including certificate and key files that are
//! missing, not PEM, or do not match, named by path); `Dns` (the host does not resolve); `Tcp`
//! (refused: nothing listens; unreachable); `Tls` with the check that failed ([`TlsFailure`]:
//! the CA file does not trust the broker, the broker's certificate does not name the host,
//! the broker refused the client certificate); `Closed` (the broker closed the connection
//! without a CONNACK); `Refused` with the CONNACK code and its meaning (4: bad user name or
//! password; 5: not authorized — for AWS IoT usually the policy or the certificate);
//! `Timeout`. Paho reports most of these with one code; after such a failure `build` looks
//! itself, once (a DNS lookup, a TCP connect and, on a TLS URI, a TLS handshake with the same
//! files and checks through OpenSSL), within the connect timeout. The errors' `Debug` prints
//! the message and its causes, so `main` returning one reads well.
//!
//! [`connect_retry`](PahoTransportBuilder::connect_retry) makes `build` retry a first connect
//! that failed for a reason that may pass, with backoff ([`ConnectRetry`]); by default it fails
//! at once.
//!
//! # Connection health
//! Reconnects are logged by `jobs-core` at info (`reconnected; session resumed: no`). When the
//! broker closes the connection within seconds of each of three connects in a row, a warning
//! names the likely cause: another client connecting with the same client ID.
//!
//! # TLS
//! A `ssl://`, `mqtts://` or `tls://` URI uses TLS (1.2 or 1.3, whatever OpenSSL negotiates),
//! sending SNI with the URI's host. The broker's certificate chain is verified against
//! [`ca_file`](PahoTransportBuilder::ca_file) (or the system trust store), and **its names
//! are checked against the URI's host**; turning that off is the explicit
//! [`danger_disable_hostname_verification`](PahoTransportBuilder::danger_disable_hostname_verification).
//! Client certificates and keys are PEM files (Paho takes paths only; keep keys 0600).
//! [`alpn_protocols`](PahoTransportBuilder::alpn_protocols) sets ALPN (AWS IoT on 443:
//! [`AWS_IOT_ALPN`]).
//!
//! # Testing against a real broker
//! `jobs_mock::local_broker` (feature `local-broker` of `jobs-mock`) runs a private mosquitto
//! on `127.0.0.1` and makes throwaway certificates for its mutual-TLS listener; this crate's
//! tests, including the transport conformance suite (`jobs_mock::conformance`), run on it.
//!
//! # Logging
//! Through the `log` crate: this crate under the `jobs_paho` target (connects and connection
//! changes at info, dispatching at debug); the Rust wrapper under `paho_mqtt`; and the C
//! library's own trace under `paho_mqtt_c` — its level is read once, when the first client of
//! the process is created, so enable it (e.g. `RUST_LOG=paho_mqtt_c=debug` with a logger that
//! understands module filters, such as `env_logger`) before building. The wrapper's own
//! "Connection lost" warning (target `paho_mqtt`) prints a pointer; this crate logs the same
//! event at info under `jobs_paho`.

mod builder;
mod delivery;
mod diagnose;
mod error;
mod pem;
mod retry;
mod transport;
mod watch;

pub use builder::{
    AWS_IOT_ALPN, DEFAULT_CONNECT_TIMEOUT, DEFAULT_KEEP_ALIVE, DEFAULT_OPERATION_TIMEOUT,
    DEFAULT_PRE_SINK_BUFFER, DEFAULT_RECONNECT_BACKOFF, MqttVersion, PahoTransportBuilder, Session,
};
pub use error::{ConfigError, ConnectError, TlsFailure, connack_meaning};
pub use retry::ConnectRetry;
pub use transport::PahoTransport;

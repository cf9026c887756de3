//! The MQTT transport contract: what `jobs-core` needs from an MQTT client.
//!
//! A port to another MQTT stack implements [`MqttTransport`]; everything else (topics, payloads,
//! correlation, timeouts, re-subscription after reconnects) is done by [`Client`](crate::Client).

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Instant;

/// MQTT quality of service. AWS IoT Core supports QoS 0 and 1 only, so QoS 2 is not offered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[expect(
    clippy::exhaustive_enums,
    reason = "AWS IoT Core has exactly these two levels; matching on them must stay exhaustive"
)]
pub enum QoS {
    /// QoS 0: fire and forget.
    AtMostOnce,
    /// QoS 1: acknowledged by the broker (PUBACK / SUBACK).
    AtLeastOnce,
}

/// The broker's answer for one filter of a SUBSCRIBE.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[expect(
    clippy::exhaustive_enums,
    reason = "a SUBACK code either grants a QoS or refuses (0x80); there is no third outcome"
)]
pub enum SubscribeOutcome {
    /// The filter is active with the granted QoS (which may be lower than requested).
    Granted(QoS),
    /// The broker refused the filter (SUBACK 0x80), for example because a policy forbids it.
    Refused,
}

/// A change of the connection's state, reported through [`MessageSink::connection`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectionEvent {
    /// The transport (re)connected.
    ///
    /// `session_present` is `Some(true)` when the broker resumed a persistent session (all
    /// subscriptions still exist), `Some(false)` when it did not, and `None` when the backend
    /// cannot tell (Paho's automatic reconnect, for example). Anything but `Some(true)` makes the
    /// client re-subscribe and report [`Jobs::changed`](crate::Jobs::changed) as `true`.
    Connected {
        /// Whether the broker resumed the previous session, if known.
        session_present: Option<bool>,
    },
    /// The connection dropped. Calls waiting for a reply fail at once with
    /// [`TransportError::ConnectionLost`].
    ConnectionLost,
}

/// Receives inbound messages and connection events from a transport.
///
/// Installed once by [`Client::new`](crate::Client::new) through [`MqttTransport::set_sink`].
///
/// # Threading
/// The transport calls the sink from its delivery thread (for `jobs-paho`: Paho's receive
/// thread, shared by every Paho client of the process), or from several threads at once (the
/// `jobs-mock` broker delivers on each publisher's thread); messages of one publishing
/// connection arrive in order. Both methods return quickly and never block: the client's sink
/// only parses, records and wakes waiting callers, and never calls back into the transport.
///
/// A transport may therefore call the sink while holding a lock its own methods need (Paho C
/// holds its process-wide mutex during callbacks): other threads' operations then wait only
/// while the sink runs, microseconds. What it must not do is keep such a lock once the sink has
/// returned (for instance while its delivery loop waits for the next packet): the sink wakes
/// callers whose next step is often a `publish`.
///
/// A sink must not panic; if one does, the transport catches the panic (and logs it) and keeps
/// delivering: a panic never ends the delivery thread.
pub trait MessageSink: Send + Sync {
    /// Hands over one inbound PUBLISH. Called for every message on any subscribed filter, in the
    /// order the broker delivered them; `payload` is the raw bytes.
    fn message(&self, topic: &str, payload: &[u8]);

    /// Reports a connection event. A transport reports `Connected` after every successful
    /// (re)connect, including the first one if it happens after the sink was installed, and
    /// `ConnectionLost` when an established connection drops.
    fn connection(&self, event: ConnectionEvent);
}

/// A connected MQTT client that `jobs-core` drives.
///
/// Implement this to run the Jobs client over any MQTT stack; `jobs-paho` (Eclipse Paho) and
/// `jobs-mock` (in memory) are the implementations in this workspace. Each rule below is a
/// promise the [`Client`](crate::Client) relies on.
///
/// # Contract
/// - **Object safe**, `Send + Sync`, used behind `Arc<dyn MqttTransport>`; every method takes
///   `&self`, so the backend synchronises internally. Many threads call `publish` at once.
/// - **One sink.** [`set_sink`](Self::set_sink) is called once by [`Client::new`](crate::Client::new),
///   before any other method. A second call (a second `Client` on a clone of the transport)
///   fails with [`TransportError::SinkInstalled`] and leaves the first sink in place. Every
///   inbound message goes to that sink, whatever filter it matched: one transport serves the
///   Jobs of many things, and the client routes by thing.
/// - **Acknowledged.** `subscribe`, `unsubscribe` and a QoS 1 `publish` return only after the
///   broker's SUBACK, UNSUBACK or PUBACK (never merely once queued). A QoS 0 `publish`
///   returns once the message is handed to the network layer.
/// - **Deadlines.** Each of those methods takes the [`Instant`] by which it must return. It
///   never blocks past it: when the acknowledgement has not come by then it returns
///   [`TransportError::Timeout`] (the broker may or may not have acted). **An operation called
///   after its deadline sends nothing**: it returns `Timeout` at once. (A message a backend
///   queued before the deadline may still leave after it; that is the "may or may not" of
///   `Timeout`, and why the client never calls `publish` once a call's deadline is over.) A
///   backend may give up earlier on a bound of its own (an operation timeout), also with
///   `Timeout`.
/// - **On the wire.** Each SUBSCRIBE and PUBLISH goes out with the QoS asked, every filter
///   of the call in one SUBSCRIBE, and never with RETAIN; each acknowledgement completes the
///   call with its packet ID (IDs are non-zero, not in use, and one whose call gave up stays
///   taken until its late acknowledgement, so that it cannot complete a newer call). Every
///   inbound QoS 1 message is acknowledged (a broker stops delivering once its window of
///   unacknowledged messages is full), and the link is kept alive (PINGREQ whenever nothing
///   was sent for a keep-alive period). On a healthy link each message reaches the sink once.
/// - **Never sent again.** A publish whose call has returned, whatever it returned, is never
///   sent again: no retry, and no resend after a reconnect, not even MQTT's resend of
///   unacknowledged QoS 1 messages in a resumed session. The caller was told `Timeout` or
///   `ConnectionLost` and may have moved on; the copy already on the wire may still arrive.
/// - **The link drops**: calls waiting for an acknowledgement fail at once with
///   [`TransportError::ConnectionLost`], not at their deadline.
/// - **Fail fast when offline.** Once the backend knows the connection is down (it has
///   reported [`ConnectionEvent::ConnectionLost`]), `publish`, `subscribe` and `unsubscribe`
///   return [`TransportError::NotConnected`] at once until it reconnects; they never queue
///   requests for later.
/// - **Reconnects** are the backend's business (with backoff); it reports each one as
///   [`ConnectionEvent::Connected`], with `session_present` as the broker's CONNACK said, or
///   `None` if the backend cannot tell. It does not need to restore subscriptions: the client
///   does, from a caller's thread, when `session_present` is not `Some(true)`.
/// - **Never from the delivery thread.** The client never calls a transport method from inside
///   the sink, so a backend may forbid it (Paho deadlocks when waited on from its callback).
///   The backend, in turn, holds no lock its own methods need once the sink has returned, so a
///   caller the sink woke can publish at once (see [`MessageSink`] for locks held *during* the
///   call).
/// - **Dropping** the last handle of the transport disconnects and ends delivery: the sink is
///   called no more and is dropped.
///
/// # Errors
/// Map backend errors onto [`TransportError`] so callers can tell "nothing was sent"
/// ([`NotConnected`](TransportError::NotConnected)) from "outcome unknown"
/// ([`ConnectionLost`](TransportError::ConnectionLost), [`Timeout`](TransportError::Timeout));
/// use [`Backend`](TransportError::Backend) only for what fits nowhere else.
pub trait MqttTransport: Send + Sync {
    /// Installs the sink that receives every inbound message and connection event.
    ///
    /// # Errors
    /// [`TransportError::SinkInstalled`] when a sink is already installed (it stays).
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError>;

    /// Subscribes to up to 8 filters in one SUBSCRIBE and returns after the SUBACK, one outcome
    /// per filter in the order given, or at `deadline`. AWS IoT Core refuses more than 8
    /// filters per SUBSCRIBE; the client never passes more.
    ///
    /// # Errors
    /// [`TransportError::NotConnected`] when offline; [`TransportError::Timeout`] when no SUBACK
    /// came by `deadline`; [`TransportError::ConnectionLost`] when the link dropped meanwhile. A
    /// refused filter is not an error here: it is reported as [`SubscribeOutcome::Refused`].
    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError>;

    /// Unsubscribes from the given filters and returns after the UNSUBACK, or at `deadline`.
    ///
    /// # Errors
    /// As for [`subscribe`](Self::subscribe).
    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError>;

    /// Publishes one message without RETAIN. With [`QoS::AtLeastOnce`] it returns after the
    /// PUBACK (not merely once queued), or at `deadline`; with [`QoS::AtMostOnce`] once handed
    /// to the network. Nothing is sent if `deadline` has already passed on entry.
    ///
    /// # Errors
    /// [`TransportError::NotConnected`] when offline (nothing was sent);
    /// [`TransportError::ConnectionLost`] or [`TransportError::Timeout`] when the PUBACK did not
    /// arrive (the broker may or may not have the message).
    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError>;

    /// The broker's limits per connection as far as this transport knows them (a transport
    /// built for AWS IoT Core returns [`BrokerLimits::AWS_IOT`]). Defaults to
    /// [`BrokerLimits::NONE`].
    fn broker_limits(&self) -> BrokerLimits {
        BrokerLimits::NONE
    }

    /// The QoS the client publishes its requests with. Defaults to [`QoS::AtLeastOnce`]: a
    /// call waits for the PUBACK, then for the reply. A backend whose QoS 1 publishes are
    /// unsafe in some condition may return [`QoS::AtMostOnce`]: a Jobs request is answered by
    /// its reply, which acknowledges it, so QoS 0 loses nothing but an earlier error
    /// (`jobs-paho` does, for a Paho C defect under reconnect churn). Subscriptions are QoS 1
    /// either way.
    fn request_qos(&self) -> QoS {
        QoS::AtLeastOnce
    }
}

impl<T: MqttTransport + ?Sized> MqttTransport for Arc<T> {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        (**self).set_sink(sink)
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        (**self).subscribe(filters, qos, deadline)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        (**self).unsubscribe(filters, deadline)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        (**self).publish(topic, payload, qos, deadline)
    }

    fn broker_limits(&self) -> BrokerLimits {
        (**self).broker_limits()
    }

    fn request_qos(&self) -> QoS {
        (**self).request_qos()
    }
}

/// What a transport knows of its broker's limits per connection: AWS IoT Core's
/// ([`AWS_IOT`](Self::AWS_IOT)) for a transport that connects to it, none otherwise. A
/// [`Client`](crate::Client) takes its defaults from them (see
/// [`ClientBuilder`](crate::ClientBuilder)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct BrokerLimits {
    /// Subscriptions (distinct filters) one connection may hold.
    pub max_subscriptions: Option<usize>,
    /// PUBLISH messages a second one connection may exchange, inbound and outbound together;
    /// the broker discards the excess (on MQTT 3.1.1 without a PUBACK).
    pub publishes_per_second: Option<u32>,
    /// QoS 1 publishes that may wait for their PUBACK at once.
    pub max_in_flight: Option<usize>,
}

impl BrokerLimits {
    /// AWS IoT Core's limits per connection, from AWS's quota tables: 50 subscriptions, 100
    /// publishes a second (inbound and outbound together), 100 unacknowledged QoS 1 publishes.
    pub const AWS_IOT: Self = Self {
        max_subscriptions: Some(50),
        publishes_per_second: Some(100),
        max_in_flight: Some(100),
    };

    /// No limit known.
    pub const NONE: Self = Self {
        max_subscriptions: None,
        publishes_per_second: None,
        max_in_flight: None,
    };
}

/// Why a transport operation failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum TransportError {
    /// The transport is not connected; nothing was sent.
    NotConnected,
    /// The connection dropped while the operation (or the reply it waited for) was in flight;
    /// the broker may or may not have acted on it.
    ConnectionLost,
    /// The deadline passed (or the backend's own operation timeout) before the broker
    /// acknowledged; the outcome is unknown. Also returned, with nothing sent, when the
    /// deadline was already over when the operation was called.
    Timeout,
    /// The broker refused a subscription (SUBACK 0x80), typically because of a policy.
    SubscriptionRefused {
        /// The refused filter.
        filter: String,
    },
    /// [`MqttTransport::set_sink`] was called on a transport that already has a sink: a
    /// transport serves one [`Client`](crate::Client) (clone the client to share it).
    SinkInstalled,
    /// Any other backend failure; the source says what happened.
    Backend(Box<dyn StdError + Send + Sync>),
}

impl TransportError {
    /// Wraps a backend error that maps to no specific variant.
    pub fn backend(error: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        Self::Backend(error.into())
    }
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotConnected => f.write_str("not connected"),
            Self::ConnectionLost => f.write_str("connection lost"),
            Self::Timeout => f.write_str("broker did not acknowledge in time"),
            Self::SinkInstalled => f.write_str(
                "the transport already serves a client (one client per transport; clone the client to share it)",
            ),
            Self::SubscriptionRefused { filter } => write!(f, "subscription to {filter} refused"),
            Self::Backend(_) => f.write_str("the MQTT backend failed"),
        }
    }
}

impl StdError for TransportError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Backend(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

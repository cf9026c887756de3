//! [`Rule`]: the rules of the transport contract, their names and the capabilities they need.

use std::fmt;

use super::Capability;

/// One rule of the transport contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Rule {
    /// A second `set_sink` fails with `SinkInstalled`; the first sink keeps receiving.
    OneSink,
    /// `subscribe` returns only after the broker's SUBACK. With [`Capability::Freeze`] this is
    /// checked against a frozen broker (a `subscribe` that returns before the broker is
    /// thawed fails, whatever the timing); without it, a message published right after
    /// `subscribe` returned must arrive.
    SubscribeAcknowledged,
    /// `subscribe` of 8 filters (the most the client passes) returns one outcome per filter, in
    /// order; the broker receives every filter (with [`Capability::Observe`]), and every one
    /// delivers.
    SubscribeOutcomePerFilter,
    /// A filter the broker refuses is reported as `Refused` in its place; the others are granted.
    RefusedFilterReported,
    /// The broker receives each SUBSCRIBE and PUBLISH with the QoS the caller asked for, and
    /// `subscribe` reports the QoS the broker granted.
    QosAsAsked,
    /// A QoS 1 and a QoS 0 `publish` that returned `Ok` reached the broker (a peer receives them).
    PublishAcknowledged,
    /// Nothing the transport publishes carries the RETAIN flag (a retained request would be
    /// replayed to every later subscriber).
    NoRetain,
    /// Each acknowledgement completes the call with its packet ID: while the broker holds back
    /// the PUBACK of one publish, a later publish on another topic returns `Ok` and the first
    /// keeps waiting.
    AcksMatchedByPacketId,
    /// Messages reach the sink in the order the broker delivered them, each once.
    MessagesInOrder,
    /// On a healthy link each message reaches the sink once: none is delivered again, also
    /// after the link was idle for [`Config::idle`](super::Config::idle).
    NoDuplicateDeliveries,
    /// Inbound QoS 1 messages are acknowledged: more of them than the broker's in-flight window
    /// all arrive.
    InboundAcknowledged,
    /// Many threads publishing at once each get their own acknowledgement: every call returns
    /// `Ok` and every message arrives once, each thread's in order.
    ConcurrentPublishes,
    /// Messages as large as AWS IoT Core allows (128 KiB payloads; job documents can be
    /// large) go out and come in intact.
    LargeMessages,
    /// `unsubscribe` returns only after the UNSUBACK: nothing arrives on the filter afterwards.
    UnsubscribeAcknowledged,
    /// A thread the sink wakes can publish at once: once the sink has returned, the
    /// transport's delivery path holds no lock that `publish` needs (jobs-core's sink wakes
    /// callers whose next step is often a publish). Calling the sink *under* such a lock is
    /// allowed: other threads' operations then wait only while the sink runs.
    WokenCallerCanPublish,
    /// A sink that panics does not end delivery: the transport catches the panic (and logs it),
    /// and the next message still reaches the sink.
    SinkPanicContained,
    /// An operation whose deadline is already over returns `Timeout` and sends nothing.
    ExpiredDeadlineSendsNothing,
    /// Against a frozen broker, QoS 1 `publish` and `subscribe` fail (never `Ok`) by their
    /// deadline.
    DeadlineHonoured,
    /// A publish whose call returned `Timeout` is never sent again: not by a retry, and not
    /// after a reconnect (even where MQTT session state would resend it). The copy already
    /// on the wire may still arrive; that is the "outcome unknown" of `Timeout`.
    NothingResentAfterTimeout,
    /// When the link drops, a call waiting for its acknowledgement fails at once (with
    /// `ConnectionLost`), not at its deadline.
    LinkDropFailsCallsInFlight,
    /// A dropped connection is reported to the sink as `ConnectionLost`.
    ConnectionLostReported,
    /// While disconnected, `publish`, `subscribe` and `unsubscribe` fail at once with
    /// `NotConnected`.
    OfflineFailsFast,
    /// A reconnect without a session is reported as `Connected` with `session_present` other
    /// than `Some(true)`, and operations work again.
    ReconnectWithoutSession,
    /// A reconnect resuming the session is reported as `Connected { session_present:
    /// Some(true) }` (or `None` for a transport without [`Capability::SessionFlag`]).
    ReconnectWithSession,
    /// An idle transport keeps its connection alive for [`Config::keep_alive_periods`](super::Config::keep_alive_periods)
    /// keep-alive periods: it is never silent for 1.5 × its keep-alive (it sends PINGREQ),
    /// the broker does not close it, and a message after the idle time arrives.
    KeepAliveWhileIdle,
    /// Dropping the last handle of the transport drops the sink: it is called no more.
    DropEndsDelivery,
}

impl Rule {
    /// Every rule, in the order [`run`](super::run) checks them.
    pub const ALL: [Rule; 26] = [
        Rule::OneSink,
        Rule::SubscribeAcknowledged,
        Rule::SubscribeOutcomePerFilter,
        Rule::RefusedFilterReported,
        Rule::QosAsAsked,
        Rule::PublishAcknowledged,
        Rule::NoRetain,
        Rule::AcksMatchedByPacketId,
        Rule::MessagesInOrder,
        Rule::NoDuplicateDeliveries,
        Rule::InboundAcknowledged,
        Rule::ConcurrentPublishes,
        Rule::LargeMessages,
        Rule::UnsubscribeAcknowledged,
        Rule::WokenCallerCanPublish,
        Rule::SinkPanicContained,
        Rule::ExpiredDeadlineSendsNothing,
        Rule::DeadlineHonoured,
        Rule::NothingResentAfterTimeout,
        Rule::LinkDropFailsCallsInFlight,
        Rule::ConnectionLostReported,
        Rule::OfflineFailsFast,
        Rule::ReconnectWithoutSession,
        Rule::ReconnectWithSession,
        Rule::KeepAliveWhileIdle,
        Rule::DropEndsDelivery,
    ];

    /// The rule's name, as failure messages and reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::OneSink => "one_sink",
            Self::SubscribeAcknowledged => "subscribe_acknowledged",
            Self::SubscribeOutcomePerFilter => "subscribe_outcome_per_filter",
            Self::RefusedFilterReported => "refused_filter_reported",
            Self::QosAsAsked => "qos_as_asked",
            Self::PublishAcknowledged => "publish_acknowledged",
            Self::NoRetain => "no_retain",
            Self::AcksMatchedByPacketId => "acks_matched_by_packet_id",
            Self::MessagesInOrder => "messages_in_order",
            Self::NoDuplicateDeliveries => "no_duplicate_deliveries",
            Self::InboundAcknowledged => "inbound_acknowledged",
            Self::ConcurrentPublishes => "concurrent_publishes",
            Self::LargeMessages => "large_messages",
            Self::UnsubscribeAcknowledged => "unsubscribe_acknowledged",
            Self::WokenCallerCanPublish => "woken_caller_can_publish",
            Self::SinkPanicContained => "sink_panic_contained",
            Self::ExpiredDeadlineSendsNothing => "expired_deadline_sends_nothing",
            Self::DeadlineHonoured => "deadline_honoured",
            Self::NothingResentAfterTimeout => "nothing_resent_after_timeout",
            Self::LinkDropFailsCallsInFlight => "link_drop_fails_calls_in_flight",
            Self::ConnectionLostReported => "connection_lost_reported",
            Self::OfflineFailsFast => "offline_fails_fast",
            Self::ReconnectWithoutSession => "reconnect_without_session",
            Self::ReconnectWithSession => "reconnect_with_session",
            Self::KeepAliveWhileIdle => "keep_alive_while_idle",
            Self::DropEndsDelivery => "drop_ends_delivery",
        }
    }

    /// The broker controls the rule needs; without them it is skipped.
    pub fn needs(self) -> &'static [Capability] {
        match self {
            Self::RefusedFilterReported => &[Capability::RefuseFilter],
            Self::QosAsAsked => &[Capability::Observe],
            Self::NoRetain => &[Capability::Observe],
            Self::AcksMatchedByPacketId => &[Capability::HoldAcks, Capability::Observe],
            Self::InboundAcknowledged => &[Capability::InflightWindow],
            Self::DeadlineHonoured => &[Capability::Freeze],
            Self::NothingResentAfterTimeout => &[
                Capability::Freeze,
                Capability::DropConnection,
                Capability::Observe,
            ],
            Self::LinkDropFailsCallsInFlight => &[
                Capability::Freeze,
                Capability::DropConnection,
                Capability::Observe,
            ],
            Self::ConnectionLostReported => &[Capability::DropConnection],
            Self::OfflineFailsFast => &[Capability::DropConnection],
            Self::ReconnectWithoutSession => &[Capability::DropConnection],
            Self::ReconnectWithSession => &[Capability::DropConnection, Capability::ResumeSession],
            Self::KeepAliveWhileIdle => &[Capability::KeepAlive, Capability::Observe],
            _ => &[],
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

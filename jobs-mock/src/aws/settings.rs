//! [`AwsSettings`], [`QuotaReaction`] and [`QuotaClock`]: how an AWS-mode broker enforces AWS
//! IoT Core's quotas.

use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The default of [`AwsSettings::service_client_id`]: the client ID `jobs-service` connects
/// with unless told otherwise.
pub const DEFAULT_SERVICE_CLIENT_ID: &str = "jobs-service";

/// AWS IoT Core's subscriptions per connection.
pub const AWS_MAX_SUBSCRIPTIONS: usize = 50;

/// AWS IoT Core's topic filters per SUBSCRIBE.
pub const AWS_MAX_FILTERS_PER_SUBSCRIBE: usize = 8;

/// AWS IoT Core's publishes per second per connection, inbound and outbound together.
pub const AWS_PUBLISHES_PER_SECOND: usize = 100;

/// AWS IoT Core's largest PUBLISH payload: 128 KiB (131,072 bytes; one more byte is refused).
pub const AWS_MAX_PAYLOAD: usize = 128 * 1024;

/// What the broker does when a client goes beyond a quota. Which quota allows which reaction,
/// and AWS's own, is on each setter of [`AwsSettings`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum QuotaReaction {
    /// The operation is refused and the connection stays: a SUBACK with 0x80 for the filters
    /// refused; a PUBLISH discarded without PUBACK.
    Refuse,
    /// As [`Refuse`](Self::Refuse), then the broker closes the connection.
    RefuseAndDisconnect,
    /// The broker closes the connection without answering the packet (no SUBACK, UNSUBACK or
    /// PUBACK).
    Disconnect,
}

/// The publish-rate quota: at most `limit` publishes of one client, inbound and outbound
/// together, in any window of `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublishRate {
    /// Publishes allowed per window.
    pub limit: usize,
    /// The window's length.
    pub per: Duration,
}

/// The time source of an AWS-mode [`MockBroker`](crate::MockBroker)'s rate windows: the
/// system's monotonic clock, or a manual clock that moves only when a test
/// [`advance`](Self::advance)s it, so that rate tests need no sleeps. Cloning is cheap and
/// clones share the time.
#[derive(Debug, Clone)]
pub struct QuotaClock {
    kind: Arc<ClockKind>,
}

#[derive(Debug)]
enum ClockKind {
    System(Instant),
    Manual(Mutex<Duration>),
}

impl QuotaClock {
    /// The system's monotonic clock (the default).
    pub fn system() -> Self {
        Self {
            kind: Arc::new(ClockKind::System(Instant::now())),
        }
    }

    /// A manual clock at zero; it moves only by [`advance`](Self::advance).
    pub fn manual() -> Self {
        Self {
            kind: Arc::new(ClockKind::Manual(Mutex::new(Duration::ZERO))),
        }
    }

    /// Moves a manual clock forward by `by` (saturating); returns false, changing nothing, on
    /// the system clock.
    pub fn advance(&self, by: Duration) -> bool {
        match &*self.kind {
            ClockKind::System(_) => false,
            ClockKind::Manual(now) => {
                let mut now = now.lock();
                *now = now.saturating_add(by);
                true
            }
        }
    }

    /// The time since the clock started (a manual clock: the sum of its advances).
    pub fn elapsed(&self) -> Duration {
        match &*self.kind {
            ClockKind::System(origin) => origin.elapsed(),
            ClockKind::Manual(now) => *now.lock(),
        }
    }
}

impl Default for QuotaClock {
    fn default() -> Self {
        Self::system()
    }
}

/// How an AWS-mode broker behaves: AWS IoT Core's MQTT-level quotas and its implicit Jobs
/// replies, each adjustable. Used by [`MockBroker::with_aws`](crate::MockBroker::with_aws) and
/// (feature `local-broker`) `LocalBroker::start_aws`, which hands them to the mosquitto
/// plugin; the setters say what only the [`MockBroker`](crate::MockBroker) does.
///
/// Every quota is counted per client ID; the service's connection
/// ([`service_client_id`](Self::service_client_id)) is exempt from all of them.
///
/// ```
/// use std::time::Duration;
/// use jobs_mock::aws::{AwsSettings, QuotaClock, QuotaReaction};
///
/// let clock = QuotaClock::manual();
/// let settings = AwsSettings::default()
///     .publish_rate(10, Duration::from_secs(1))
///     .subscription_overrun(QuotaReaction::RefuseAndDisconnect)
///     .clock(clock.clone());
/// assert_eq!(settings.service(), "jobs-service");
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct AwsSettings {
    pub(crate) service_client_id: String,
    pub(crate) implicit_replies: bool,
    pub(crate) max_subscriptions: usize,
    pub(crate) subscription_overrun: QuotaReaction,
    pub(crate) max_filters_per_subscribe: usize,
    pub(crate) filters_overrun: QuotaReaction,
    pub(crate) publish_rate: Option<PublishRate>,
    pub(crate) max_payload: usize,
    pub(crate) payload_overrun: QuotaReaction,
    pub(crate) clock: QuotaClock,
}

impl Default for AwsSettings {
    /// AWS IoT Core's quotas, implicit replies on, the service as `jobs-service`, the system
    /// clock.
    fn default() -> Self {
        Self {
            service_client_id: DEFAULT_SERVICE_CLIENT_ID.to_owned(),
            implicit_replies: true,
            max_subscriptions: AWS_MAX_SUBSCRIPTIONS,
            subscription_overrun: QuotaReaction::Refuse,
            max_filters_per_subscribe: AWS_MAX_FILTERS_PER_SUBSCRIBE,
            filters_overrun: QuotaReaction::Disconnect,
            publish_rate: Some(PublishRate {
                limit: AWS_PUBLISHES_PER_SECOND,
                per: Duration::from_secs(1),
            }),
            max_payload: AWS_MAX_PAYLOAD,
            payload_overrun: QuotaReaction::Disconnect,
            clock: QuotaClock::system(),
        }
    }
}

impl AwsSettings {
    /// The client ID of the Jobs service's connection: exempt from every quota, the only
    /// client that may subscribe or publish under `$jobs-emulator/` (the relay) and publish
    /// on Jobs reply and event topics. Defaults to `jobs-service`.
    pub fn service_client_id(mut self, client_id: &str) -> Self {
        client_id.clone_into(&mut self.service_client_id);
        self
    }

    /// Whether Jobs replies reach the requester alone, whether or not it subscribed (AWS;
    /// documented): requests are relayed to the service with the requester's ID (see
    /// [`relay`](super::relay)) and the service must run in relay mode
    /// ([`SimulatorMode::Relay`](crate::service::SimulatorMode::Relay), `jobs-service
    /// --relay`). Off, requests and replies are ordinary publishes routed by subscription
    /// (as on any broker) while the quotas still hold. Defaults to on.
    pub fn implicit_replies(mut self, on: bool) -> Self {
        self.implicit_replies = on;
        self
    }

    /// The most distinct filters one connection may hold; subscribing again to a held filter
    /// is no new subscription, and UNSUBSCRIBE frees one. Defaults to 50 (AWS; documented).
    pub fn max_subscriptions(mut self, max: usize) -> Self {
        self.max_subscriptions = max;
        self
    }

    /// What happens to a filter beyond [`max_subscriptions`](Self::max_subscriptions).
    /// AWS documents "may be rejected … and the connection will be closed"; users report a
    /// SUBACK failure per filter with the connection kept (shamblett/mqtt_client#368, 2022)
    /// and, in 2016, a closed connection (aws-iot-device-sdk-js#43). Defaults to
    /// [`QuotaReaction::Refuse`] (our choice, after the newer report).
    pub fn subscription_overrun(mut self, reaction: QuotaReaction) -> Self {
        self.subscription_overrun = reaction;
        self
    }

    /// The most filters one SUBSCRIBE or UNSUBSCRIBE may carry. Defaults to 8 (AWS;
    /// documented). **MockBroker only**: a mosquitto 2.0 plugin does not see packet
    /// boundaries.
    pub fn filters_per_subscribe(mut self, max: usize) -> Self {
        self.max_filters_per_subscribe = max;
        self
    }

    /// What happens to a SUBSCRIBE or UNSUBSCRIBE with more than
    /// [`filters_per_subscribe`](Self::filters_per_subscribe) filters: with
    /// [`QuotaReaction::Refuse`] every filter of a SUBSCRIBE gets 0x80 (an UNSUBSCRIBE is
    /// acknowledged and changes nothing). AWS documents no reaction; users see no SUBACK and
    /// the connection closed (aws-iot-device-sdk-embedded-C#1625 and #1903: the next read
    /// fails; aws-iot-device-sdk-js#361: no UNSUBACK). Defaults to
    /// [`QuotaReaction::Disconnect`] (our choice, after those reports). **MockBroker only.**
    pub fn filters_overrun(mut self, reaction: QuotaReaction) -> Self {
        self.filters_overrun = reaction;
        self
    }

    /// The publish-rate quota: at most `limit` publishes of one client, inbound (what it
    /// publishes) and outbound (what it is sent) together, in any window of `per` (a sliding
    /// window). A publish beyond it is discarded and counted: inbound without PUBACK (the
    /// publisher's QoS 1 call times out, as on AWS with MQTT 3.1.1 — see the mosquitto
    /// plugin's docs for its one difference), outbound not delivered. Discarded publishes do
    /// not count towards the window. Defaults to 100 per second (AWS; documented "100
    /// publishes per second per connection", inbound and outbound; AWS does not say how the
    /// second is measured — the sliding window is our choice, the strictest reading: a
    /// client-side token bucket of burst `b` and rate `r` per second stays within it when
    /// `b + r ≤ 100`).
    pub fn publish_rate(mut self, limit: usize, per: Duration) -> Self {
        self.publish_rate = Some(PublishRate { limit, per });
        self
    }

    /// Turns the publish-rate quota off.
    pub fn unlimited_publish_rate(mut self) -> Self {
        self.publish_rate = None;
        self
    }

    /// The largest PUBLISH payload in bytes. Defaults to 131,072 (AWS: 128 KB; measured by
    /// users: 131,072 bytes pass, 131,073 do not, aws-iot-device-sdk-js-v2#535).
    pub fn max_payload(mut self, bytes: usize) -> Self {
        self.max_payload = bytes;
        self
    }

    /// What happens to a PUBLISH over [`max_payload`](Self::max_payload): AWS closes the
    /// connection (an AWS engineer in aws-iot-device-sdk-python#21; measured in
    /// aws-iot-device-sdk-js-v2#535). [`QuotaReaction::Refuse`] discards it without PUBACK
    /// instead; `RefuseAndDisconnect` is the same as `Disconnect` here. Defaults to
    /// [`QuotaReaction::Disconnect`].
    pub fn payload_overrun(mut self, reaction: QuotaReaction) -> Self {
        self.payload_overrun = reaction;
        self
    }

    /// The clock of the rate windows. **MockBroker only** (the plugin uses the system's
    /// monotonic clock). Defaults to [`QuotaClock::system`].
    pub fn clock(mut self, clock: QuotaClock) -> Self {
        self.clock = clock;
        self
    }

    /// The rate quota, if on.
    pub fn rate(&self) -> Option<PublishRate> {
        self.publish_rate
    }

    /// The service's client ID.
    pub fn service(&self) -> &str {
        &self.service_client_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced_and_clones_share_it() {
        let clock = QuotaClock::manual();
        let clone = clock.clone();
        assert_eq!(clock.elapsed(), Duration::ZERO);
        assert!(clone.advance(Duration::from_millis(1500)));
        assert_eq!(clock.elapsed(), Duration::from_millis(1500));
        assert!(!QuotaClock::system().advance(Duration::from_secs(1)));
    }

    #[test]
    fn the_defaults_are_aws_iot_cores_quotas() {
        let settings = AwsSettings::default();
        assert_eq!(settings.max_subscriptions, 50);
        assert_eq!(settings.max_filters_per_subscribe, 8);
        assert_eq!(
            settings.rate(),
            Some(PublishRate {
                limit: 100,
                per: Duration::from_secs(1)
            })
        );
        assert_eq!(settings.max_payload, 131_072);
        assert_eq!(settings.service(), "jobs-service");
        assert!(settings.implicit_replies);
    }
}

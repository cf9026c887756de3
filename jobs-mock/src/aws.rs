//! AWS IoT Core's MQTT-level behaviour for the emulator: its quotas and its implicit Jobs
//! replies, so that device code that works against the emulator does not fail on AWS.
//!
//! Two brokers have an AWS mode, configured by the same [`AwsSettings`] and counting the same
//! [`QuotaCounters`]:
//!
//! - the [`MockBroker`](crate::MockBroker) ([`MockBroker::aws`](crate::MockBroker::aws),
//!   [`MockBroker::with_aws`](crate::MockBroker::with_aws)), deterministic, for unit tests,
//!   with an injectable [`QuotaClock`] for the rate windows;
//! - mosquitto 2.0 with the `jobs-mosquitto-plugin` (in `jobs-mock/mosquitto-plugin/`), which
//!   `LocalBroker::start_aws` (feature `local-broker`) starts.
//!
//! Without AWS mode both behave as any broker does (portable mode).
//!
//! # Behaviour, with its evidence
//!
//! | AWS IoT Core | AWS mode | Evidence |
//! |---|---|---|
//! | A Jobs reply (`…/accepted`, `…/rejected`) reaches the requesting connection, whether or not it subscribed, and no other client | the same, through the [`relay`] to the service: the requester alone gets it, once, even if subscribed; others get nothing even if subscribed | documented (Jobs MQTT API) |
//! | 50 subscriptions per connection | the same per client ID (distinct filters; again to a held filter is no new one; UNSUBSCRIBE frees one); beyond: SUBACK 0x80, connection kept ([`AwsSettings::subscription_overrun`]) | documented ("may be rejected … and the connection will be closed"); reaction: users' reports, our choice |
//! | 8 filters per SUBSCRIBE | MockBroker only: a SUBSCRIBE or UNSUBSCRIBE with more gets no answer and the connection is closed ([`AwsSettings::filters_overrun`]) | documented limit; reaction undocumented, from users' reports |
//! | 100 publishes per second per connection, inbound and outbound together | the same per client ID, a sliding window; beyond: discarded and counted, inbound without PUBACK (the mosquitto plugin cannot withhold the PUBACK) | documented (AWS quota tables; no PUBACK on 3.1.1: aws-iot-device-sdk-python-v2#257) |
//! | 128 KB payload | over 131,072 bytes: the connection is closed without PUBACK ([`AwsSettings::payload_overrun`]) | documented limit; reaction measured by users |
//! | A second CONNECT with the same client ID closes the first | the same (both brokers always do this) | documented |
//! | Devices may not publish on reply or event topics | a non-service client's PUBLISH there is dropped and counted as `denied` (the mock still acknowledges it, as the plugin does) | documented ("can result in a terminated connection"; we do not disconnect) |
//!
//! The service's connection ([`AwsSettings::service_client_id`], `jobs-service` by default) is
//! exempt from every quota and is the only one that may use the relay.
//!
//! On the `MockBroker`, recording ([`MockBroker::published`](crate::MockBroker::published))
//! shows a relayed request on its own topic, published by the device; a relayed reply as the
//! service's publish on `$jobs-emulator/reply/…` and, once delivered, as the broker's
//! ([`BROKER_CLIENT`](crate::BROKER_CLIENT)) publish on the reply topic; a scripted reply as
//! the broker's. A publish discarded by the rate quota is not recorded.

mod counters;
pub mod relay;
mod settings;
pub(crate) mod window;

pub use counters::{QuotaCounters, QuotaReport};
pub use settings::{
    AWS_MAX_FILTERS_PER_SUBSCRIBE, AWS_MAX_PAYLOAD, AWS_MAX_SUBSCRIPTIONS,
    AWS_PUBLISHES_PER_SECOND, AwsSettings, DEFAULT_SERVICE_CLIENT_ID, PublishRate, QuotaClock,
    QuotaReaction,
};

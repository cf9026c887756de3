//! A mosquitto 2.0 plugin that gives a real broker AWS IoT Core's MQTT-level behaviour, for
//! the `jobs-mock` emulator: Jobs replies reach the requester alone, whether or not it
//! subscribed; 50 subscriptions per client; 100 publishes per second per client, inbound and
//! outbound together; 128 KiB payloads. What it counted, per client ID, is readable over
//! MQTT. The behaviour and its evidence are in `jobs_mock::aws`; the
//! [`MockBroker`](https://docs.rs/jobs-mock)'s AWS mode does the same in memory.
//!
//! Tests start it with `jobs_mock::local_broker::LocalBroker::start_aws`, which finds the
//! library next to the test executable (`jobs_mock::local_broker::aws_plugin_path`). By hand:
//!
//! ```text
//! cargo build -p jobs-mosquitto-plugin        # target/debug/libjobs_mosquitto_plugin.so
//! # mosquitto.conf
//! per_listener_settings false
//! allow_anonymous true
//! plugin /path/to/target/debug/libjobs_mosquitto_plugin.so
//! plugin_opt_publish_rate 1000                # optional; the options below
//! listener 1883 127.0.0.1
//! ```
//!
//! then run `jobs-service --relay` (its client ID, `jobs-service`, is the service's).
//!
//! # Options (`plugin_opt_<key> <value>`)
//! | Key | Default | Meaning |
//! |---|---|---|
//! | `service_client_id` | `jobs-service` | the Jobs service's connection: exempt from every quota, the only one that may use `$jobs-emulator/…` and publish Jobs replies and events |
//! | `implicit_replies` | `true` | relay Jobs requests to the service and its replies to the requester alone (`false`: requests and replies are ordinary publishes) |
//! | `max_subscriptions` | 50 | distinct filters per client |
//! | `subscription_overrun` | `refuse` | `refuse` (SUBACK 0x80), `refuse-and-disconnect` (0x80, then the connection is closed at the next loop iteration), `disconnect` (no SUBACK, closed) |
//! | `publish_rate` | 100 | publishes per window per client, in and out together; `off` for none |
//! | `publish_rate_window_ms` | 1000 | the sliding window's length |
//! | `max_payload` | 131072 | bytes of a PUBLISH payload |
//! | `payload_overrun` | `disconnect` | `disconnect` (no PUBACK, closed), `refuse` (dropped), `refuse-and-disconnect` |
//!
//! An unknown option or a bad value stops mosquitto at start, with the option named in its log.
//!
//! # How it works
//! - **Relay** (`jobs_mock::aws::relay`): a client's PUBLISH on a Jobs request topic
//!   (`$aws/things/{thing}/jobs/…`, not a reply or event) is routed, in `MOSQ_EVT_MESSAGE`,
//!   on `$jobs-emulator/request/{client}/{topic}` instead (`{client}` percent-encoded), which
//!   only the service may subscribe to. The service answers on
//!   `$jobs-emulator/reply/{client}/{reply topic}`; the plugin drops that message and hands the
//!   payload to `mosquitto_broker_publish_copy(client, reply topic, …)`, which delivers it to
//!   that client alone, subscribed or not (QoS 1). Events are ordinary publishes.
//! - **Subscriptions**: `MOSQ_EVT_ACL_CHECK` sees each SUBSCRIBE and UNSUBSCRIBE filter; the
//!   plugin keeps each client's filters itself (`mosquitto_client_sub_count` does not shrink
//!   on UNSUBSCRIBE), following mosquitto's session: on a new connection they are kept only if
//!   it resumed a session that brought subscriptions along. A denied filter gets 0x80 in the
//!   SUBACK (MQTT 3.1.1; checked by this crate's tests on mosquitto 2.0.11).
//! - **Rate**: a sliding window per client ID; inbound PUBLISHes in `MOSQ_EVT_MESSAGE`,
//!   outbound deliveries in `MOSQ_EVT_ACL_CHECK` (read access, called per delivery) and when
//!   delivering a relayed reply.
//! - **Counters**: publish anything on `$jobs-emulator/quota/get` (or `…/quota/reset` to zero
//!   them first) and the plugin answers the publisher alone on `$jobs-emulator/quota/report`
//!   with `{"clients":{"<client ID>":{"subscriptions":…,"subscribe_granted":…,
//!   "subscribe_refused":…,"published":…,"delivered":…,"discarded_inbound":…,
//!   "discarded_outbound":…,"oversized":…,"denied":…,"disconnected":…}}}` (the fields of
//!   `jobs_mock::aws::QuotaCounters`). Exempt from the quotas.
//!
//! # Where it differs from AWS IoT Core (what a mosquitto 2.0 plugin cannot do)
//! - **A discarded PUBLISH is acknowledged.** mosquitto sends the PUBACK of a message a plugin
//!   drops (on MQTT 5 with reason 0x87), so the publisher's call succeeds where AWS sends no
//!   PUBACK on MQTT 3.1.1; only the counters show it. The `MockBroker` withholds it.
//! - **The 8 filters per SUBSCRIBE are not enforced**: a plugin does not see packet
//!   boundaries. The `MockBroker` enforces them.
//! - `refuse-and-disconnect` closes the connection at the broker's next loop iteration (its
//!   tick), just after the SUBACK or PUBACK; the tick runs only with
//!   `per_listener_settings false` (mosquitto 2.0.11).
//! - mosquitto 2.0.11–2.0.14 leak the original topic string of every relayed request (fixed in
//!   mosquitto 2.0.15, which frees it; the plugin cannot free it without a double free there).
//! - Counted per client ID rather than per connection: a client that reconnects keeps its rate
//!   window and counters.
//!
//! # Safety
//! This is the workspace's one crate with `unsafe`: the FFI in `ffi`, each block with its
//! `// SAFETY:` argument. Every decision is made in safe code (the `quota` module) that the unit
//! tests exercise without mosquitto.

#[allow(
    dead_code,
    unreachable_pub,
    reason = "shared with jobs-mock, which uses all of it"
)]
#[path = "../../src/aws/relay.rs"]
mod relay;
#[allow(dead_code, reason = "shared with jobs-mock")]
#[path = "../../src/aws/window.rs"]
mod window;

mod config;
mod ffi;
mod quota;

pub use ffi::{
    MosquittoOpt, PluginId, mosquitto_plugin_cleanup, mosquitto_plugin_init,
    mosquitto_plugin_version,
};

//! The plugin in mosquitto (started by `LocalBroker::start_aws`), checked with raw MQTT 3.1.1
//! clients (`jobs_mock::conformance::Peer`) and, end to end, with `jobs-service --relay` and a
//! `jobs-core` client over Paho. Rate tests use a one-minute window, so that a burst is
//! certainly inside one window however slow the machine; every wait is bounded.

#![allow(clippy::unwrap_used, reason = "a panic fails the test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{
    Client, ConnectionEvent, JobStatus, Jobs, MessageSink, MqttTransport, QoS, SubscribeOutcome,
    TransportError,
};
use jobs_mock::aws::{AwsSettings, QuotaReaction};
use jobs_mock::conformance::Peer;
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator, SimulatorMode};

const WAIT: Duration = Duration::from_secs(10);
const GET: &str = "$aws/things/pump-07/jobs/get";
const GET_ACCEPTED: &str = "$aws/things/pump-07/jobs/get/accepted";

fn soon() -> Instant {
    Instant::now() + WAIT
}

/// A rate window long enough that a test's burst fits in one.
fn one_minute(settings: AwsSettings) -> AwsSettings {
    settings.publish_rate(100, Duration::from_secs(60))
}

/// What a raw client received, as channels.
struct Inbox {
    messages: Sender<(String, Vec<u8>)>,
    lost: Sender<()>,
}

impl MessageSink for Inbox {
    fn message(&self, topic: &str, payload: &[u8]) {
        let _ = self.messages.send((topic.to_owned(), payload.to_vec()));
    }
    fn connection(&self, event: ConnectionEvent) {
        if matches!(event, ConnectionEvent::ConnectionLost) {
            let _ = self.lost.send(());
        }
    }
}

struct Raw {
    peer: Peer,
    messages: Receiver<(String, Vec<u8>)>,
    lost: Receiver<()>,
}

impl Raw {
    fn connect(broker: &LocalBroker, id: &str, filters: &[&str]) -> Self {
        let peer =
            Peer::connect(("127.0.0.1", broker.port()), id, Duration::from_secs(30)).unwrap();
        let (messages_tx, messages) = crossbeam_channel::unbounded();
        let (lost_tx, lost) = crossbeam_channel::unbounded();
        peer.set_sink(Arc::new(Inbox {
            messages: messages_tx,
            lost: lost_tx,
        }))
        .unwrap();
        let raw = Self {
            peer,
            messages,
            lost,
        };
        if !filters.is_empty() {
            assert!(raw.subscribe(filters).unwrap().iter().all(|&g| g));
        }
        raw
    }

    fn subscribe(&self, filters: &[&str]) -> Result<Vec<bool>, TransportError> {
        Ok(self
            .peer
            .subscribe(filters, QoS::AtLeastOnce, soon())?
            .into_iter()
            .map(|o| o != SubscribeOutcome::Refused)
            .collect())
    }

    fn publish(&self, topic: &str, payload: &[u8]) -> Result<(), TransportError> {
        self.peer.publish(topic, payload, QoS::AtLeastOnce, soon())
    }

    /// The next message, waiting at most 10 s.
    fn next(&self) -> (String, Vec<u8>) {
        self.messages.recv_timeout(WAIT).unwrap()
    }

    /// Every message received until (and without) the first on `marker`.
    fn until(&self, marker: &str) -> Vec<String> {
        let mut topics = Vec::new();
        loop {
            let (topic, _) = self.next();
            if topic == marker {
                return topics;
            }
            topics.push(topic);
        }
    }

    fn wait_lost(&self) {
        self.lost.recv_timeout(WAIT).unwrap();
    }
}

/// A broker with the plugin, and the simulator in relay mode as `jobs-service` (over a raw
/// client, so that nothing but the plugin is under test).
fn broker_with_service(settings: &AwsSettings) -> (LocalBroker, Simulator) {
    let broker = LocalBroker::start_aws(settings).unwrap();
    let peer = Peer::connect(("127.0.0.1", broker.port()), "jobs-service", WAIT).unwrap();
    let simulator = Simulator::start_with(
        Arc::new(peer),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
        SimulatorMode::Relay,
    )
    .unwrap();
    (broker, simulator)
}

fn filters(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("quota/filter/{i}")).collect()
}

fn refs(filters: &[String]) -> Vec<&str> {
    filters.iter().map(String::as_str).collect()
}

#[test]
fn implicit_replies_reach_the_requester_alone_whether_or_not_it_subscribed() {
    let (broker, _simulator) = broker_with_service(&AwsSettings::default());
    let requester = Raw::connect(&broker, "pump-07", &[]);
    let spy = Raw::connect(&broker, "spy", &["$aws/things/+/jobs/#", "marker"]);
    let subscribed = Raw::connect(&broker, "pump-07-twin", &[GET_ACCEPTED, "marker"]);

    requester.publish(GET, br#"{"clientToken":"t1"}"#).unwrap();
    let (topic, payload) = requester.next();
    assert_eq!(topic, GET_ACCEPTED);
    assert!(String::from_utf8(payload).unwrap().contains("t1"));
    // Subscribed to its own reply: still one copy.
    requester.subscribe(&[GET_ACCEPTED]).unwrap();
    requester.publish(GET, br#"{"clientToken":"t2"}"#).unwrap();
    assert_eq!(requester.next().0, GET_ACCEPTED);
    // mosquitto delivers to each client in order: what reaches the others reached them before
    // the marker, published after both replies.
    requester.publish("marker", b"").unwrap();
    assert!(
        spy.until("marker").is_empty(),
        "not the requests, not the replies"
    );
    assert!(subscribed.until("marker").is_empty());
    assert!(
        requester.messages.try_recv().is_err(),
        "exactly one copy each"
    );
    let report = broker.quota_report().unwrap();
    assert_eq!(report.client("pump-07").published, 3);
    assert_eq!(report.client("pump-07").delivered, 2);
    assert!(!report.clients.contains_key("jobs-service"));
}

#[test]
fn the_51st_subscription_gets_0x80_and_unsubscribe_frees_one() {
    let broker = LocalBroker::start_aws(&AwsSettings::default()).unwrap();
    let gateway = Raw::connect(&broker, "gateway", &[]);
    let all = filters(51);
    for chunk in all[..50].chunks(8) {
        assert!(gateway.subscribe(&refs(chunk)).unwrap().iter().all(|&g| g));
    }
    // Again to a held filter: no new subscription.
    assert_eq!(gateway.subscribe(&[&all[0]]).unwrap(), [true]);
    assert_eq!(gateway.subscribe(&[&all[50]]).unwrap(), [false]);
    gateway.peer.unsubscribe(&[&all[0]], soon()).unwrap();
    assert_eq!(gateway.subscribe(&[&all[50]]).unwrap(), [true]);
    let counters = broker.quota_report().unwrap().client("gateway");
    assert_eq!(counters.subscriptions, 50);
    assert_eq!(
        (counters.subscribe_granted, counters.subscribe_refused),
        (52, 1)
    );
    assert!(gateway.lost.try_recv().is_err(), "the connection stays");
}

#[test]
fn a_subscription_overrun_can_close_the_connection_after_or_instead_of_the_suback() {
    let settings = AwsSettings::default()
        .max_subscriptions(2)
        .subscription_overrun(QuotaReaction::RefuseAndDisconnect);
    let broker = LocalBroker::start_aws(&settings).unwrap();
    let client = Raw::connect(&broker, "a", &[]);
    assert_eq!(
        client.subscribe(&refs(&filters(3))).unwrap(),
        [true, true, false]
    );
    client.wait_lost();

    let settings = settings.subscription_overrun(QuotaReaction::Disconnect);
    let broker = LocalBroker::start_aws(&settings).unwrap();
    let client = Raw::connect(&broker, "b", &[]);
    assert!(matches!(
        client.subscribe(&refs(&filters(3))),
        Err(TransportError::ConnectionLost)
    ));
    assert_eq!(broker.quota_report().unwrap().client("b").disconnected, 1);
}

#[test]
fn a_takeover_starts_a_clean_session_with_a_fresh_subscription_count() {
    let broker = LocalBroker::start_aws(&AwsSettings::default().max_subscriptions(2)).unwrap();
    let first = Raw::connect(&broker, "pump-07", &["a", "b"]);
    let second = Raw::connect(&broker, "pump-07", &[]);
    first.wait_lost();
    assert_eq!(
        second.subscribe(&["c", "d", "e"]).unwrap(),
        [true, true, false]
    );
    let counters = broker.quota_report().unwrap().client("pump-07");
    assert_eq!((counters.subscriptions, counters.subscribe_refused), (2, 1));
}

#[test]
fn a_burst_beyond_the_rate_is_discarded_and_counted_but_acknowledged() {
    let broker = LocalBroker::start_aws(&one_minute(AwsSettings::default())).unwrap();
    let listener = Raw::connect(&broker, "listener", &["telemetry"]);
    let burst = Raw::connect(&broker, "burst", &[]);
    for _ in 0..150 {
        // mosquitto acknowledges a dropped message (unlike AWS on MQTT 3.1.1).
        burst.publish("telemetry", b"x").unwrap();
    }
    let report = broker.quota_report().unwrap();
    let counters = report.client("burst");
    assert_eq!((counters.published, counters.discarded_inbound), (100, 50));
    // Only what was admitted was delivered (the listener's own window holds 100).
    let listened = report.client("listener");
    assert_eq!((listened.delivered, listened.discarded_outbound), (100, 0));
    for _ in 0..100 {
        assert_eq!(listener.next().0, "telemetry");
    }
}

#[test]
fn a_connection_within_the_rate_loses_nothing() {
    let broker = LocalBroker::start_aws(&one_minute(AwsSettings::default())).unwrap();
    let listener = Raw::connect(&broker, "listener", &["telemetry", "marker"]);
    let first = Raw::connect(&broker, "first", &[]);
    let second = Raw::connect(&broker, "second", &[]);
    for _ in 0..50 {
        first.publish("telemetry", b"x").unwrap();
    }
    for _ in 0..49 {
        second.publish("telemetry", b"x").unwrap();
    }
    second.publish("marker", b"").unwrap();
    assert_eq!(listener.until("marker").len(), 99);
    let report = broker.quota_report().unwrap();
    assert_eq!(report.total().discarded(), 0);
    assert_eq!(report.client("listener").delivered, 100);
}

#[test]
fn what_a_client_receives_counts_against_its_own_window() {
    let broker = LocalBroker::start_aws(&one_minute(AwsSettings::default())).unwrap();
    let listener = Raw::connect(&broker, "listener", &["telemetry"]);
    let first = Raw::connect(&broker, "first", &[]);
    let second = Raw::connect(&broker, "second", &[]);
    for _ in 0..60 {
        first.publish("telemetry", b"x").unwrap();
        second.publish("telemetry", b"x").unwrap();
    }
    let report = broker.quota_report().unwrap();
    assert_eq!(report.client("first").discarded(), 0);
    assert_eq!(report.client("second").discarded(), 0);
    let listened = report.client("listener");
    assert_eq!((listened.delivered, listened.discarded_outbound), (100, 20));
    for _ in 0..100 {
        listener.next();
    }
}

#[test]
fn payloads_over_128_kib_close_the_connection_without_puback() {
    let broker = LocalBroker::start_aws(&AwsSettings::default()).unwrap();
    let publisher = Raw::connect(&broker, "publisher", &[]);
    publisher.publish("big", &vec![0; 131_072]).unwrap();
    assert!(matches!(
        publisher.publish("big", &vec![0; 131_073]),
        Err(TransportError::ConnectionLost)
    ));
    publisher.wait_lost();
    let counters = broker.quota_report().unwrap().client("publisher");
    assert_eq!((counters.oversized, counters.disconnected), (1, 1));
}

#[test]
fn the_services_connection_is_exempt_but_what_it_sends_counts_for_the_receiver() {
    let broker = LocalBroker::start_aws(&one_minute(AwsSettings::default())).unwrap();
    let device = Raw::connect(&broker, "pump-07", &["$aws/things/pump-07/jobs/notify"]);
    let service = Raw::connect(&broker, "jobs-service", &["$jobs-emulator/request/#"]);
    for _ in 0..150 {
        service
            .publish("$aws/things/pump-07/jobs/notify", b"{}")
            .unwrap();
    }
    service
        .publish("$aws/things/pump-07/jobs/notify", b"end")
        .unwrap();
    let report = broker.quota_report().unwrap();
    assert!(!report.clients.contains_key("jobs-service"));
    assert_eq!(report.client("pump-07").delivered, 100);
    assert_eq!(report.client("pump-07").discarded_outbound, 51);
    for _ in 0..100 {
        assert_eq!(device.next().1, b"{}");
    }
    // The relay is the service's: a device may neither subscribe nor publish there.
    assert_eq!(device.subscribe(&["$jobs-emulator/#"]).unwrap(), [false]);
}

#[test]
fn jobs_service_relay_runs_jobs_for_a_paho_device_end_to_end() {
    let broker = LocalBroker::start_aws(&AwsSettings::default()).unwrap();
    let args = <jobs_mock::server::cli::Args as clap::Parser>::try_parse_from([
        "jobs-service",
        &format!("--broker={}", broker.uri()),
        "--relay",
    ])
    .unwrap();
    let server = jobs_mock::server::Server::start(&args, Arc::new(|_: &str| {})).unwrap();
    let transport = jobs_paho::PahoTransport::builder(&broker.uri(), "pump-07")
        .build()
        .unwrap();
    let client = Client::new(transport).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    assert!(jobs.list().unwrap().is_empty());
    server
        .simulator()
        .create_job(
            JobSpec::new(
                jobs_core::JobId::new("calibrate").unwrap(),
                jobs_core::Document::from_json(r#"{"op":"calibrate"}"#).unwrap(),
            )
            .thing(jobs_core::ThingName::new("pump-07").unwrap()),
        )
        .unwrap();
    let mut job = jobs.start_next().unwrap().unwrap();
    job.update(JobStatus::Succeeded, None).unwrap();
    let report = broker.quota_report().unwrap();
    assert_eq!(report.total().discarded(), 0);
    assert!(report.client("pump-07").published >= 3);
}

//! The MockBroker's AWS mode: implicit Jobs replies through the relay, and AWS IoT Core's
//! quotas (subscriptions, filters per SUBSCRIBE, publish rate, payload size), counted per
//! client, with the service exempt. Deterministic: the rate windows run on a manual clock.

#![allow(clippy::unwrap_used, reason = "a panic fails the test")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{
    Client, ConnectionEvent, JobStatus, Jobs, MessageSink, MqttTransport, QoS, SubscribeOutcome,
    TransportError,
};
use jobs_mock::aws::{AwsSettings, QuotaClock, QuotaReaction, relay};
use jobs_mock::service::{Clock, JobsService, Simulator, SimulatorMode};
use jobs_mock::{MockBroker, MockTransport, Script};
use parking_lot::Mutex;

const GET: &str = "$aws/things/pump-07/jobs/get";
const GET_ACCEPTED: &str = "$aws/things/pump-07/jobs/get/accepted";

#[derive(Default)]
struct Recorder {
    messages: Mutex<Vec<(String, Vec<u8>)>>,
    events: Mutex<Vec<ConnectionEvent>>,
}

impl MessageSink for Recorder {
    fn message(&self, topic: &str, payload: &[u8]) {
        self.messages
            .lock()
            .push((topic.to_owned(), payload.to_vec()));
    }
    fn connection(&self, event: ConnectionEvent) {
        self.events.lock().push(event);
    }
}

impl Recorder {
    fn topics(&self) -> Vec<String> {
        self.messages
            .lock()
            .iter()
            .map(|(t, _)| t.clone())
            .collect()
    }

    fn lost(&self) -> bool {
        self.events
            .lock()
            .iter()
            .any(|e| matches!(e, ConnectionEvent::ConnectionLost))
    }
}

fn soon() -> Instant {
    Instant::now() + Duration::from_secs(10)
}

fn client(broker: &MockBroker, id: &str, filters: &[&str]) -> (MockTransport, Arc<Recorder>) {
    let transport = broker.connect(id);
    let recorder = Arc::new(Recorder::default());
    transport
        .set_sink(Arc::clone(&recorder) as Arc<dyn MessageSink>)
        .unwrap();
    if !filters.is_empty() {
        let outcomes = transport
            .subscribe(filters, QoS::AtLeastOnce, soon())
            .unwrap();
        assert!(!outcomes.contains(&SubscribeOutcome::Refused));
    }
    (transport, recorder)
}

/// An AWS-mode broker with a manual rate clock and the inline relay simulator.
fn aws_broker(settings: AwsSettings) -> (MockBroker, QuotaClock, Simulator) {
    let clock = QuotaClock::manual();
    let broker = MockBroker::with_aws(settings.clock(clock.clone()));
    let simulator = Simulator::start_inline_with(
        broker.connect("jobs-service"),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
        SimulatorMode::Relay,
    )
    .unwrap();
    (broker, clock, simulator)
}

fn filters(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("quota/filter/{i}")).collect()
}

fn subscribe(transport: &MockTransport, filters: &[String]) -> Result<Vec<bool>, TransportError> {
    let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
    Ok(transport
        .subscribe(&filters, QoS::AtLeastOnce, soon())?
        .into_iter()
        .map(|o| o != SubscribeOutcome::Refused)
        .collect())
}

#[test]
fn implicit_replies_reach_the_requester_alone_whether_or_not_it_subscribed() {
    let (broker, _clock, _simulator) = aws_broker(AwsSettings::default());
    let (requester, mine) = client(&broker, "pump-07", &[]);
    let (_other, theirs) = client(&broker, "pump-07-spy", &["$aws/things/+/jobs/+/accepted"]);
    let (_wild, wildcard) = client(&broker, "wildcard-spy", &["$aws/things/pump-07/jobs/#"]);

    requester
        .publish(GET, br#"{"clientToken":"t1"}"#, QoS::AtLeastOnce, soon())
        .unwrap();
    assert_eq!(mine.topics(), [GET_ACCEPTED]);
    assert!(theirs.topics().is_empty());
    assert!(
        wildcard.topics().is_empty(),
        "the request itself is not routed either"
    );

    // Subscribed to its own reply: still exactly one copy.
    requester
        .subscribe(&[GET_ACCEPTED], QoS::AtLeastOnce, soon())
        .unwrap();
    requester
        .publish(GET, br#"{"clientToken":"t2"}"#, QoS::AtLeastOnce, soon())
        .unwrap();
    assert_eq!(mine.topics(), [GET_ACCEPTED, GET_ACCEPTED]);
    assert!(theirs.topics().is_empty());
    // Recorded: the requests as the device's, the deliveries as the broker's.
    assert!(
        broker
            .published_on(GET)
            .iter()
            .all(|p| p.client == "pump-07")
    );
    let replies = broker.published_on(GET_ACCEPTED);
    assert_eq!(replies.len(), 2);
    assert!(replies.iter().all(|p| p.client == jobs_mock::BROKER_CLIENT));
    let relayed = relay::reply_topic("pump-07", GET_ACCEPTED);
    assert_eq!(broker.published_on(&relayed)[0].client, "jobs-service");
}

#[test]
fn portable_mode_routes_replies_by_subscription_as_before() {
    let broker = MockBroker::new();
    let _simulator = Simulator::start_inline(
        broker.connect("jobs-service"),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )
    .unwrap();
    let (requester, mine) = client(&broker, "pump-07", &[]);
    let (_spy, theirs) = client(&broker, "spy", &["$aws/things/+/jobs/+/accepted"]);
    requester
        .publish(GET, b"{}", QoS::AtLeastOnce, soon())
        .unwrap();
    assert!(mine.topics().is_empty());
    assert_eq!(theirs.topics(), [GET_ACCEPTED]);
    assert_eq!(broker.quota_report().clients.len(), 0);
    // Nine filters in one SUBSCRIBE are fine without AWS mode.
    assert_eq!(subscribe(&requester, &filters(9)).unwrap(), [true; 9]);
}

#[test]
fn scripted_replies_reach_the_requesting_connection_alone_in_aws_mode() {
    let broker = MockBroker::aws();
    broker.script(GET, Script::accept(serde_json::json!({"queuedJobs": []})));
    broker.script(
        "$aws/things/pump-07/jobs/start-next",
        Script::accept(serde_json::json!({})).held(),
    );
    let (requester, mine) = client(&broker, "pump-07", &[]);
    let (_spy, theirs) = client(&broker, "spy", &["$aws/things/+/jobs/#"]);
    requester
        .publish(GET, b"{}", QoS::AtLeastOnce, soon())
        .unwrap();
    requester
        .publish(
            "$aws/things/pump-07/jobs/start-next",
            b"{}",
            QoS::AtLeastOnce,
            soon(),
        )
        .unwrap();
    assert_eq!(mine.topics(), [GET_ACCEPTED]);
    assert_eq!(broker.release_held(), 1);
    assert_eq!(
        mine.topics(),
        [GET_ACCEPTED, "$aws/things/pump-07/jobs/start-next/accepted"]
    );
    assert!(theirs.topics().is_empty());
}

#[test]
fn the_jobs_api_works_end_to_end_behind_the_relay() {
    let broker = MockBroker::aws();
    let simulator = Simulator::start_with(
        Arc::new(broker.connect("jobs-service")),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
        SimulatorMode::Relay,
    )
    .unwrap();
    let client = Client::new(broker.connect("pump-07")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    simulator
        .create_job(
            jobs_mock::service::JobSpec::new(
                jobs_core::JobId::new("calibrate").unwrap(),
                jobs_core::Document::from_json(r#"{"op":"calibrate"}"#).unwrap(),
            )
            .thing(jobs_core::ThingName::new("pump-07").unwrap()),
        )
        .unwrap();
    let mut job = jobs.start_next().unwrap().unwrap();
    job.update(JobStatus::Succeeded, None).unwrap();
    let report = broker.quota_report();
    assert_eq!(report.total().discarded(), 0);
    assert!(report.client("pump-07").published >= 2);
    assert!(!report.clients.contains_key("jobs-service"), "exempt");
}

#[test]
fn the_51st_subscription_is_refused_and_the_connection_kept_by_default() {
    let broker = MockBroker::aws();
    let (transport, recorder) = client(&broker, "gateway", &[]);
    let all = filters(51);
    for chunk in all[..48].chunks(8) {
        assert!(subscribe(&transport, chunk).unwrap().iter().all(|&g| g));
    }
    // Two new filters and one held one in a packet at 48: the held one is no new subscription.
    let packet = [all[48].clone(), all[0].clone(), all[49].clone()];
    assert_eq!(subscribe(&transport, &packet).unwrap(), [true, true, true]);
    assert_eq!(subscribe(&transport, &all[50..]).unwrap(), [false]);
    let counters = broker.quota_report().client("gateway");
    assert_eq!(counters.subscriptions, 50);
    assert_eq!(counters.subscribe_granted, 51);
    assert_eq!(counters.subscribe_refused, 1);
    assert!(!recorder.lost());
    // UNSUBSCRIBE frees one.
    transport.unsubscribe(&[&all[0]], soon()).unwrap();
    assert_eq!(subscribe(&transport, &all[50..]).unwrap(), [true]);
    assert_eq!(broker.subscriptions("gateway").len(), 50);
}

#[test]
fn a_subscription_overrun_can_close_the_connection_after_or_instead_of_the_suback() {
    let broker = MockBroker::with_aws(
        AwsSettings::default()
            .max_subscriptions(2)
            .subscription_overrun(QuotaReaction::RefuseAndDisconnect),
    );
    let (transport, recorder) = client(&broker, "a", &[]);
    assert_eq!(
        subscribe(&transport, &filters(3)).unwrap(),
        [true, true, false]
    );
    assert!(recorder.lost());
    assert_eq!(broker.quota_report().client("a").disconnected, 1);

    let broker = MockBroker::with_aws(
        AwsSettings::default()
            .max_subscriptions(2)
            .subscription_overrun(QuotaReaction::Disconnect),
    );
    let (transport, recorder) = client(&broker, "b", &[]);
    assert!(matches!(
        subscribe(&transport, &filters(3)),
        Err(TransportError::ConnectionLost)
    ));
    assert!(recorder.lost());
    // The filters before the overrun were applied, as mosquitto applies them.
    assert_eq!(broker.subscriptions("b").len(), 2);
}

#[test]
fn more_than_8_filters_in_one_subscribe_close_the_connection_without_suback() {
    let broker = MockBroker::aws();
    let (transport, recorder) = client(&broker, "gateway", &[]);
    assert_eq!(subscribe(&transport, &filters(8)).unwrap(), [true; 8]);
    assert!(matches!(
        subscribe(&transport, &filters(9)),
        Err(TransportError::ConnectionLost)
    ));
    assert!(recorder.lost());
    let counters = broker.quota_report().client("gateway");
    assert_eq!((counters.subscribe_refused, counters.disconnected), (9, 1));
    assert_eq!(
        broker.subscriptions("gateway").len(),
        8,
        "nothing of it applied"
    );

    // The same for UNSUBSCRIBE (after the test reconnects the client).
    broker.restore_connection("gateway", true);
    let nine = filters(9);
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    assert!(matches!(
        transport.unsubscribe(&nine, soon()),
        Err(TransportError::ConnectionLost)
    ));
}

#[test]
fn too_many_filters_can_be_refused_with_the_connection_kept() {
    let broker =
        MockBroker::with_aws(AwsSettings::default().filters_overrun(QuotaReaction::Refuse));
    let (transport, recorder) = client(&broker, "gateway", &[]);
    assert_eq!(subscribe(&transport, &filters(9)).unwrap(), [false; 9]);
    assert!(!recorder.lost());
    assert!(broker.subscriptions("gateway").is_empty());
    let nine = filters(9);
    let nine: Vec<&str> = nine.iter().map(String::as_str).collect();
    transport.unsubscribe(&nine, soon()).unwrap();
}

#[test]
fn a_burst_beyond_the_rate_is_discarded_without_puback_and_counted() {
    let (broker, clock, _simulator) = aws_broker(AwsSettings::default());
    let (publisher, _) = client(&broker, "burst", &[]);
    for _ in 0..100 {
        publisher
            .publish("telemetry", b"x", QoS::AtMostOnce, soon())
            .unwrap();
    }
    // QoS 0 beyond the rate: accepted by the client, discarded by the broker.
    publisher
        .publish("telemetry", b"x", QoS::AtMostOnce, soon())
        .unwrap();
    // QoS 1 beyond the rate: no PUBACK, so the call times out at its deadline.
    let started = Instant::now();
    let result = publisher.publish(
        "telemetry",
        b"x",
        QoS::AtLeastOnce,
        Instant::now() + Duration::from_millis(20),
    );
    assert!(matches!(result, Err(TransportError::Timeout)));
    assert!(started.elapsed() >= Duration::from_millis(20));
    let counters = broker.quota_report().client("burst");
    assert_eq!((counters.published, counters.discarded_inbound), (100, 2));
    assert_eq!(
        broker.published_on("telemetry").len(),
        100,
        "discards are not recorded"
    );

    // The window slides: 999 ms later still full, at 1 s the first 100 have left it.
    clock.advance(Duration::from_millis(999));
    publisher
        .publish("telemetry", b"x", QoS::AtMostOnce, soon())
        .unwrap();
    assert_eq!(broker.quota_report().client("burst").discarded_inbound, 3);
    clock.advance(Duration::from_millis(1));
    publisher
        .publish("telemetry", b"x", QoS::AtLeastOnce, soon())
        .unwrap();
    assert_eq!(broker.quota_report().client("burst").published, 101);
}

#[test]
fn outbound_messages_share_the_window_and_beyond_it_are_not_delivered() {
    let (broker, _clock, _simulator) = aws_broker(AwsSettings::default());
    let (listener, received) = client(&broker, "listener", &["news"]);
    let (publisher, _) = client(&broker, "publisher", &[]);
    for _ in 0..60 {
        listener
            .publish("elsewhere", b"x", QoS::AtMostOnce, soon())
            .unwrap();
    }
    for _ in 0..50 {
        publisher
            .publish("news", b"x", QoS::AtLeastOnce, soon())
            .unwrap();
    }
    assert_eq!(
        received.topics().len(),
        40,
        "60 in + 40 out fill the window"
    );
    let counters = broker.quota_report().client("listener");
    assert_eq!(
        (
            counters.published,
            counters.delivered,
            counters.discarded_outbound
        ),
        (60, 40, 10)
    );
    assert_eq!(broker.quota_report().client("publisher").discarded(), 0);
}

#[test]
fn a_connection_within_the_rate_loses_nothing() {
    let (broker, clock, _simulator) = aws_broker(AwsSettings::default());
    let (device, mine) = client(&broker, "pump-07", &[]);
    let (_listener, received) = client(&broker, "listener", &["telemetry"]);
    for second in 0..5 {
        // 50 requests with their 50 replies, and 50 telemetry messages to the listener.
        for i in 0..50 {
            let token = format!(r#"{{"clientToken":"s{second}-{i}"}}"#);
            device
                .publish(GET, token.as_bytes(), QoS::AtLeastOnce, soon())
                .unwrap();
        }
        for _ in 0..50 {
            broker.inject("telemetry", b"x");
        }
        clock.advance(Duration::from_secs(1));
    }
    assert_eq!(mine.topics().len(), 250);
    assert_eq!(received.topics().len(), 250);
    let report = broker.quota_report();
    assert_eq!(report.total().discarded(), 0);
    assert_eq!(report.client("pump-07").published, 250);
    assert_eq!(report.client("pump-07").delivered, 250);
}

#[test]
fn the_services_connection_is_exempt_but_what_it_sends_counts_for_the_receiver() {
    let (broker, _clock, simulator) = aws_broker(AwsSettings::default());
    let (_device, events) = client(&broker, "pump-07", &["$aws/things/pump-07/jobs/notify"]);
    for i in 0..150 {
        simulator
            .create_job(
                jobs_mock::service::JobSpec::new(
                    jobs_core::JobId::new(format!("job-{i}")).unwrap(),
                    jobs_core::Document::from_json("{}").unwrap(),
                )
                .thing(jobs_core::ThingName::new("pump-07").unwrap()),
            )
            .unwrap();
    }
    assert_eq!(events.topics().len(), 100);
    let report = broker.quota_report();
    assert!(!report.clients.contains_key("jobs-service"));
    assert_eq!(report.client("pump-07").discarded_outbound, 50);
}

#[test]
fn payloads_over_128_kib_close_the_connection() {
    let broker = MockBroker::aws();
    let (listener, received) = client(&broker, "listener", &["big"]);
    let (publisher, recorder) = client(&broker, "publisher", &[]);
    publisher
        .publish("big", &vec![0; 131_072], QoS::AtLeastOnce, soon())
        .unwrap();
    assert_eq!(received.topics().len(), 1);
    assert!(matches!(
        publisher.publish("big", &vec![0; 131_073], QoS::AtLeastOnce, soon()),
        Err(TransportError::ConnectionLost)
    ));
    assert!(recorder.lost());
    assert_eq!(received.topics().len(), 1);
    let counters = broker.quota_report().client("publisher");
    assert_eq!((counters.oversized, counters.disconnected), (1, 1));
    drop(listener);

    let broker = MockBroker::with_aws(
        AwsSettings::default()
            .max_payload(10)
            .payload_overrun(QuotaReaction::Refuse),
    );
    let (publisher, recorder) = client(&broker, "publisher", &[]);
    let deadline = Instant::now() + Duration::from_millis(20);
    assert!(matches!(
        publisher.publish("big", &[0; 11], QoS::AtLeastOnce, deadline),
        Err(TransportError::Timeout)
    ));
    assert!(!recorder.lost());
}

#[test]
fn a_second_connect_with_the_same_client_id_closes_the_first() {
    let broker = MockBroker::aws();
    let (first, first_sink) = client(&broker, "pump-07", &[]);
    let (second, _) = client(&broker, "pump-07", &[]);
    assert!(first_sink.lost());
    assert!(matches!(
        first.publish("x", b"", QoS::AtLeastOnce, soon()),
        Err(TransportError::NotConnected)
    ));
    second.publish("x", b"", QoS::AtLeastOnce, soon()).unwrap();
    // Counted per client ID, across its connections.
    assert_eq!(broker.quota_report().client("pump-07").published, 1);
}

#[test]
fn the_relay_and_the_services_topics_are_the_services_alone() {
    let (broker, _clock, _simulator) = aws_broker(AwsSettings::default());
    let (device, _) = client(&broker, "pump-07", &[]);
    let (_spy, seen) = client(&broker, "spy", &["$aws/things/+/jobs/#"]);
    assert_eq!(
        subscribe(
            &device,
            &[relay::REQUEST_FILTER.to_owned(), "$jobs-emulator/#".into()]
        )
        .unwrap(),
        [false, false]
    );
    // Replies, events and relay topics published by a device reach nobody.
    for topic in [
        GET_ACCEPTED,
        "$aws/things/pump-07/jobs/notify-next",
        &relay::reply_topic("spy", GET_ACCEPTED),
    ] {
        device
            .publish(topic, b"{}", QoS::AtLeastOnce, soon())
            .unwrap();
    }
    assert!(seen.topics().is_empty());
    let counters = broker.quota_report().client("pump-07");
    assert_eq!(counters.denied, 5);
    assert!(broker.inject_to("spy", GET_ACCEPTED, b"{}"));
    assert_eq!(seen.topics(), [GET_ACCEPTED]);
    assert!(!broker.inject_to("nobody", GET_ACCEPTED, b"{}"));
}

#[test]
fn implicit_replies_can_be_turned_off_keeping_the_quotas() {
    let broker = MockBroker::with_aws(AwsSettings::default().implicit_replies(false));
    let _simulator = Simulator::start_inline(
        broker.connect("jobs-service"),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )
    .unwrap();
    let (requester, mine) = client(&broker, "pump-07", &[GET_ACCEPTED]);
    requester
        .publish(GET, b"{}", QoS::AtLeastOnce, soon())
        .unwrap();
    assert_eq!(mine.topics(), [GET_ACCEPTED]);
    assert_eq!(broker.quota_report().client("pump-07").delivered, 1);
}

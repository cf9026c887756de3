//! The [`Simulator`] driver on the [`MockBroker`]: subscription, hand-off to the worker, reply
//! order, control calls publishing before they return, faults, shutdown.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

mod common;

use jobs_core::Timestamp;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use crossbeam_channel::{Receiver, Sender};
use jobs_core::model::{JobExecutionsChanged, PendingJobs};
use jobs_core::{Client, Jobs};
use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS, TransportError};
use jobs_mock::service::{Clock, JobsService, REQUEST_FILTERS, Simulator, SimulatorError};
use jobs_mock::{MockBroker, MockTransport};

/// Bound for every wait in these tests.
const WAIT: Duration = Duration::from_secs(5);

const SERVICE: &str = "jobs-service";

/// A bare device connection that records what it receives.
struct Recorder {
    tx: Sender<(String, Vec<u8>)>,
}

impl MessageSink for Recorder {
    fn message(&self, topic: &str, payload: &[u8]) {
        let _ = self.tx.send((topic.to_owned(), payload.to_vec()));
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

fn recorder(
    broker: &MockBroker,
    client: &str,
    filters: &[&str],
) -> (MockTransport, Receiver<(String, Vec<u8>)>) {
    let transport = broker.connect(client);
    let (tx, rx) = crossbeam_channel::unbounded();
    transport.set_sink(Arc::new(Recorder { tx })).unwrap();
    transport
        .subscribe(
            filters,
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    (transport, rx)
}

fn start(broker: &MockBroker) -> Simulator {
    Simulator::start(Arc::new(broker.connect(SERVICE)), service()).unwrap()
}

#[test]
fn start_subscribes_once_to_the_four_request_filters() {
    let broker = MockBroker::new();
    let _simulator = start(&broker);
    let requests = broker.subscribe_requests();
    assert_eq!(requests.len(), 1);
    assert_eq!(requests[0].client, SERVICE);
    assert_eq!(requests[0].filters, REQUEST_FILTERS);
    assert!(broker.published().is_empty(), "nothing published at start");
}

#[test]
fn start_fails_when_the_broker_refuses_a_request_filter() {
    let broker = MockBroker::new();
    broker.refuse_subscriptions("$aws/things/+/jobs/+/update");
    let error = Simulator::start(Arc::new(broker.connect(SERVICE)), service()).unwrap_err();
    assert!(matches!(
        error,
        SimulatorError::Subscribe(TransportError::SubscriptionRefused { ref filter })
            if filter == "$aws/things/+/jobs/+/update"
    ));
}

#[test]
fn start_fails_when_the_transport_is_offline() {
    let broker = MockBroker::new();
    let transport = broker.connect(SERVICE);
    broker.drop_connection(SERVICE);
    let error = Simulator::start(Arc::new(transport), service()).unwrap_err();
    assert!(matches!(
        error,
        SimulatorError::Subscribe(TransportError::NotConnected)
    ));
}

#[test]
fn create_job_has_published_the_notify_when_it_returns() {
    let broker = MockBroker::new();
    let simulator = start(&broker);
    let (_device, rx) = recorder(&broker, "pump-07", &["$aws/things/pump-07/jobs/notify"]);
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    let (topic, payload) = rx.try_recv().expect("delivered before create_job returned");
    assert_eq!(topic, "$aws/things/pump-07/jobs/notify");
    let event: JobExecutionsChanged = serde_json::from_slice(&payload).unwrap();
    assert_eq!(ids(&event.jobs.queued), ["a"]);
}

#[test]
fn replies_are_published_in_the_order_the_requests_arrived() {
    let broker = MockBroker::new();
    let _simulator = start(&broker);
    let (device, rx) = recorder(&broker, "pump-07", &["$aws/things/pump-07/jobs/get/+"]);
    let tokens: Vec<String> = (0..50).map(|n| format!("t-{n:02}")).collect();
    for token in &tokens {
        let payload = serde_json::json!({ "clientToken": token }).to_string();
        device
            .publish(
                "$aws/things/pump-07/jobs/get",
                payload.as_bytes(),
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
    }
    let received: Vec<String> = (0..tokens.len())
        .map(|_| {
            let (topic, payload) = rx.recv_timeout(WAIT).expect("a reply within the bound");
            assert_eq!(topic, "$aws/things/pump-07/jobs/get/accepted");
            let reply: PendingJobs = serde_json::from_slice(&payload).unwrap();
            reply.client_token.unwrap()
        })
        .collect();
    assert_eq!(received, tokens);
}

/// A transport that records the QoS of every subscribe and publish, then forwards.
struct QosSpy {
    inner: MockTransport,
    seen: parking_lot::Mutex<Vec<(&'static str, QoS)>>,
}

impl MqttTransport for QosSpy {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        self.inner.set_sink(sink)
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<jobs_core::SubscribeOutcome>, TransportError> {
        self.seen.lock().push(("subscribe", qos));
        self.inner.subscribe(filters, qos, deadline)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        self.inner.unsubscribe(filters, deadline)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        self.seen.lock().push(("publish", qos));
        self.inner.publish(topic, payload, qos, deadline)
    }
}

#[test]
fn the_simulator_subscribes_and_publishes_replies_and_events_with_qos_1() {
    let broker = MockBroker::new();
    let spy = Arc::new(QosSpy {
        inner: broker.connect(SERVICE),
        seen: parking_lot::Mutex::new(Vec::new()),
    });
    let simulator =
        Simulator::start(Arc::clone(&spy) as Arc<dyn MqttTransport>, service()).unwrap();
    let client = Client::new(broker.connect("pump-07")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    assert_eq!(jobs.list().unwrap().len(), 1);
    let replies = broker.published_on("$aws/things/pump-07/jobs/get/accepted");
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].client, SERVICE);
    let seen = spy.seen.lock().clone();
    assert_eq!(
        seen,
        [
            ("subscribe", QoS::AtLeastOnce),
            ("publish", QoS::AtLeastOnce),
            ("publish", QoS::AtLeastOnce),
            ("publish", QoS::AtLeastOnce),
        ],
        "subscribe, notify, notify-next, reply"
    );
}

#[test]
fn a_failed_publish_is_survived_and_later_requests_are_answered() {
    let broker = MockBroker::new();
    let _simulator = start(&broker);
    let client = Client::new(broker.connect("pump-07")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    broker.fail_next_publish(SERVICE, TransportError::Timeout);
    let error = jobs
        .with_timeout(Duration::from_millis(50))
        .list()
        .unwrap_err();
    assert!(error.is_timeout(), "the reply was lost: {error:?}");
    assert!(jobs.list().unwrap().is_empty(), "the worker carries on");
}

#[test]
fn a_dropped_simulator_stops_answering() {
    let broker = MockBroker::new();
    let simulator = start(&broker);
    let client = Client::new(broker.connect("pump-07")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    assert!(jobs.list().is_ok());
    drop(simulator);
    let error = jobs
        .with_timeout(Duration::from_millis(50))
        .list()
        .unwrap_err();
    assert!(error.is_timeout());
}

#[test]
fn the_simulator_resubscribes_after_a_reconnect_without_session() {
    let broker = MockBroker::new();
    let _simulator = start(&broker);
    broker.drop_connection(SERVICE);
    // Without a resumed session the broker forgets the subscriptions.
    broker.restore_connection(SERVICE, false);
    // The worker re-subscribes on its own thread; wait for it, bounded, without sleeping.
    assert!(
        broker.wait_for_subscriptions(SERVICE, REQUEST_FILTERS.len(), WAIT),
        "no re-subscription within {WAIT:?}"
    );
    let client = Client::new(broker.connect("pump-07")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    assert!(jobs.list().unwrap().is_empty());
}

#[test]
fn a_simulator_on_the_system_clock_answers_with_current_timestamps() {
    let broker = MockBroker::new();
    let service = JobsService::new(Clock::system());
    let simulator = Simulator::start(Arc::new(broker.connect(SERVICE)), service).unwrap();
    let before = simulator.now();
    let (device, rx) = recorder(&broker, "pump-07", &["$aws/things/pump-07/jobs/get/+"]);
    device
        .publish(
            "$aws/things/pump-07/jobs/get",
            b"{}",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let (_, payload) = rx.recv_timeout(WAIT).unwrap();
    let reply: PendingJobs = serde_json::from_slice(&payload).unwrap();
    let timestamp = reply.timestamp.unwrap();
    assert!(timestamp >= Timestamp::new(before) && timestamp <= Timestamp::new(simulator.now()));
}

#[test]
fn control_calls_report_their_errors_and_state_reads_see_the_service() {
    let broker = MockBroker::new();
    let simulator = start(&broker);
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    assert!(simulator.create_job(spec("a", &["pump-07"])).is_err());
    assert!(simulator.cancel_job(&job("zzz")).is_err());
    assert!(
        simulator
            .remove_thing(&job("a"), &thing("pump-08"))
            .is_err()
    );
    simulator.advance_clock(Duration::from_secs(60));
    assert_eq!(simulator.now(), T0 + 60);
    assert_eq!(simulator.executions().len(), 1);
    assert!(simulator.execution(&thing("pump-07"), &job("a")).is_some());
}

#[test]
fn an_inline_simulator_answers_before_the_publish_returns() {
    let broker = MockBroker::new();
    let simulator = Simulator::start_inline(broker.connect(SERVICE), service()).unwrap();
    let (device, rx) = recorder(&broker, "device", &["$aws/things/pump-07/jobs/get/+"]);
    device
        .publish(
            "$aws/things/pump-07/jobs/get",
            br#"{"clientToken":"t1"}"#,
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let (topic, payload) = rx.try_recv().expect("answered synchronously");
    assert_eq!(topic, "$aws/things/pump-07/jobs/get/accepted");
    let pending: PendingJobs = serde_json::from_slice(&payload).unwrap();
    assert_eq!(pending.client_token.as_deref(), Some("t1"));

    drop(simulator);
    device
        .publish(
            "$aws/things/pump-07/jobs/get",
            b"{}",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    assert!(
        rx.try_recv().is_err(),
        "a dropped simulator answers nothing"
    );
}

#[test]
fn an_inline_simulator_serves_jobs_core_calls_from_many_threads() {
    let broker = MockBroker::new();
    let _simulator = Simulator::start_inline(broker.connect(SERVICE), service()).unwrap();
    let client = Client::new(broker.connect("device")).unwrap();
    let jobs = Jobs::new(&client, "pump-07").unwrap();
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| {
                for _ in 0..50 {
                    assert!(jobs.list().unwrap().is_empty());
                }
            });
        }
    });
}

#[test]
fn on_a_scaled_clock_a_paced_rollout_queues_the_next_minutes_things_a_minute_of_clock_later() {
    let broker = MockBroker::new();
    let factor = std::num::NonZeroU32::new(600).unwrap();
    let service = JobsService::new(Clock::scaled(factor));
    let simulator = Simulator::start(Arc::new(broker.connect(SERVICE)), service).unwrap();
    for name in ["pump-01", "pump-02", "pump-03"] {
        simulator
            .call_json(
                jobs_mock::service::api::Operation::CreateThing,
                serde_json::json!({"thingName": name}),
            )
            .unwrap();
    }
    let (_device, rx) = recorder(
        &broker,
        "pump-03",
        &["$aws/things/pump-03/jobs/notify-next"],
    );
    let arn = |name: &str| format!("arn:aws:iot:us-east-1:123456789012:thing/{name}");
    let started = std::time::Instant::now();
    simulator
        .call_json(
            jobs_mock::service::api::Operation::CreateJob,
            serde_json::json!({"jobId": "fw", "document": "{}",
                "targets": [arn("pump-01"), arn("pump-02"), arn("pump-03")],
                "jobExecutionsRolloutConfig": {"maximumPerMinute": 2}}),
        )
        .unwrap();
    assert!(
        simulator.execution(&thing("pump-03"), &job("fw")).is_none(),
        "it waits"
    );
    // The worker queues pump-03's execution when the second minute of the clock begins.
    let (topic, _) = rx.recv_timeout(WAIT).unwrap();
    let elapsed = started.elapsed();
    assert!(topic.ends_with("/notify-next"));
    assert!(simulator.execution(&thing("pump-03"), &job("fw")).is_some());
    // 60 s / 600 = 100 ms of real time; never before it.
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
}

#[test]
fn on_a_scaled_clock_a_one_minute_step_timer_fires_well_under_a_second_later() {
    let broker = MockBroker::new();
    let factor = std::num::NonZeroU32::new(600).unwrap();
    let service = JobsService::new(Clock::scaled(factor));
    let simulator = Simulator::start(Arc::new(broker.connect(SERVICE)), service).unwrap();
    simulator.create_job(spec("a", &["pump-07"])).unwrap();
    let (device, rx) = recorder(
        &broker,
        "pump-07",
        &[
            "$aws/things/pump-07/jobs/start-next/accepted",
            "$aws/things/pump-07/jobs/notify",
        ],
    );
    let started = std::time::Instant::now();
    device
        .publish(
            "$aws/things/pump-07/jobs/start-next",
            br#"{"stepTimeoutInMinutes":1}"#,
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
    let (topic, _) = rx.recv_timeout(WAIT).unwrap();
    assert!(topic.ends_with("start-next/accepted"));
    let (topic, payload) = rx.recv_timeout(WAIT).unwrap();
    let elapsed = started.elapsed();
    assert!(topic.ends_with("/notify"));
    let notify: JobExecutionsChanged = serde_json::from_slice(&payload).unwrap();
    assert!(notify.jobs.in_progress.is_empty() && notify.jobs.queued.is_empty());
    let state = simulator.execution(&thing("pump-07"), &job("a")).unwrap();
    assert_eq!(state.status, jobs_core::JobStatus::TimedOut);
    // 60 s / 600 = 100 ms of real time; never before it.
    assert!(elapsed >= Duration::from_millis(100), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

#[test]
fn simulator_control_operations_publish_their_events_before_returning() {
    let broker = MockBroker::new();
    let simulator = start(&broker);
    let (_device, rx) = recorder(&broker, "pump-07", &["$aws/things/pump-07/jobs/notify"]);
    simulator
        .call_json(
            jobs_mock::service::api::Operation::CreateThing,
            serde_json::json!({"thingName": "pump-07"}),
        )
        .unwrap();
    let created = simulator.call_json(
        jobs_mock::service::api::Operation::CreateJob,
        serde_json::json!({"jobId": "a", "document": "{}",
                           "targets": ["arn:aws:iot:us-east-1:123456789012:thing/pump-07"]}),
    );
    assert_eq!(created.unwrap()["jobId"], "a");
    assert!(rx.try_recv().is_ok(), "the notify was published");
    let error = simulator
        .call(jobs_mock::service::api::DescribeJob::new(job("zzz")))
        .unwrap_err();
    assert_eq!(
        error.kind,
        jobs_mock::service::ApiErrorKind::ResourceNotFound
    );
    simulator.forget_thing(&thing("pump-07"));
    assert!(simulator.executions().is_empty());
    simulator.forget_everything();
    assert!(rx.try_recv().is_err(), "forgetting sends nothing");
}

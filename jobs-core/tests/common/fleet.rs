//! A fleet of one thing for the runner's tests: the Jobs simulator on the in-memory broker, the
//! thing's client and `Jobs`, and a spy that ticks on every message of the thing.

use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use jobs_core::runner::{Runner, StopHandle};
use jobs_core::{
    Client, ConnectionEvent, Document, Error, JobId, JobStatus, Jobs, MessageSink, MqttTransport,
    QoS, StatusDetails, ThingName,
};
use jobs_mock::service::{Clock, ExecutionInfo, JobSpec, JobsService, Simulator};
use jobs_mock::{MockBroker, MockTransport};
use serde_json::json;

use super::THING;

pub(crate) const WAIT: Duration = Duration::from_secs(10);

pub(crate) struct Fleet {
    pub(crate) broker: MockBroker,
    pub(crate) simulator: Simulator,
    pub(crate) client: Client,
    pub(crate) jobs: Jobs,
    /// Ticks on every reply and event of the thing (a spy client subscribed to them all).
    pub(crate) traffic: Receiver<()>,
    _spy: MockTransport,
}

/// Signals every message it receives.
struct Spy(Sender<()>);

impl MessageSink for Spy {
    fn message(&self, _topic: &str, _payload: &[u8]) {
        let _ = self.0.send(());
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

pub(crate) fn fleet() -> Fleet {
    let broker = MockBroker::new();
    let simulator = Simulator::start(
        Arc::new(broker.connect("jobs-service")),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )
    .unwrap();
    let client = Client::new(broker.connect(THING)).unwrap();
    let jobs = Jobs::builder(&client, THING)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let (tx, traffic) = signal();
    let spy = broker.connect("spy");
    spy.set_sink(Arc::new(Spy(tx))).unwrap();
    spy.subscribe(
        &[&format!("$aws/things/{THING}/jobs/#")],
        QoS::AtLeastOnce,
        Instant::now() + WAIT,
    )
    .unwrap();
    Fleet {
        broker,
        simulator,
        client,
        jobs,
        traffic,
        _spy: spy,
    }
}

impl Fleet {
    pub(crate) fn create(&self, id: &str, document: serde_json::Value) {
        self.simulator
            .create_job(
                JobSpec::new(
                    JobId::new(id).unwrap(),
                    Document::from_serialize(&document).unwrap(),
                )
                .thing(ThingName::new(THING).unwrap()),
            )
            .unwrap();
    }

    pub(crate) fn status(&self, id: &str) -> JobStatus {
        self.simulator
            .execution(&ThingName::new(THING).unwrap(), &JobId::new(id).unwrap())
            .unwrap()
            .status
    }

    pub(crate) fn details(&self, id: &str) -> Option<StatusDetails> {
        self.simulator
            .execution(&ThingName::new(THING).unwrap(), &JobId::new(id).unwrap())
            .unwrap()
            .status_details
    }

    /// Replies of `kind` (`update/accepted`, …) the service published about `id`.
    pub(crate) fn replies(&self, id: &str, kind: &str) -> usize {
        self.broker
            .published_on(&format!("$aws/things/{THING}/jobs/{id}/{kind}"))
            .len()
    }

    /// Every execution of job `id` on the thing, by execution number.
    pub(crate) fn executions(&self, id: &str) -> Vec<ExecutionInfo> {
        let mut executions: Vec<ExecutionInfo> = self
            .simulator
            .executions()
            .into_iter()
            .filter(|e| e.thing_name.as_str() == THING && e.job_id.as_str() == id)
            .collect();
        executions.sort_by_key(|e| e.execution_number);
        executions
    }

    /// Terminal updates the device published for `id`.
    pub(crate) fn terminal_updates(&self, id: &str) -> usize {
        self.broker
            .published_on(&format!("$aws/things/{THING}/jobs/{id}/update"))
            .iter()
            .filter(|p| {
                let body: serde_json::Value = serde_json::from_slice(&p.payload).unwrap();
                body["status"] != json!("IN_PROGRESS")
            })
            .count()
    }
}

/// Runs `runner` on a thread; returns its stop handle and the thread.
pub(crate) fn start(runner: Runner) -> (StopHandle, JoinHandle<Result<(), Error>>) {
    let stop = runner.stop_handle();
    (stop, thread::spawn(move || runner.run()))
}

impl Fleet {
    /// Waits (bounded) until `condition` holds, checking again after every reply or event of
    /// the thing (each state change of the simulator publishes one).
    pub(crate) fn wait_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + WAIT;
        while !condition() {
            assert!(
                self.traffic.recv_deadline(deadline).is_ok(),
                "timed out waiting until {what}"
            );
        }
    }
}

pub(crate) fn signal<T>() -> (Sender<T>, Receiver<T>) {
    crossbeam_channel::unbounded()
}

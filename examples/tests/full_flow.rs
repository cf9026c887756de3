//! End to end over a real mosquitto (started by the test on a free port, killed by its pid):
//! the `jobs-service` program plays AWS IoT Jobs, `device` programs work through their jobs,
//! and the test reads the final state of every execution through the control topic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

mod common;

use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender};
use std::time::{Duration, Instant};

use common::{Program, WAIT, start_device, start_service};

use examples::service::{CONTROL_TOPIC, RESULT_TOPIC};
use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS};
use jobs_mock::local_broker::{LocalBroker, TestCertificates};
use jobs_paho::PahoTransport;
use serde_json::{Value, json};

const JOBS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.json");

/// The test's own connection to the control topic.
struct Control {
    transport: PahoTransport,
    replies: Receiver<Value>,
    next: u32,
}

struct ReplySink(Sender<Value>);

impl MessageSink for ReplySink {
    fn message(&self, _topic: &str, payload: &[u8]) {
        if let Ok(reply) = serde_json::from_slice(payload) {
            let _ = self.0.send(reply);
        }
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

impl Control {
    fn connect(broker: &LocalBroker, name: &str) -> Self {
        let transport = PahoTransport::builder(&broker.uri(), name)
            .operation_timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let (tx, replies) = mpsc::channel();
        transport.set_sink(Arc::new(ReplySink(tx))).unwrap();
        transport
            .subscribe(
                &[RESULT_TOPIC],
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
        Self {
            transport,
            replies,
            next: 0,
        }
    }

    /// Sends a request for `operation` and waits for the reply carrying its `requestId`.
    fn request(&mut self, operation: &str, input: Value) -> Value {
        self.next += 1;
        let id = format!("test-{}", self.next);
        let request = json!({"operation": operation, "requestId": id, "input": input});
        self.transport
            .publish(
                CONTROL_TOPIC,
                request.to_string().as_bytes(),
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = self
                .replies
                .recv_timeout(left)
                .unwrap_or_else(|e| panic!("no reply to {request} ({e:?})"));
            if reply["requestId"] == id.as_str() {
                return reply;
            }
        }
    }

    /// Every execution on `things` as (thing, job, status), from ListJobExecutionsForThing.
    fn states(&mut self, things: &[&str]) -> Vec<(String, String, String)> {
        let mut states = Vec::new();
        for thing in things {
            let reply = self.request("ListJobExecutionsForThing", json!({"thingName": thing}));
            let summaries = reply["output"]["executionSummaries"]
                .as_array()
                .unwrap_or_else(|| panic!("{reply}"));
            states.extend(summaries.iter().map(|e| {
                (
                    (*thing).to_owned(),
                    e["jobId"].as_str().unwrap().to_owned(),
                    e["jobExecutionSummary"]["status"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                )
            }));
        }
        states
    }
}

const FLEET: [&str; 3] = ["pump-07", "pump-08", "valve-12"];

fn owned(states: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    states
        .iter()
        .map(|(t, j, s)| ((*t).to_owned(), (*j).to_owned(), (*s).to_owned()))
        .collect()
}

#[test]
fn jobs_from_the_file_end_succeeded_failed_or_rejected_on_devices_over_the_broker() {
    let broker = LocalBroker::start().unwrap();
    let mut service = start_service(&broker, &["--jobs", JOBS_FILE]);
    let mut control = Control::connect(&broker, "full-flow-file");
    assert!(
        control
            .states(&FLEET)
            .iter()
            .all(|(_, _, status)| status == "QUEUED")
    );

    // Three devices at once, each processing what is pending, then exiting.
    let mut devices: Vec<(&str, Program)> = ["pump-07", "pump-08", "valve-12"]
        .into_iter()
        .map(|thing| (thing, start_device(&broker, thing, &["--once"])))
        .collect();
    let mut done = Vec::new();
    for (thing, device) in &mut devices {
        let status = device.wait_exit();
        assert!(
            status.success(),
            "{thing}: {status}\n{}",
            device.output.join("\n")
        );
        let last = device.output.last().cloned().unwrap_or_default();
        done.push((*thing, last.split("done: ").nth(1).unwrap_or("").to_owned()));
    }
    assert_eq!(
        done,
        [
            ("pump-07", "2 succeeded, 0 failed, 0 rejected".to_owned()),
            ("pump-08", "1 succeeded, 1 failed, 0 rejected".to_owned()),
            ("valve-12", "2 succeeded, 0 failed, 1 rejected".to_owned()),
        ]
    );

    // Every execution reached the status its device reported: nothing lost.
    assert_eq!(
        control.states(&FLEET),
        owned(&[
            ("pump-07", "rotate-logs", "SUCCEEDED"),
            ("pump-07", "firmware-2-4", "SUCCEEDED"),
            ("pump-08", "rotate-logs", "SUCCEEDED"),
            ("pump-08", "firmware-2-4", "FAILED"),
            ("valve-12", "rotate-logs", "SUCCEEDED"),
            ("valve-12", "calibrate-flow", "SUCCEEDED"),
            ("valve-12", "quantum-upgrade", "REJECTED"),
        ])
    );

    // Closing its standard input stops the service cleanly; its log shows the outcomes.
    service.close_stdin();
    let status = service.wait_exit();
    assert!(status.success(), "{status}");
    let log = service.output.join("\n");
    assert!(
        log.contains("pump-08 firmware-2-4: ")
            && log.contains("-> FAILED (version 3; error=not enough flash for 2.4.0)"),
        "{log}"
    );
    assert!(log.contains("valve-12 quantum-upgrade: "), "{log}");
}

#[test]
fn a_job_created_through_the_control_topic_reaches_a_waiting_device() {
    let broker = LocalBroker::start().unwrap();
    let _service = start_service(&broker, &[]);
    let mut control = Control::connect(&broker, "full-flow-control");
    let mut device = start_device(&broker, "pump-07", &["--wait", "5"]);
    device.wait_for_line(|line| line.contains("waiting for jobs"));

    let create = json!({"jobId": "hotfix", "targets": ["pump-07"],
                        "document": r#"{"action":"rotate-logs","keep":2}"#});
    let reply = control.request("CreateJob", create.clone());
    assert_eq!(reply["output"]["jobId"], "hotfix", "{reply}");

    // The device hears the notify and works the job.
    device.wait_for_line(|line| line.contains("hotfix: SUCCEEDED"));
    let reply = control.request(
        "DescribeJobExecution",
        json!({"jobId": "hotfix", "thingName": "pump-07"}),
    );
    let execution = &reply["output"]["execution"];
    assert_eq!(execution["status"], "SUCCEEDED", "{reply}");
    assert_eq!(
        execution["statusDetails"],
        json!({"detailsMap": {"result": "kept 2 archives"}})
    );

    // The same job ID again is refused, with AWS's exception.
    let reply = control.request("CreateJob", create);
    assert_eq!(
        reply["error"]["__type"], "ResourceAlreadyExistsException",
        "{reply}"
    );
}

/// A temporary directory, removed on drop.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_device_connects_with_its_certificate_over_mutual_tls() {
    let dir = TempDir::new("full-flow-tls");
    let certs = TestCertificates::generate(&dir.0).unwrap();
    let broker = LocalBroker::start_with_tls(&certs).unwrap();
    let _service = start_service(&broker, &["--jobs", JOBS_FILE]);

    let uri = broker.tls_uri("localhost").unwrap();
    let path = |p: &std::path::Path| p.to_str().unwrap().to_owned();
    let (ca, cert, key) = (
        path(&certs.ca),
        path(&certs.device_cert),
        path(&certs.device_key),
    );
    let mut device = Program::start(
        env!("CARGO_BIN_EXE_device"),
        &[
            "--broker",
            &uri,
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "--alpn",
            "--thing",
            "pump-07",
            "--work-scale",
            "0",
            "--once",
        ],
    );
    let status = device.wait_exit();
    assert!(status.success(), "{status}\n{}", device.output.join("\n"));
    assert!(
        device
            .output
            .last()
            .is_some_and(|line| line.ends_with("done: 2 succeeded, 0 failed, 0 rejected")),
        "{}",
        device.output.join("\n")
    );
}

#[test]
fn the_agent_runs_its_handlers_reboots_mid_install_and_resumes_it() {
    use jobs_core::{Document, JobId, JobStatus, ThingName};
    use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator};

    let broker = LocalBroker::start().unwrap();
    let service = PahoTransport::builder(&broker.uri(), "agent-test-service")
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let simulator = Simulator::start(Arc::new(service), JobsService::new(Clock::system())).unwrap();
    let thing = ThingName::new("agent-07").unwrap();
    let documents = [
        ("rotate", json!({"operation": "rotate-logs", "keep": 3})),
        (
            "firmware",
            json!({"operation": "install-firmware", "version": "2.4.0"}),
        ),
        ("broken", json!({"operation": "fail"})),
        ("teleport", json!({"operation": "teleport"})),
    ];
    for (id, document) in &documents {
        simulator
            .create_job(
                JobSpec::new(
                    JobId::new(*id).unwrap(),
                    Document::from_serialize(document).unwrap(),
                )
                .thing(thing.clone()),
            )
            .unwrap();
    }
    let state = std::env::temp_dir().join(format!("agent-test-{}", std::process::id()));
    let uri = broker.uri();
    let mut agent = Program::start(
        env!("CARGO_BIN_EXE_agent"),
        &[
            "--broker",
            &uri,
            "--thing",
            thing.as_str(),
            "--state-dir",
            state.to_str().unwrap(),
            "--work-scale",
            "0",
            "--exit-after",
            "4",
        ],
    );
    assert!(agent.wait_exit().success(), "{}", agent.output.join("\n"));
    let _ = std::fs::remove_dir_all(&state);
    let status = |id: &str| {
        let execution = simulator
            .execution(&thing, &JobId::new(id).unwrap())
            .unwrap();
        (execution.status, execution.status_details)
    };
    let (rotate, details) = status("rotate");
    assert_eq!(rotate, JobStatus::Succeeded);
    assert_eq!(details.unwrap().get("kept"), Some("3"));
    let (firmware, details) = status("firmware");
    assert_eq!(firmware, JobStatus::Succeeded);
    assert_eq!(details.unwrap().get("version"), Some("2.4.0"));
    assert_eq!(status("broken").0, JobStatus::Failed);
    assert_eq!(status("teleport").0, JobStatus::Rejected);
    let output = agent.output.join("\n");
    assert!(output.contains("agent: rebooting"), "{output}");
    assert!(
        output.contains("firmware resumed after the reboot"),
        "{output}"
    );
}

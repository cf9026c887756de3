//! End to end over a real mosquitto (started by the test on a free port, killed by its pid):
//! the `jobs-service` emulator (in-process, as `jobs_mock::server::Server`) plays AWS IoT
//! Jobs, the `device` and `agent` programs work through their jobs, and the test reads the
//! final state of every execution from the emulator.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Program, start_device, start_service};

use jobs_core::{Document, JobId, JobStatus, ThingName};
use jobs_mock::local_broker::{LocalBroker, TestCertificates};
use jobs_mock::server::Server;
use jobs_mock::service::{JobSpec, Simulator};
use jobs_paho::PahoTransport;
use serde_json::json;

const JOBS_FILE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.json");

/// Every execution on `things` as (thing, job, status), in the emulator's order.
fn states(service: &Server, things: &[&str]) -> Vec<(String, String, String)> {
    service
        .simulator()
        .executions()
        .into_iter()
        .filter(|e| things.contains(&e.thing_name.as_str()))
        .map(|e| {
            (
                e.thing_name.to_string(),
                e.job_id.to_string(),
                e.status.to_string(),
            )
        })
        .collect()
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
    let (service, log) = start_service(&broker, &["--jobs", JOBS_FILE]);
    assert!(
        states(&service, &FLEET)
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
        states(&service, &FLEET),
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

    // Stopping the service flushes its change log, which shows the outcomes.
    drop(service);
    let log = log.lock().unwrap().join("\n");
    assert!(
        log.contains("pump-08 firmware-2-4: ")
            && log.contains("-> FAILED (version 3; error=not enough flash for 2.4.0)"),
        "{log}"
    );
    assert!(
        log.contains("valve-12 quantum-upgrade: QUEUED -> REJECTED (version 2; reason=unsupported operation \"teleport\""),
        "{log}"
    );
}

#[test]
fn a_job_created_while_the_device_waits_reaches_it_and_idle_lines_are_not_repeated() {
    let broker = LocalBroker::start().unwrap();
    let (service, _log) = start_service(&broker, &[]);
    let mut device = start_device(&broker, "pump-07", &["--wait", "5"]);
    device.wait_for_line(|line| line.contains("waiting for jobs"));

    service
        .simulator()
        .create_job(
            JobSpec::new(
                JobId::new("hotfix").unwrap(),
                Document::from_serialize(&json!({"operation": "rotate-logs", "keep": 2})).unwrap(),
            )
            .thing(ThingName::new("pump-07").unwrap()),
        )
        .unwrap();

    // The device hears the notify and works the job.
    device.wait_for_line(|line| line.contains("hotfix: SUCCEEDED"));
    let done = device.wait_for_line(|line| line.contains("waiting for jobs"));
    assert!(done.contains("1 succeeded"), "{done}");
    let execution = service
        .simulator()
        .execution(
            &ThingName::new("pump-07").unwrap(),
            &JobId::new("hotfix").unwrap(),
        )
        .unwrap();
    assert_eq!(execution.status, JobStatus::Succeeded);
    assert_eq!(
        execution.status_details.unwrap().get("result"),
        Some("kept 2 archives")
    );
    // The notifies that arrived while it worked wake it again, but a pass that changes
    // nothing prints nothing. A second job, worked after those wake-ups, bounds the check:
    // exactly three "waiting" lines (start, after each job); before the fix one more per
    // wake-up, with the same timestamp.
    service
        .simulator()
        .create_job(
            JobSpec::new(
                JobId::new("hotfix-2").unwrap(),
                Document::from_serialize(&json!({"operation": "rotate-logs", "keep": 3})).unwrap(),
            )
            .thing(ThingName::new("pump-07").unwrap()),
        )
        .unwrap();
    device.wait_for_line(|line| line.contains("waiting for jobs (2 succeeded"));
    let waiting = device
        .output
        .iter()
        .filter(|line| line.contains("waiting for jobs"))
        .count();
    assert_eq!(waiting, 3, "{}", device.output.join("\n"));
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
    let (_service, _log) = start_service(&broker, &["--jobs", JOBS_FILE]);

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
    use jobs_mock::service::{Clock, JobsService};

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
        ("old-style", json!({"action": "rotate-logs"})),
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
            "5",
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
    let (teleport, details) = status("teleport");
    assert_eq!(teleport, JobStatus::Rejected);
    assert!(
        details
            .unwrap()
            .get("reason")
            .is_some_and(|r| r.contains("unsupported operation \"teleport\"")),
    );
    assert_eq!(status("old-style").0, JobStatus::Rejected);
    let output = agent.output.join("\n");
    assert!(
        output.contains("teleport REJECTED: unsupported operation \"teleport\""),
        "{output}"
    );
    assert!(
        output.contains("old-style REJECTED: no \"operation\" field"),
        "{output}"
    );
    // Nothing is printed after "exiting" (before: an abandoned handler's "ended without a
    // report" line could follow it).
    assert!(
        agent.output.last().is_some_and(|l| l.ends_with("exiting")),
        "{output}"
    );
    assert!(output.contains("agent: rebooting"), "{output}");
    assert!(
        output.contains("firmware resumed after the reboot"),
        "{output}"
    );
}

#[test]
fn the_agent_names_a_timed_out_job_as_timed_out_not_canceled() {
    use jobs_mock::service::{Clock, JobsService};

    let broker = LocalBroker::start().unwrap();
    let service = PahoTransport::builder(&broker.uri(), "agent-timeout-service")
        .operation_timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    // 600 times faster: the firmware handler's 10-minute step timer runs out after 1 s,
    // while each of its steps takes 30 s.
    let simulator = Simulator::start(
        Arc::new(service),
        JobsService::new(Clock::scaled(std::num::NonZeroU32::new(600).unwrap())),
    )
    .unwrap();
    let thing = ThingName::new("agent-08").unwrap();
    simulator
        .create_job(
            JobSpec::new(
                JobId::new("slow-fw").unwrap(),
                Document::from_serialize(&json!({"operation": "install-firmware", "version": "9"}))
                    .unwrap(),
            )
            .thing(thing.clone()),
        )
        .unwrap();
    let state = std::env::temp_dir().join(format!("agent-timeout-{}", std::process::id()));
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
            "1",
            "--exit-after",
            "1",
        ],
    );
    assert!(agent.wait_exit().success(), "{}", agent.output.join("\n"));
    let _ = std::fs::remove_dir_all(&state);
    let execution = simulator
        .execution(&thing, &JobId::new("slow-fw").unwrap())
        .unwrap();
    assert_eq!(execution.status, JobStatus::TimedOut);
    let output = agent.output.join("\n");
    // Before: "slow-fw canceled in the cloud; stopping".
    assert!(output.contains("slow-fw timed out (TIMED_OUT"), "{output}");
    assert!(!output.contains("canceled"), "{output}");
}

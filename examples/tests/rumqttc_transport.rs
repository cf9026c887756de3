//! The rumqttc port against a real mosquitto: the conformance suite over TCP and mutual TLS
//! (and with resumed sessions), an untrusted broker, and the device loop against the
//! `jobs-service` emulator.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on bad setup")]

use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser as _;

use examples::device::{Host, Tally, process_pending};
use examples::rumqttc_transport::{ConnectError, RumqttcTransport, Settings, tls_config};
use jobs_core::{Client, Jobs};
use jobs_mock::conformance::{self, Config, Endpoint, MosquittoHarness, Rule};
use jobs_mock::local_broker::{LocalBroker, TestCertificates};
use jobs_mock::server::Server;

fn settings(broker: &LocalBroker, client_id: &str) -> Settings {
    Settings::new("127.0.0.1", broker.port(), client_id)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500))
}

/// Settings for a transport under test: a short backoff, and a short keep-alive for
/// `keep_alive_while_idle` (which idles for three periods).
fn under_test(endpoint: &Endpoint, client_id: &str) -> Settings {
    let mut settings = Settings::new(endpoint.host(), endpoint.port(), client_id)
        .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(500));
    settings.keep_alive = Duration::from_secs(2);
    settings
}

#[test]
fn rumqttc_transport_keeps_every_rule_mosquitto_can_check() {
    let mut harness = MosquittoHarness::start(|endpoint, client_id| {
        Ok(Box::new(RumqttcTransport::connect(under_test(
            endpoint, client_id,
        ))?))
    })
    .unwrap()
    .session_flag(true);
    let started = Instant::now();
    let report = conformance::run(&mut harness, &Config::default());
    eprintln!("RumqttcTransport: the suite took {:?}", started.elapsed());
    report.assert_conforms();
    assert_eq!(report.skipped(), vec![Rule::ReconnectWithSession]);
}

#[test]
fn rumqttc_transport_reports_a_resumed_session_on_mosquitto() {
    let mut harness = MosquittoHarness::start_persistent(|endpoint, client_id| {
        let mut settings = under_test(endpoint, client_id);
        settings.clean_session = false;
        Ok(Box::new(RumqttcTransport::connect(settings)?))
    })
    .unwrap()
    .session_flag(true);
    conformance::run_rules(
        &mut harness,
        &Config::default(),
        &[Rule::ReconnectWithSession, Rule::ReconnectWithoutSession],
    )
    .assert_conforms();
}

/// Throwaway certificates in a temporary directory, removed on drop.
struct Certificates {
    certs: TestCertificates,
    dir: std::path::PathBuf,
}

impl Certificates {
    fn generate(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = TestCertificates::generate(&dir).unwrap();
        Self { certs, dir }
    }
}

impl Drop for Certificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn rumqttc_transport_keeps_every_rule_over_mutual_tls() {
    let certificates = Certificates::generate("rumqttc-tls-conformance");
    let tls = tls_config(
        &certificates.certs.ca,
        Some((
            &certificates.certs.device_cert,
            &certificates.certs.device_key,
        )),
        &[],
    )
    .unwrap();
    let mut harness = MosquittoHarness::start_with_tls(&certificates.certs, move |endpoint, id| {
        let settings = under_test(endpoint, id).tls(Arc::clone(&tls));
        Ok(Box::new(RumqttcTransport::connect(settings)?))
    })
    .unwrap()
    .session_flag(true);
    let report = conformance::run(&mut harness, &Config::default());
    report.assert_conforms();
    // No proxy can read TLS, so the rules checked on the wire are left to the TCP run; the
    // dynamic-security plugin would refuse the certificate's identity, so no refused filter.
    assert_eq!(
        report.skipped(),
        vec![
            Rule::RefusedFilterReported,
            Rule::QosAsAsked,
            Rule::NoRetain,
            Rule::AcksMatchedByPacketId,
            Rule::NothingResentAfterTimeout,
            Rule::LinkDropFailsCallsInFlight,
            Rule::ReconnectWithSession,
            Rule::KeepAliveWhileIdle,
        ]
    );
}

#[test]
fn rumqttc_transport_refuses_an_untrusted_broker_certificate() {
    let certificates = Certificates::generate("rumqttc-tls-untrusted");
    let broker = LocalBroker::start_with_tls(&certificates.certs).unwrap();
    let untrusted = tls_config(
        &certificates.certs.other_ca,
        Some((
            &certificates.certs.device_cert,
            &certificates.certs.device_key,
        )),
        &[],
    )
    .unwrap();
    let mut settings = Settings::new("localhost", broker.tls_port().unwrap(), "untrusting");
    settings.tls = Some(untrusted);
    settings.connect_timeout = Duration::from_secs(2);
    assert!(matches!(
        RumqttcTransport::connect(settings),
        Err(ConnectError::Connection(_))
    ));
}

/// The `jobs-service` emulator on `broker`, run in-process, with the example jobs file.
fn service(broker: &LocalBroker) -> Server {
    let args = jobs_mock::server::cli::Args::try_parse_from([
        "jobs-service",
        "--broker",
        &broker.uri(),
        "--jobs",
        concat!(env!("CARGO_MANIFEST_DIR"), "/jobs.json"),
    ])
    .unwrap();
    Server::start(&args, Arc::new(|_: &str| {})).unwrap()
}

/// Work takes no time.
struct Instantly;

impl Host for Instantly {
    fn timestamp(&self) -> String {
        String::new()
    }

    fn work(&self, _seconds: u64) -> Result<(), Box<dyn Error>> {
        Ok(())
    }
}

#[test]
fn the_device_loop_over_rumqttc_works_through_its_jobs_from_jobs_service() {
    let broker = LocalBroker::start().unwrap();
    let _service = service(&broker);
    for (thing, expected) in [("pump-08", (1, 1, 0)), ("valve-12", (2, 0, 1))] {
        let client =
            Client::new(RumqttcTransport::connect(settings(&broker, thing)).unwrap()).unwrap();
        let jobs = Jobs::new(&client, thing).unwrap();
        let tally = process_pending(&jobs, &Instantly, false).unwrap();
        let (succeeded, failed, rejected) = expected;
        assert_eq!(
            tally,
            Tally {
                succeeded,
                failed,
                rejected
            },
            "{thing}"
        );
        // Nothing is left: a second pass lists once and finds no work.
        assert_eq!(
            process_pending(&jobs, &Instantly, true).unwrap(),
            Tally::default()
        );
    }
}

//! The `TcpStream` port against a real mosquitto: the conformance suite (every rule mosquitto
//! can check, and the session rules on a persistent broker) and a refused connection.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on bad setup")]

use std::time::{Duration, Instant};

use examples::tcp_transport::{ConnectError, Settings, TcpTransport};
use jobs_mock::conformance::{self, Config, Endpoint, MosquittoHarness, Rule};

/// A short backoff, and a short keep-alive for `keep_alive_while_idle` (it idles for three
/// periods).
fn settings(endpoint: &Endpoint, client_id: &str) -> Settings {
    let mut settings = Settings::new(endpoint.host(), endpoint.port(), client_id);
    settings.keep_alive = Duration::from_secs(2);
    settings.reconnect_backoff = (Duration::from_millis(50), Duration::from_millis(500));
    settings
}

#[test]
fn tcp_transport_keeps_every_rule_mosquitto_can_check() {
    let mut harness = MosquittoHarness::start(|endpoint, client_id| {
        Ok(Box::new(TcpTransport::connect(settings(
            endpoint, client_id,
        ))?))
    })
    .unwrap()
    .session_flag(true);
    let started = Instant::now();
    let report = conformance::run(&mut harness, &Config::default());
    eprintln!("TcpTransport: the suite took {:?}", started.elapsed());
    report.assert_conforms();
    assert_eq!(report.skipped(), vec![Rule::ReconnectWithSession]);
}

#[test]
fn tcp_transport_reports_a_resumed_session_on_mosquitto() {
    let mut harness = MosquittoHarness::start_persistent(|endpoint, client_id| {
        let mut settings = settings(endpoint, client_id);
        settings.clean_session = false;
        Ok(Box::new(TcpTransport::connect(settings)?))
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

#[test]
fn nothing_listening_fails_the_first_connect() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut settings = Settings::new("127.0.0.1", port, "nobody-listens");
    settings.connect_timeout = Duration::from_secs(2);
    assert!(matches!(
        TcpTransport::connect(settings),
        Err(ConnectError::Io(_))
    ));
}

//! The transport conformance suite (`jobs_mock::conformance`) against `PahoTransport` on a
//! real mosquitto: outages are kills and restarts of the broker, a frozen broker is SIGSTOP.

#![allow(
    clippy::expect_used,
    reason = "a broker that does not start fails the test"
)]

use std::time::{Duration, Instant};

use jobs_mock::conformance::{self, Config, MosquittoHarness, Rule};
use jobs_paho::{PahoTransport, Session};

/// A short keep-alive for `keep_alive_while_idle`, which idles for three periods. (Paho C checks
/// keep-alive every tenth of the last connect's keep-alive, process-wide: every transport of
/// this test binary uses the same.)
const KEEP_ALIVE: Duration = Duration::from_secs(2);

fn harness() -> MosquittoHarness {
    MosquittoHarness::start(move |endpoint, client_id| {
        let transport = PahoTransport::builder(&endpoint.uri(), client_id)
            .keep_alive(KEEP_ALIVE)
            .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
            .build()?;
        Ok(Box::new(transport))
    })
    .expect("mosquitto starts")
}

/// Every rule mosquitto can check, `refused_filter_reported` included (mosquitto's
/// dynamic-security plugin refuses a filter). Paho C calls the sink with its process-wide mutex
/// held, which the contract allows; it releases the mutex when the callback returns
/// (`woken_caller_can_publish`).
#[test]
fn paho_transport_keeps_every_rule_mosquitto_can_check() {
    let started = Instant::now();
    let report = conformance::run(&mut harness(), &Config::default());
    eprintln!("PahoTransport: the suite took {:?}", started.elapsed());
    report.assert_conforms();
    // mosquitto here keeps no sessions: the one rule left unchecked, by name.
    assert_eq!(report.skipped(), vec![Rule::ReconnectWithSession]);
}

#[test]
fn paho_transport_reconnects_into_a_resumed_session_on_mosquitto() {
    let mut harness = MosquittoHarness::start_persistent(|endpoint, client_id| {
        let transport = PahoTransport::builder(&endpoint.uri(), client_id)
            .keep_alive(KEEP_ALIVE)
            .session(Session::Persistent {
                expiry: Duration::from_secs(60),
            })
            .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
            .build()?;
        Ok(Box::new(transport))
    })
    .expect("mosquitto starts");
    // Paho reports the reconnect with session_present: None (it cannot tell), which the rule
    // accepts for a transport without the session_flag capability; the resumed subscription
    // must still deliver.
    conformance::run_rules(
        &mut harness,
        &Config::default(),
        &[Rule::ReconnectWithSession, Rule::ReconnectWithoutSession],
    )
    .assert_conforms();
}

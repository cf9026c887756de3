//! The conformance suite against porters' mistakes that only the wire to a real broker shows:
//! a transport on a `TcpStream` (`flawed_tcp`), checked on mosquitto through the harness's
//! observing proxy, as it should be and with one mistake planted at a time.

#![allow(clippy::unwrap_used, reason = "tests fail loudly on bad setup")]

#[path = "conformance/flawed_tcp.rs"]
mod flawed_tcp;

use std::time::Duration;

use flawed_tcp::{FlawedTcp, Mistake};
use jobs_mock::conformance::{self, Config, MosquittoHarness, Outcome, Rule};

/// The rules the mistakes below break.
const RULES: [Rule; 5] = [
    Rule::SubscribeAcknowledged,
    Rule::NoRetain,
    Rule::AcksMatchedByPacketId,
    Rule::InboundAcknowledged,
    Rule::KeepAliveWhileIdle,
];

fn harness(mistake: Mistake) -> MosquittoHarness {
    MosquittoHarness::start(move |endpoint, client_id| {
        Ok(Box::new(FlawedTcp::connect(
            endpoint.host(),
            endpoint.port(),
            client_id,
            mistake,
        )?))
    })
    .unwrap()
}

/// Short waits: a broken transport makes checks wait them out.
fn config() -> Config {
    Config::default().timeout(Duration::from_secs(2))
}

#[test]
fn without_a_mistake_the_transport_keeps_the_rules() {
    conformance::run_rules(&mut harness(Mistake::None), &config(), &RULES).assert_conforms();
}

/// Checks `rule` against the transport with `mistake`: it must fail, by name, saying `fix`.
fn assert_breaks(mistake: Mistake, rule: Rule, fix: &str) {
    match conformance::check(&mut harness(mistake), &config(), rule) {
        Outcome::Failed(message) => {
            eprintln!("{mistake:?}\n    {message}");
            assert!(message.starts_with(&format!("{rule}: ")), "{message}");
            assert!(message.contains(fix), "{message}");
        }
        other => panic!("{mistake:?} passed {rule}: {other:?}"),
    }
}

#[test]
fn no_pingreq_fails_keep_alive_while_idle() {
    assert_breaks(Mistake::NoPingreq, Rule::KeepAliveWhileIdle, "send PINGREQ");
}

#[test]
fn unacknowledged_inbound_messages_fail_inbound_acknowledged() {
    assert_breaks(
        Mistake::NoInboundAck,
        Rule::InboundAcknowledged,
        "send a PUBACK for every inbound QoS 1 PUBLISH",
    );
}

#[test]
fn retain_fails_no_retain() {
    assert_breaks(Mistake::Retain, Rule::NoRetain, "never set RETAIN");
}

#[test]
fn acks_matched_in_order_fail_acks_matched_by_packet_id() {
    assert_breaks(
        Mistake::AcksInOrder,
        Rule::AcksMatchedByPacketId,
        "complete each call by the packet ID of its PUBACK",
    );
}

/// On the real broker too, every time: the check freezes the broker, so the timing of the
/// peer's publish plays no part.
#[test]
fn a_subscribe_not_waiting_for_the_suback_fails_subscribe_acknowledged_every_time() {
    for _ in 0..3 {
        assert_breaks(
            Mistake::SubscribeWithoutSuback,
            Rule::SubscribeAcknowledged,
            "before any SUBACK could arrive",
        );
    }
}

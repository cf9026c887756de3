//! The conformance suite against `MockTransport` (it must pass every rule its broker can
//! check) and against deliberately broken transports (each must fail the rule it breaks, by
//! name, with a message that says what to fix).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on bad setup")]

#[path = "conformance/broken.rs"]
mod broken;

use std::time::{Duration, Instant};

use broken::{BrokenHarness, Flaw};
use jobs_mock::conformance::{self, Config, MockHarness, Outcome, Rule};

/// Short bounds: the broker is in memory, and a broken transport makes checks wait them out.
fn config() -> Config {
    Config::default()
        .timeout(Duration::from_millis(500))
        .grace(Duration::from_secs(1))
        .idle(Duration::from_millis(300))
}

/// The rules the in-memory broker cannot check: it has no keep-alive and no in-flight window.
const MOCK_SKIPS: [Rule; 2] = [Rule::InboundAcknowledged, Rule::KeepAliveWhileIdle];

#[test]
fn mock_transport_keeps_every_rule() {
    let report = conformance::run(&mut MockHarness::new(), &config());
    report.assert_conforms();
    assert_eq!(report.outcomes().len(), Rule::ALL.len());
}

#[test]
fn mock_transport_is_checked_against_every_rule_but_keep_alive_and_the_inflight_window() {
    let report = conformance::run(&mut MockHarness::new(), &config());
    assert_eq!(report.skipped(), MOCK_SKIPS, "{report}");
}

#[test]
fn rule_names_are_unique_snake_case() {
    let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
    assert!(
        names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Rule::ALL.len());
    // `conformance_tests!` lists the rules by hand: a new rule must be added there too.
    assert_eq!(Rule::ALL.len(), 26);
}

/// Checks `rule` against a transport with `flaw`; it must fail, naming the rule.
fn assert_breaks(flaw: Flaw, rule: Rule) -> String {
    let mut harness = BrokenHarness::new(flaw);
    match conformance::check(&mut harness, &config(), rule) {
        Outcome::Failed(message) => {
            assert!(
                message.starts_with(&format!("{}: ", rule.name())),
                "{message}"
            );
            message
        }
        other => panic!("{flaw:?} passed {rule}: {other:?}"),
    }
}

/// Each flaw, the rule it breaks, and words its failure message must contain (what the
/// porter is told to fix).
const FLAWS: &[(Flaw, Rule, &str)] = &[
    (
        Flaw::AcksSubscribeBeforeBroker,
        Rule::SubscribeAcknowledged,
        "while the broker was frozen, before any SUBACK",
    ),
    (
        Flaw::DropsSessionFlag,
        Rule::ReconnectWithSession,
        "session_present: None",
    ),
    (
        Flaw::DropsSessionFlag,
        Rule::ReconnectWithoutSession,
        "session_present: None",
    ),
    (
        Flaw::IgnoresDeadline,
        Rule::ExpiredDeadlineSendsNothing,
        "expected Timeout",
    ),
    (
        Flaw::IgnoresDeadline,
        Rule::DeadlineHonoured,
        "after its deadline",
    ),
    (
        Flaw::AcksPublishBeforeBroker,
        Rule::DeadlineHonoured,
        "returned Ok while the broker was frozen",
    ),
    (
        Flaw::HoldsLockWhilePolling,
        Rule::WokenCallerCanPublish,
        "the sink woke",
    ),
    (
        Flaw::SecondSinkTakesOver,
        Rule::OneSink,
        "must fail with SinkInstalled",
    ),
    (Flaw::LeaksSink, Rule::DropEndsDelivery, "was not dropped"),
    (
        Flaw::SwallowsConnectionLost,
        Rule::ConnectionLostReported,
        "no ConnectionLost",
    ),
    (
        Flaw::QueuesWhileOffline,
        Rule::OfflineFailsFast,
        "expected NotConnected at once",
    ),
    (
        Flaw::AcksInArrivalOrder,
        Rule::AcksMatchedByPacketId,
        "complete each call by the packet ID of its PUBACK",
    ),
    (
        Flaw::IgnoresLinkDrop,
        Rule::LinkDropFailsCallsInFlight,
        "as soon as the link drops",
    ),
    (
        Flaw::SinkPanicEndsDelivery,
        Rule::SinkPanicContained,
        "catch a panic of the sink",
    ),
    (
        Flaw::SendsFourFilters,
        Rule::SubscribeOutcomePerFilter,
        "received only 4 of them",
    ),
    (
        Flaw::ResendsAfterTimeout,
        Rule::NothingResentAfterTimeout,
        "never resend it",
    ),
    (
        Flaw::SubscribesAtQos0,
        Rule::QosAsAsked,
        "subscribe at QoS 1 reached the broker as QoS 0",
    ),
    (
        Flaw::PublishesQos1AsQos0,
        Rule::QosAsAsked,
        "a QoS 1 publish reached the broker as QoS 0",
    ),
    (
        Flaw::RedeliversWhenIdle,
        Rule::NoDuplicateDeliveries,
        "reached the sink again while the link was idle",
    ),
    (Flaw::HangsInDrop, Rule::OneSink, "did not return"),
];

#[test]
fn every_flaw_fails_its_rule_by_name_saying_what_to_fix() {
    let failures: Vec<String> = std::thread::scope(|scope| {
        let checks: Vec<_> = FLAWS
            .iter()
            .map(|&(flaw, rule, fix)| {
                scope.spawn(move || {
                    let message = assert_breaks(flaw, rule);
                    eprintln!("{flaw:?}\n    {message}");
                    (!message.contains(fix))
                        .then(|| format!("{flaw:?}: {message:?} does not contain {fix:?}"))
                })
            })
            .collect();
        checks
            .into_iter()
            .filter_map(|c| c.join().unwrap())
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The lock-holding delivery loop is caught every time, not by timing luck.
#[test]
fn a_transport_holding_its_lock_while_it_polls_fails_woken_caller_can_publish_every_time() {
    for _ in 0..3 {
        let message = assert_breaks(Flaw::HoldsLockWhilePolling, Rule::WokenCallerCanPublish);
        assert!(message.contains("after its deadline"), "{message}");
    }
}

/// So is a subscribe that returns before the SUBACK.
#[test]
fn a_transport_acknowledging_subscribe_before_the_broker_fails_every_time() {
    for _ in 0..3 {
        assert_breaks(Flaw::AcksSubscribeBeforeBroker, Rule::SubscribeAcknowledged);
    }
}

/// Calling the sink under a lock `publish` needs is allowed (Paho C does it): a woken caller's
/// publish waits only while the sink runs.
#[test]
fn a_transport_calling_the_sink_under_its_lock_keeps_every_rule() {
    conformance::run(&mut BrokenHarness::new(Flaw::CallsSinkUnderLock), &config())
        .assert_conforms();
}

#[test]
fn the_broken_harness_with_a_healthy_transport_keeps_every_rule() {
    conformance::run(&mut BrokenHarness::new(Flaw::None), &config()).assert_conforms();
}

#[test]
fn a_broken_transport_fails_only_the_rules_it_breaks() {
    let mut harness = BrokenHarness::new(Flaw::IgnoresDeadline);
    let report = conformance::run(&mut harness, &config());
    let failed: Vec<Rule> = report
        .outcomes()
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(r, _)| *r)
        .collect();
    // The publish against a frozen broker of nothing_resent_after_timeout never returns.
    assert_eq!(
        failed,
        vec![
            Rule::ExpiredDeadlineSendsNothing,
            Rule::DeadlineHonoured,
            Rule::NothingResentAfterTimeout
        ]
    );
    let panic = std::panic::catch_unwind(|| report.assert_conforms()).unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.contains("expired_deadline_sends_nothing: "), "{text}");
}

/// A `Drop` that never returns fails each rule by name within the watchdog's bound, and the
/// run goes on to the next rule.
#[test]
fn a_hanging_drop_fails_every_rule_by_name_and_the_run_goes_on() {
    let config = config();
    let rules = [
        Rule::OneSink,
        Rule::PublishAcknowledged,
        Rule::MessagesInOrder,
    ];
    let started = Instant::now();
    let report =
        conformance::run_rules(&mut BrokenHarness::new(Flaw::HangsInDrop), &config, &rules);
    for (rule, outcome) in report.outcomes() {
        match outcome {
            Outcome::Failed(message) => {
                assert!(message.starts_with(&format!("{rule}: ")), "{message}");
                assert!(message.contains("did not return"), "{message}");
            }
            other => panic!("{rule}: {other:?}"),
        }
    }
    // Each rule waits at most the grace period for the drop (plus its own bounded waits).
    let bound = (config.grace + config.timeout * 2) * u32::try_from(rules.len()).unwrap();
    assert!(started.elapsed() < bound, "{:?}", started.elapsed());
}

/// The same rules, one test each, through the macro a porter uses.
mod mock_transport_rule_by_rule {
    use super::config;
    use jobs_mock::conformance::MockHarness;

    jobs_mock::conformance_tests!(
        harness: MockHarness::new(),
        config: config(),
        skip: [InboundAcknowledged, KeepAliveWhileIdle],
    );
}

#[test]
fn a_rule_skipped_without_being_listed_fails_its_test() {
    let panic = std::panic::catch_unwind(|| {
        conformance::assert_rule(
            &mut BrokenHarness::without_freeze(),
            &config(),
            Rule::DeadlineHonoured,
            &[],
        );
    })
    .unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.starts_with("deadline_honoured: not checked"), "{text}");
}

#[test]
fn a_rule_listed_as_skipped_that_the_harness_checks_fails_its_test() {
    let panic = std::panic::catch_unwind(|| {
        conformance::assert_rule(
            &mut MockHarness::new(),
            &config(),
            Rule::OneSink,
            &[Rule::OneSink],
        );
    })
    .unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.contains("listed under skip"), "{text}");
}

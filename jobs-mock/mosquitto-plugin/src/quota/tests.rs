use std::time::Duration;

use super::*;

const T0: Duration = Duration::ZERO;

fn conn(id: &str, handle: usize) -> Connection<'_> {
    Connection {
        id,
        handle,
        clean_session: true,
        sub_count: 0,
    }
}

fn quotas(options: &[(&str, &str)]) -> Quotas {
    Quotas::new(Config::parse(options.iter().copied()).unwrap())
}

#[test]
fn the_subscription_quota_counts_distinct_filters_and_unsubscribe_frees_one() {
    let mut q = quotas(&[("max_subscriptions", "2")]);
    let c = conn("gw", 1);
    assert_eq!(q.subscribe(&c, "a"), Verdict::Allow);
    assert_eq!(q.subscribe(&c, "b"), Verdict::Allow);
    assert_eq!(q.subscribe(&c, "a"), Verdict::Allow, "held: no new one");
    assert_eq!(q.subscribe(&c, "c"), Verdict::Deny);
    q.unsubscribe(&c, "a");
    assert_eq!(q.subscribe(&c, "c"), Verdict::Allow);
    let counters = q.counters("gw");
    assert_eq!(
        (counters.subscribe_granted, counters.subscribe_refused),
        (4, 1)
    );
    assert!(q.take_kicks().is_empty());
}

#[test]
fn a_subscription_overrun_can_disconnect_after_or_instead_of_the_suback() {
    let mut q = quotas(&[
        ("max_subscriptions", "1"),
        ("subscription_overrun", "refuse-and-disconnect"),
    ]);
    let c = conn("gw", 1);
    assert_eq!(q.subscribe(&c, "a"), Verdict::Allow);
    assert_eq!(q.subscribe(&c, "b"), Verdict::Deny);
    assert_eq!(q.subscribe(&c, "c"), Verdict::Deny);
    assert_eq!(q.take_kicks(), ["gw"]);
    assert!(q.take_kicks().is_empty());

    let mut q = quotas(&[
        ("max_subscriptions", "1"),
        ("subscription_overrun", "disconnect"),
    ]);
    assert_eq!(q.subscribe(&c, "a"), Verdict::Allow);
    assert_eq!(q.subscribe(&c, "b"), Verdict::Disconnect);
    assert_eq!(q.counters("gw").disconnected, 1);
}

#[test]
fn filters_follow_mosquittos_session_across_connections() {
    let mut q = quotas(&[]);
    let first = conn("gw", 1);
    q.subscribe(&first, "a");
    q.subscribe(&first, "b");
    // A takeover (or reconnect) with a clean session: mosquitto dropped the subscriptions.
    q.disconnected("gw", 1);
    q.subscribe(&conn("gw", 2), "c");
    assert_eq!(q.filters("gw"), 1);
    // A session resumed with its subscriptions (sub_count > 0): they are kept.
    q.disconnected("gw", 2);
    let resumed = Connection {
        clean_session: false,
        sub_count: 1,
        ..conn("gw", 3)
    };
    q.subscribe(&resumed, "d");
    assert_eq!(q.filters("gw"), 2);
    // A new context at the address of an old one is still a new connection.
    q.disconnected("gw", 3);
    q.subscribe(&conn("gw", 3), "e");
    assert_eq!(q.filters("gw"), 1);
    // A persistent session with nothing to resume (sub_count 0) starts empty.
    q.disconnected("gw", 3);
    let empty = Connection {
        clean_session: false,
        sub_count: 0,
        ..conn("gw", 4)
    };
    q.subscribe(&empty, "f");
    assert_eq!(q.filters("gw"), 1);
}

#[test]
fn inbound_and_outbound_share_a_sliding_rate_window() {
    let mut q = quotas(&[("publish_rate", "3")]);
    let c = conn("dev", 1);
    assert_eq!(q.message(&c, "t", 1, T0), Action::Pass);
    assert_eq!(q.read(&c, "t", T0), Verdict::Allow);
    assert!(q.deliver("dev", T0));
    assert_eq!(q.message(&c, "t", 1, T0), Action::Drop);
    assert_eq!(q.read(&c, "t", T0), Verdict::Deny);
    assert!(!q.deliver("dev", T0));
    let later = Duration::from_secs(1);
    assert_eq!(q.message(&c, "t", 1, later), Action::Pass);
    let counters = q.counters("dev");
    assert_eq!(
        (
            counters.published,
            counters.delivered,
            counters.discarded_inbound,
            counters.discarded_outbound
        ),
        (2, 2, 1, 2)
    );
    assert!(!q.deliver("never-seen", T0));
}

#[test]
fn requests_are_relayed_and_the_services_replies_delivered() {
    let mut q = quotas(&[]);
    let device = conn("gw/1+#", 1);
    assert_eq!(
        q.message(&device, "$aws/things/T/jobs/get", 2, T0),
        Action::Relay("$jobs-emulator/request/gw%2F1%2B%23/$aws/things/T/jobs/get".into())
    );
    let service = conn("jobs-service", 2);
    assert_eq!(
        q.message(
            &service,
            "$jobs-emulator/reply/gw%2F1%2B%23/$aws/things/T/jobs/get/accepted",
            2,
            T0
        ),
        Action::Deliver {
            client_id: "gw/1+#".into(),
            topic: "$aws/things/T/jobs/get/accepted".into()
        }
    );
    assert_eq!(
        q.message(&service, "$aws/things/T/jobs/notify", 2, T0),
        Action::Pass
    );
    assert_eq!(
        q.subscribe(&service, "$jobs-emulator/request/#"),
        Verdict::Allow
    );
    assert_eq!(
        q.read(&service, "$jobs-emulator/request/x/y", T0),
        Verdict::Allow
    );

    let mut portable = quotas(&[("implicit_replies", "false")]);
    assert_eq!(
        portable.message(&device, "$aws/things/T/jobs/get", 2, T0),
        Action::Pass
    );
}

#[test]
fn the_services_topics_are_denied_to_devices() {
    let mut q = quotas(&[]);
    let c = conn("dev", 1);
    assert_eq!(q.subscribe(&c, "$jobs-emulator/#"), Verdict::Deny);
    assert_eq!(q.read(&c, "$jobs-emulator/request/x/y", T0), Verdict::Deny);
    for topic in [
        "$aws/things/T/jobs/get/accepted",
        "$aws/things/T/jobs/notify-next",
        "$jobs-emulator/reply/dev/x",
    ] {
        assert_eq!(q.message(&c, topic, 2, T0), Action::Drop, "{topic}");
    }
    assert_eq!(q.counters("dev").denied, 4);
    assert_eq!(
        q.message(&c, relay::QUOTA_GET_TOPIC, 0, T0),
        Action::Report { reset: false }
    );
}

#[test]
fn payloads_over_the_limit_close_the_connection_or_are_dropped() {
    let mut q = quotas(&[("max_payload", "4")]);
    let c = conn("dev", 1);
    assert_eq!(q.message(&c, "t", 4, T0), Action::Pass);
    assert_eq!(q.message(&c, "t", 5, T0), Action::Disconnect);
    let mut q = quotas(&[("max_payload", "4"), ("payload_overrun", "refuse")]);
    assert_eq!(q.message(&c, "t", 5, T0), Action::Drop);
    let mut q = quotas(&[
        ("max_payload", "4"),
        ("payload_overrun", "refuse-and-disconnect"),
    ]);
    assert_eq!(q.message(&c, "t", 5, T0), Action::Drop);
    assert_eq!(q.take_kicks(), ["dev"]);
    assert_eq!(q.counters("dev").oversized, 1);
}

#[test]
fn the_report_is_json_with_every_client_and_reset_zeroes_it() {
    let mut q = quotas(&[("publish_rate", "1")]);
    let odd = "a\"b\\c\u{1}/é";
    let c = conn(odd, 1);
    q.subscribe(&c, "x");
    q.message(&c, "t", 1, T0);
    q.message(&c, "t", 1, T0);
    let report: serde_json::Value = serde_json::from_str(&q.report()).unwrap();
    let counters = &report["clients"][odd];
    assert_eq!(counters["subscriptions"], 1);
    assert_eq!(counters["published"], 1);
    assert_eq!(counters["discarded_inbound"], 1);
    q.reset();
    let report: serde_json::Value = serde_json::from_str(&q.report()).unwrap();
    assert_eq!(report["clients"][odd]["published"], 0);
    assert_eq!(report["clients"][odd]["subscriptions"], 1);
    assert_eq!(q.message(&c, "t", 1, T0), Action::Pass, "window emptied");
}

//! A gateway's connection: subscription strategies, the subscription budget, shared filters
//! under close and rebuild, re-subscription in batches of 8, and the publish pacing.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use jobs_core::{Client, Error, InvalidInput, Jobs, PublishRate, Subscriptions, ThingName};
use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator};
use jobs_mock::{MockBroker, Script};
use serde_json::json;

const GATEWAY: &str = "gateway-1";

fn thing(n: usize) -> String {
    format!("pump-{n:05}")
}

fn client(broker: &MockBroker, subscriptions: Subscriptions, budget: Option<usize>) -> Client {
    Client::builder(broker.connect(GATEWAY))
        .subscriptions(subscriptions)
        .max_subscriptions(budget)
        .build()
        .unwrap()
}

#[test]
fn per_thing_subscriptions_stop_at_the_budget_with_a_typed_error_before_anything_is_sent() {
    let broker = MockBroker::new();
    let client = client(&broker, Subscriptions::PerThing, Some(50));
    let served: Vec<Jobs> = (0..8)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    assert_eq!(broker.subscriptions(GATEWAY).len(), 48);
    let subscribes = broker.subscribe_requests().len();
    let error = Jobs::new(&client, thing(8)).unwrap_err();
    assert!(
        matches!(
            error,
            Error::InvalidInput(InvalidInput::SubscriptionBudget {
                budget: 50,
                in_use: 48,
                wanted: 6
            })
        ),
        "{error:?}"
    );
    assert_eq!(
        error.to_string(),
        "6 more subscriptions would exceed the budget of 50 on this connection (48 in use)"
    );
    assert_eq!(
        broker.subscribe_requests().len(),
        subscribes,
        "nothing was sent"
    );
    // Closing a thing makes room.
    served[0].clone().close().unwrap();
    assert!(Jobs::new(&client, thing(8)).is_ok());
    drop(served);
}

#[test]
fn portable_wildcards_serve_any_number_of_things_with_six_subscriptions() {
    let (broker, simulator) = simulated();
    let client = client(&broker, Subscriptions::PortableWildcards, Some(50));
    let served: Vec<Jobs> = (0..100)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    assert_eq!(broker.subscriptions(GATEWAY).len(), 6);
    assert_eq!(client.subscription_count(), 6);
    let subscribes = broker
        .subscribe_requests()
        .into_iter()
        .filter(|s| s.client == GATEWAY)
        .count();
    assert_eq!(subscribes, 1, "one SUBSCRIBE for all");
    create(&simulator, "fw", "install", (0..100).step_by(7));
    for (n, jobs) in served.iter().enumerate() {
        let pending = jobs.list().unwrap();
        assert_eq!(pending.len(), usize::from(n % 7 == 0), "thing {n}");
    }
    // One thing's close leaves the shared filters to the others.
    served[0].clone().close().unwrap();
    assert_eq!(broker.subscriptions(GATEWAY).len(), 6);
    assert!(served[1].list().is_ok());
    for jobs in &served[1..] {
        jobs.clone().close().unwrap();
    }
    assert!(
        broker.subscriptions(GATEWAY).is_empty(),
        "the last close unsubscribes"
    );
}

#[test]
fn every_subscribe_and_unsubscribe_carries_at_most_eight_filters() {
    let broker = MockBroker::new();
    let client = client(&broker, Subscriptions::PerThing, None);
    let served: Vec<Jobs> = (0..8)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    // A reconnect that lost the session: the next call restores every filter of the
    // connection, in ceil(48 / 8) = 6 SUBSCRIBEs.
    let before = broker.subscribe_requests().len();
    broker.drop_connection(GATEWAY);
    broker.restore_connection(GATEWAY, false);
    broker.script("$aws/things/+/jobs/get", Script::accept(json!({})));
    served[3].list().unwrap();
    let after = broker.subscribe_requests();
    let restored = &after[before..];
    assert_eq!(restored.len(), 6, "{restored:?}");
    assert!(restored.iter().all(|s| s.filters.len() == 8));
    assert_eq!(broker.subscriptions(GATEWAY).len(), 48);
    // The other things' calls find their filters restored.
    for jobs in &served {
        jobs.list().unwrap();
    }
    assert_eq!(broker.subscribe_requests().len(), after.len());
    assert!(
        broker
            .subscribe_requests()
            .iter()
            .all(|s| s.filters.len() <= 8)
    );
}

#[test]
fn a_dropped_jobs_leaves_its_filters_until_the_budget_needs_their_room() {
    let broker = MockBroker::new();
    let client = client(&broker, Subscriptions::PerThing, Some(12));
    let first = Jobs::new(&client, thing(0)).unwrap();
    let second = Jobs::new(&client, thing(1)).unwrap();
    drop(first);
    // Still subscribed (a drop does not block on an UNSUBSCRIBE)...
    assert_eq!(broker.subscriptions(GATEWAY).len(), 12);
    // ...until a new thing needs the room: its filters replace the unowned ones.
    let third = Jobs::new(&client, thing(2)).unwrap();
    let filters = broker.subscriptions(GATEWAY);
    assert_eq!(filters.len(), 12);
    assert!(
        filters.iter().all(|f| !f.contains(&thing(0))),
        "{filters:?}"
    );
    drop((second, third));
}

#[test]
fn closing_and_rebuilding_things_under_traffic_never_loses_a_shared_filter() {
    let broker = MockBroker::new();
    let client = client(&broker, Subscriptions::PortableWildcards, Some(50));
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let (broker, stop) = (broker.clone(), Arc::clone(&stop));
        thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                broker.inject(
                    &format!("$aws/things/{}/jobs/notify", thing(0)),
                    br#"{"timestamp":1,"jobs":{}}"#,
                );
            }
        })
    };
    let keeper = Jobs::new(&client, thing(99)).unwrap();
    for round in 0..200 {
        let (a, b) = (thing(round % 3), thing(3 + round % 3));
        let (a, b) = thread::scope(|scope| {
            let a = scope.spawn(|| Jobs::new(&client, &a).unwrap());
            let b = scope.spawn(|| Jobs::new(&client, &b).unwrap());
            (a.join().unwrap(), b.join().unwrap())
        });
        thread::scope(|scope| {
            scope.spawn(|| a.close().unwrap());
            scope.spawn(|| drop(b));
        });
        assert_eq!(
            broker.subscriptions(GATEWAY).len(),
            6,
            "round {round}: the remaining thing lost filters"
        );
    }
    stop.store(true, Ordering::Relaxed);
    traffic.join().unwrap();
    keeper.close().unwrap();
    assert!(broker.subscriptions(GATEWAY).is_empty());
}

#[test]
fn a_burst_beyond_the_publish_rate_is_slowed_and_a_call_that_cannot_wait_publishes_nothing() {
    let broker = MockBroker::new();
    broker.script("$aws/things/+/jobs/get", Script::accept(json!({})));
    let client = Client::builder(broker.connect(GATEWAY))
        .publish_rate(Some(PublishRate::per_second(20.0, 2)))
        .build()
        .unwrap();
    let jobs = Jobs::new(&client, thing(0)).unwrap();
    let started = Instant::now();
    for _ in 0..6 {
        jobs.list().unwrap();
    }
    // Two at once, then one every 50 ms: at least 200 ms for six.
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "{:?}",
        started.elapsed()
    );
    let published = broker
        .published_on(&format!("$aws/things/{}/jobs/get", thing(0)))
        .len();
    // A call whose turn comes after its deadline publishes nothing and times out.
    let error = jobs
        .with_timeout(Duration::from_millis(5))
        .list()
        .unwrap_err();
    assert!(error.is_timeout(), "{error:?}");
    assert_eq!(
        broker
            .published_on(&format!("$aws/things/{}/jobs/get", thing(0)))
            .len(),
        published
    );
}

#[test]
fn builder_settings_that_make_no_sense_are_refused() {
    let broker = MockBroker::new();
    for (builder, name) in [
        (
            Client::builder(broker.connect("a")).max_subscriptions(Some(0)),
            "max_subscriptions",
        ),
        (
            Client::builder(broker.connect("b")).max_in_flight(Some(0)),
            "max_in_flight",
        ),
        (
            Client::builder(broker.connect("c"))
                .publish_rate(Some(PublishRate::per_second(0.0, 1))),
            "publish_rate",
        ),
    ] {
        let error = builder.build().unwrap_err();
        assert!(
            matches!(&error, Error::InvalidInput(InvalidInput::Setting { name: n, .. }) if *n == name),
            "{error:?}"
        );
    }
}

#[test]
fn one_runner_serves_many_things_with_a_bounded_pool_of_handler_threads() {
    use jobs_core::runner::{Ending, Outcome, Runner};
    use parking_lot::Mutex;
    use std::collections::HashMap;
    use std::sync::atomic::AtomicUsize;

    let (broker, simulator) = simulated();
    let client = client(&broker, Subscriptions::PortableWildcards, Some(50));
    let served: Vec<Jobs> = (0..40)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    let targets: Vec<usize> = (0..40).filter(|n| n % 2 == 0).collect();
    for id in ["fw", "logs"] {
        create(&simulator, id, "work", targets.iter().copied());
    }
    let runs: Arc<Mutex<HashMap<(String, String), usize>>> = Arc::default();
    let (now_running, most_running) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (ended_tx, ended) = crossbeam_channel::unbounded();
    let runner = Runner::builder(&served[0])
        .things(&served[1..])
        .handler_threads(4)
        .handler("work", {
            let (runs, now_running, most_running) = (
                Arc::clone(&runs),
                Arc::clone(&now_running),
                Arc::clone(&most_running),
            );
            move |ctx| {
                let running = now_running.fetch_add(1, Ordering::SeqCst) + 1;
                most_running.fetch_max(running, Ordering::SeqCst);
                *runs
                    .lock()
                    .entry((ctx.thing_name().to_string(), ctx.job_id().to_string()))
                    .or_default() += 1;
                now_running.fetch_sub(1, Ordering::SeqCst);
                Ok(Outcome::succeeded())
            }
        })
        .on_ended(move |ended| ended_tx.send(ended.clone()).unwrap())
        .build()
        .unwrap();
    let stop = runner.stop_handle();
    let running = thread::spawn(move || runner.run());
    let mut endings = Vec::new();
    for n in 0..targets.len() * 2 {
        match ended.recv_timeout(Duration::from_secs(10)) {
            Ok(e) => endings.push(e),
            Err(_) => panic!("only {n} endings: {:?}", runs.lock()),
        }
    }
    stop.stop();
    running.join().unwrap().unwrap();
    assert!(
        endings
            .iter()
            .all(|e| e.ending == Ending::Reported(jobs_core::JobStatus::Succeeded))
    );
    let runs = runs.lock();
    assert_eq!(runs.len(), targets.len() * 2);
    assert!(runs.values().all(|n| *n == 1), "{runs:?}");
    assert!(most_running.load(Ordering::SeqCst) <= 4);
    for target in &targets {
        let target = ThingName::new(thing(*target)).unwrap();
        for id in ["fw", "logs"] {
            let execution = simulator
                .execution(&target, &jobs_core::JobId::new(id).unwrap())
                .unwrap();
            assert_eq!(execution.status, jobs_core::JobStatus::Succeeded);
        }
    }
}

#[test]
fn a_runner_refuses_a_thing_given_twice() {
    let broker = MockBroker::new();
    let client = client(&broker, Subscriptions::PerThing, None);
    let jobs = Jobs::new(&client, thing(0)).unwrap();
    let error = jobs_core::runner::Runner::builder(&jobs)
        .thing(&jobs)
        .build()
        .unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::DuplicateThing(_))
    ));
}

#[test]
fn a_sweep_lists_every_thing_in_name_order_and_resumes_where_it_stopped() {
    use jobs_core::Sweep;
    use std::ops::ControlFlow;

    let (broker, simulator) = simulated();
    let client = client(&broker, Subscriptions::PortableWildcards, Some(50));
    // Built in reverse order: the sweep walks them by name.
    let served: Vec<Jobs> = (0..30)
        .rev()
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    create(&simulator, "fw", "install", (0..30).step_by(3));
    let mut sweep = Sweep::new(served.iter().cloned());
    assert_eq!(sweep.len(), 30);
    let mut seen = Vec::new();
    sweep.run(4, |swept| {
        assert_eq!((swept.index, swept.total), (seen.len(), 30));
        let pending = swept.pending.unwrap().len();
        seen.push((swept.thing.to_string(), pending));
        if seen.len() == 12 {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    });
    assert_eq!(sweep.position(), 12);
    assert_eq!(sweep.next_thing().unwrap().as_str(), thing(12));
    // Resumed later, from where it stopped (as a new sweep would with `resume_at`).
    let mut resumed = Sweep::new(served.iter().cloned()).resume_at(sweep.next_thing().unwrap());
    resumed.run(4, |swept| {
        seen.push((swept.thing.to_string(), swept.pending.unwrap().len()));
        ControlFlow::Continue(())
    });
    let expected: Vec<(String, usize)> = (0..30)
        .map(|n| (thing(n), usize::from(n % 3 == 0)))
        .collect();
    assert_eq!(seen, expected);
    assert_eq!(resumed.position(), 30);
    assert!(resumed.next_thing().is_none());
}

/// An in-memory broker with the simulator on it.
fn simulated() -> (MockBroker, Simulator) {
    let broker = MockBroker::new();
    let simulator = Simulator::start(
        Arc::new(broker.connect("jobs-service")),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )
    .unwrap();
    (broker, simulator)
}

/// A broker with AWS IoT Core's MQTT-level behaviour (implicit replies, quotas), its publish
/// rate scaled up by `scale` to keep tests short, and the simulator behind its relay.
fn aws(scale: usize) -> (MockBroker, Simulator) {
    use jobs_mock::aws::AwsSettings;
    use jobs_mock::service::SimulatorMode;
    let broker = MockBroker::with_aws(
        AwsSettings::default().publish_rate(100 * scale, Duration::from_secs(1)),
    );
    let simulator = Simulator::start_with(
        Arc::new(broker.connect("jobs-service")),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
        SimulatorMode::Relay,
    )
    .unwrap();
    (broker, simulator)
}

/// A client for AWS IoT Core's limits, the publish rate scaled as the broker's.
fn aws_client(broker: &MockBroker, subscriptions: Subscriptions, scale: u32) -> Client {
    Client::builder(broker.connect(GATEWAY))
        .subscriptions(subscriptions)
        .max_subscriptions(Some(50))
        .publish_rate(Some(PublishRate::within(100 * scale)))
        .build()
        .unwrap()
}

/// Creates job `id` for things numbered `things`, its document naming `operation`.
fn create(
    simulator: &Simulator,
    id: &str,
    operation: &str,
    things: impl IntoIterator<Item = usize>,
) {
    let document = serde_json::json!({ "operation": operation });
    simulator
        .create_job(
            JobSpec::new(
                jobs_core::JobId::new(id).unwrap(),
                jobs_core::Document::from_serialize(&document).unwrap(),
            )
            .things(
                things
                    .into_iter()
                    .map(|n| ThingName::new(thing(n)).unwrap()),
            ),
        )
        .unwrap();
}

#[test]
fn implicit_replies_serve_fifty_things_on_aws_iot_core_and_refuse_the_fifty_first_locally() {
    let (broker, simulator) = aws(100);
    let client = aws_client(
        &broker,
        Subscriptions::ImplicitReplies { notify: false },
        100,
    );
    let served: Vec<Jobs> = (0..50)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    let error = Jobs::new(&client, thing(50)).unwrap_err();
    assert!(matches!(
        error,
        Error::InvalidInput(InvalidInput::SubscriptionBudget { budget: 50, .. })
    ));
    create(&simulator, "fw", "work", (0..50).step_by(5));
    for (n, jobs) in served.iter().enumerate() {
        assert_eq!(
            jobs.list().unwrap().len(),
            usize::from(n % 5 == 0),
            "thing {n}"
        );
    }
    let report = broker.quota_report().client(GATEWAY);
    assert_eq!(report.subscriptions, 50);
    assert_eq!(report.subscribe_refused, 0);
    assert_eq!(report.discarded(), 0);
}

#[test]
fn gateway_wildcards_serve_a_thousand_things_with_one_subscription_and_route_their_events() {
    use jobs_core::Event;
    let (broker, simulator) = aws(100);
    let client = aws_client(
        &broker,
        Subscriptions::GatewayWildcards { notify: false },
        100,
    );
    let started = Instant::now();
    let served: Vec<Jobs> = (0..1000)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    eprintln!("1,000 things built in {:?}", started.elapsed());
    assert_eq!(client.subscription_count(), 1);
    assert_eq!(
        broker.subscriptions(GATEWAY),
        ["$aws/things/+/jobs/notify-next"]
    );
    create(&simulator, "fw", "work", [3, 500, 999]);
    // The events reach exactly the things they are for.
    for n in [3, 500, 999] {
        let event = served[n]
            .with_timeout(Duration::from_secs(5))
            .next_event()
            .unwrap();
        assert!(
            matches!(event, Some(Event::NextJobChanged(_))),
            "thing {n}: {event:?}"
        );
    }
    assert!(served[4].try_next_event().is_none());
    // Replies come back unsubscribed, to this connection alone.
    for n in [3, 4, 500] {
        assert_eq!(served[n].list().unwrap().len(), usize::from(n != 4));
    }
    assert_eq!(broker.quota_report().client(GATEWAY).discarded(), 0);
}

#[test]
fn a_burst_beyond_aws_iot_cores_publish_rate_is_slowed_by_the_client_never_discarded() {
    // The real rate: 100 publishes a second, in and out together, in a sliding window.
    let (broker, _simulator) = aws(1);
    let client = aws_client(
        &broker,
        Subscriptions::GatewayWildcards { notify: false },
        1,
    );
    let jobs = Jobs::new(&client, thing(0)).unwrap();
    let started = Instant::now();
    for _ in 0..60 {
        jobs.list().unwrap();
    }
    // 5 at once, then 40 a second: the 60th about 1.4 s in.
    assert!(
        started.elapsed() >= Duration::from_millis(1300),
        "{:?}",
        started.elapsed()
    );
    let report = broker.quota_report().client(GATEWAY);
    assert_eq!(report.discarded(), 0, "{report:?}");
    assert_eq!(report.published, 60);
}

#[test]
fn a_gateway_runner_stopped_with_listings_queued_behind_the_pace_returns_within_the_stop_grace_plus_one_timeout()
 {
    use jobs_core::runner::{Outcome, Runner};
    use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS};

    /// Hands over the topic of every request the gateway publishes.
    struct Requests(crossbeam_channel::Sender<String>);
    impl MessageSink for Requests {
        fn message(&self, topic: &str, _payload: &[u8]) {
            let _ = self.0.send(topic.to_owned());
        }
        fn connection(&self, _event: ConnectionEvent) {}
    }

    const GRACE: Duration = Duration::from_millis(300);
    const TIMEOUT: Duration = Duration::from_millis(200);
    let (broker, _simulator) = simulated();
    let observer = broker.connect("observer");
    let (tx, requests) = crossbeam_channel::unbounded();
    observer.set_sink(Arc::new(Requests(tx))).unwrap();
    observer
        .subscribe(
            &["$aws/things/+/jobs/get"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(5),
        )
        .unwrap();
    // 100 things listed at 50 a second: the runner's first listings queue for 2 s.
    let client = Client::builder(broker.connect(GATEWAY))
        .subscriptions(Subscriptions::PortableWildcards)
        .publish_rate(Some(PublishRate::per_second(50.0, 1)))
        .build()
        .unwrap();
    let served: Vec<Jobs> = (0..100)
        .map(|n| {
            Jobs::builder(&client, thing(n))
                .timeout(TIMEOUT)
                .build()
                .unwrap()
        })
        .collect();
    let runner = Runner::builder(&served[0])
        .things(&served[1..])
        .stop_grace(GRACE)
        .handler("work", |_| Ok(Outcome::succeeded()))
        .build()
        .unwrap();
    let stop = runner.stop_handle();
    let running = thread::spawn(move || runner.run());
    requests.recv_timeout(Duration::from_secs(10)).unwrap();
    let stopped = Instant::now();
    stop.stop();
    running.join().unwrap().unwrap();
    let took = stopped.elapsed();
    // Requests queued before the stop are bounded by the stop grace when they are sent.
    assert!(took <= GRACE + TIMEOUT, "{took:?}");
    let listed = broker
        .published()
        .iter()
        .filter(|p| p.client == GATEWAY && p.topic.ends_with("/jobs/get"))
        .count();
    assert!(
        listed < 100,
        "{listed} listings: the queue was sent out after the stop"
    );
}

//! A gateway over jobs-paho against mosquitto with the `jobs-mosquitto-plugin` (AWS IoT Core's
//! quotas and implicit Jobs replies, `LocalBroker::start_aws`), the simulator behind the
//! plugin's relay as `jobs-service --relay` runs it, in every subscription strategy: replies
//! reach the requester alone, a budget overrun is a local typed error with nothing sent,
//! nothing is discarded within the rate, a burst beyond it is slowed by the client's limiter,
//! and closing and rebuilding things under event traffic keeps every owner's filters. What
//! the plugin counted (`quota_report`) is the judge. Every wait is bounded.

#![allow(clippy::unwrap_used, reason = "a panic fails the test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{
    BrokerLimits, Client, ConnectionEvent, Document, Error, InvalidInput, JobId, JobStatus, Jobs,
    MessageSink, MqttTransport, QoS, Subscriptions, ThingName,
};
use jobs_mock::aws::{AwsSettings, QuotaCounters};
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator, SimulatorMode};
use jobs_paho::PahoTransport;

const WAIT: Duration = Duration::from_secs(10);
const GATEWAY: &str = "gateway-1";

/// Every strategy, with `notify` on where there is a choice (more event traffic).
const STRATEGIES: [Subscriptions; 4] = [
    Subscriptions::PerThing,
    Subscriptions::ImplicitReplies { notify: true },
    Subscriptions::GatewayWildcards { notify: true },
    Subscriptions::PortableWildcards,
];

fn thing(n: usize) -> String {
    format!("pump-{n:05}")
}

/// Whether the strategy needs the broker's implicit replies (it subscribes no reply filter).
fn needs_implicit_replies(strategy: Subscriptions) -> bool {
    matches!(
        strategy,
        Subscriptions::ImplicitReplies { .. } | Subscriptions::GatewayWildcards { .. }
    )
}

/// mosquitto with the plugin, and the simulator on a Paho connection of its own: behind the
/// relay when the settings have implicit replies, as an ordinary subscriber otherwise.
struct Aws {
    simulator: Simulator,
    broker: LocalBroker,
}

impl Aws {
    fn start(settings: &AwsSettings, implicit_replies: bool) -> Self {
        let settings = settings.clone().implicit_replies(implicit_replies);
        let broker = LocalBroker::start_aws(&settings).unwrap();
        let transport = PahoTransport::builder(&broker.uri(), settings.service())
            .operation_timeout(WAIT)
            .build()
            .unwrap();
        let mode = match implicit_replies {
            true => SimulatorMode::Relay,
            false => SimulatorMode::Portable,
        };
        let simulator = Simulator::start_with(
            Arc::new(transport),
            JobsService::new(Clock::virtual_at(1_750_000_000)),
            mode,
        )
        .unwrap();
        Self { simulator, broker }
    }

    /// A gateway's client over Paho, told AWS IoT Core's limits (so: a budget of 50, 40
    /// requests a second in bursts of 5, 100 in flight), then `configure`d.
    fn client(
        &self,
        client_id: &str,
        subscriptions: Subscriptions,
        configure: impl FnOnce(jobs_core::ClientBuilder) -> jobs_core::ClientBuilder,
    ) -> Client {
        let transport = PahoTransport::builder(&self.broker.uri(), client_id)
            .operation_timeout(WAIT)
            .broker_limits(BrokerLimits::AWS_IOT)
            .build()
            .unwrap();
        configure(Client::builder(transport).subscriptions(subscriptions))
            .build()
            .unwrap()
    }

    fn counters(&self, client_id: &str) -> QuotaCounters {
        self.broker.quota_report().unwrap().client(client_id)
    }

    fn create(&self, id: &str, things: impl IntoIterator<Item = usize>) {
        self.simulator
            .create_job(
                JobSpec::new(
                    JobId::new(id).unwrap(),
                    Document::from_json(r#"{"operation":"work"}"#).unwrap(),
                )
                .things(
                    things
                        .into_iter()
                        .map(|n| ThingName::new(thing(n)).unwrap()),
                ),
            )
            .unwrap();
    }
}

/// A raw Paho connection that records every message it receives.
struct Spy {
    transport: PahoTransport,
    messages: Receiver<String>,
}

struct SpySink(Sender<String>);

impl MessageSink for SpySink {
    fn message(&self, topic: &str, _payload: &[u8]) {
        let _ = self.0.send(topic.to_owned());
    }
    fn connection(&self, _event: ConnectionEvent) {}
}

impl Spy {
    fn connect(broker: &LocalBroker, client_id: &str, filters: &[&str]) -> Self {
        let transport = PahoTransport::builder(&broker.uri(), client_id)
            .operation_timeout(WAIT)
            .build()
            .unwrap();
        let (tx, messages) = crossbeam_channel::unbounded();
        transport.set_sink(Arc::new(SpySink(tx))).unwrap();
        let granted = transport
            .subscribe(filters, QoS::AtLeastOnce, Instant::now() + WAIT)
            .unwrap();
        assert!(
            granted
                .iter()
                .all(|g| *g != jobs_core::SubscribeOutcome::Refused)
        );
        Self {
            transport,
            messages,
        }
    }

    /// Every topic received until (and without) the first `marker`.
    fn until(&self, marker: &str) -> Vec<String> {
        let mut topics = Vec::new();
        loop {
            let topic = self.messages.recv_timeout(WAIT).unwrap();
            if topic == marker {
                return topics;
            }
            topics.push(topic);
        }
    }
}

fn is_event(topic: &str) -> bool {
    topic.ends_with("/jobs/notify") || topic.ends_with("/jobs/notify-next")
}

#[test]
fn in_every_strategy_replies_reach_the_requester_alone() {
    for strategy in STRATEGIES {
        // AWS IoT Core's quotas as they are; the default client keeps within them.
        let aws = Aws::start(&AwsSettings::default(), true);
        let spy = Spy::connect(&aws.broker, "spy", &["$aws/things/+/jobs/#", "marker"]);
        aws.create("fw", 0..3);
        let client = aws.client(GATEWAY, strategy, |b| b);
        let things: Vec<Jobs> = (0..3)
            .map(|n| Jobs::new(&client, thing(n)).unwrap())
            .collect();
        let mut replies = 0;
        for jobs in &things {
            assert_eq!(jobs.list().unwrap().len(), 1, "{strategy:?}");
            let mut job = jobs.start_next().unwrap().unwrap();
            job.update(JobStatus::Succeeded, None).unwrap();
            // A rejection is a reply too (`…/rejected`).
            let error = jobs.job("no-such-job").unwrap().describe().unwrap_err();
            assert!(error.rejection().is_some(), "{strategy:?}: {error:?}");
            replies += 4;
        }
        // mosquitto delivers to each client in order: a reply copied to the spy would have
        // reached it before the marker, published after every reply came back.
        client
            .transport()
            .publish("marker", b"", QoS::AtLeastOnce, Instant::now() + WAIT)
            .unwrap();
        let seen = spy.until("marker");
        assert!(
            seen.iter().all(|t| is_event(t)),
            "{strategy:?}: the spy saw a request or a reply: {seen:?}"
        );
        let report = aws.broker.quota_report().unwrap();
        let gateway = report.client(GATEWAY);
        assert_eq!(gateway.published, replies + 1, "{strategy:?}");
        assert!(gateway.delivered >= replies, "{strategy:?}: {gateway:?}");
        assert_eq!(report.total().discarded(), 0, "{strategy:?}: {report:?}");
        assert_eq!(gateway.subscribe_refused, 0, "{strategy:?}");
        drop(spy.transport);
    }
}

#[test]
fn in_every_strategy_a_budget_overrun_is_a_local_typed_error_and_nothing_is_sent() {
    // (strategy, budget, things that fit, subscriptions each new thing wants)
    let cases = [
        (Subscriptions::PerThing, 50, 8, 6),
        (Subscriptions::ImplicitReplies { notify: true }, 50, 25, 2),
        (Subscriptions::GatewayWildcards { notify: true }, 1, 0, 2),
        (Subscriptions::PortableWildcards, 5, 0, 6),
    ];
    for (strategy, budget, fits, wanted) in cases {
        let aws = Aws::start(&AwsSettings::default(), needs_implicit_replies(strategy));
        let client = aws.client(GATEWAY, strategy, |b| b.max_subscriptions(Some(budget)));
        let served: Vec<Jobs> = (0..fits)
            .map(|n| Jobs::new(&client, thing(n)).unwrap())
            .collect();
        let before = aws.counters(GATEWAY);
        let in_use = client.subscription_count();
        let error = Jobs::new(&client, thing(fits)).unwrap_err();
        assert!(
            matches!(
                error,
                Error::InvalidInput(InvalidInput::SubscriptionBudget { budget: b, in_use: u, wanted: w })
                    if b == budget && u == in_use && w == wanted
            ),
            "{strategy:?}: {error:?}"
        );
        let after = aws.counters(GATEWAY);
        assert_eq!(after, before, "{strategy:?}: something reached the broker");
        assert_eq!(after.subscribe_refused, 0);
        assert_eq!(after.subscriptions as usize, in_use, "{strategy:?}");
        // The connection and the things already served are unharmed.
        for jobs in &served {
            assert!(jobs.list().unwrap().is_empty());
        }
        assert_eq!(aws.counters(GATEWAY).discarded(), 0);
    }
}

#[test]
fn in_every_strategy_a_gateway_within_the_rate_loses_nothing() {
    for strategy in STRATEGIES {
        // AWS's real rate (100 a second, in and out together) and the client's default pace
        // (40 requests a second, bursts of 5): at most 45 requests and 45 replies in any second.
        // The only events are the 2 things' completions (notify, notify-next: at most 4), so
        // the connection stays within 100 in any second.
        let aws = Aws::start(&AwsSettings::default(), needs_implicit_replies(strategy));
        aws.create("fw", [1, 5]);
        let client = aws.client(GATEWAY, strategy, |b| b);
        let things: Vec<Jobs> = (0..8)
            .map(|n| Jobs::new(&client, thing(n)).unwrap())
            .collect();
        let requests: usize = thread::scope(|scope| {
            let workers: Vec<_> = things
                .iter()
                .map(|jobs| {
                    scope.spawn(move || {
                        let mut requests = 0;
                        if let Some(mut job) = jobs.start_next().unwrap() {
                            job.update(JobStatus::Succeeded, None).unwrap();
                            requests += 1;
                        }
                        requests += 1;
                        for _ in 0..10 {
                            assert!(jobs.list().unwrap().is_empty());
                            requests += 1;
                        }
                        requests
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().unwrap()).sum()
        });
        let report = aws.broker.quota_report().unwrap();
        assert_eq!(report.total().discarded(), 0, "{strategy:?}: {report:?}");
        let gateway = report.client(GATEWAY);
        assert_eq!(gateway.published as usize, requests, "{strategy:?}");
        assert!(gateway.delivered as usize >= requests, "{strategy:?}");
    }
}

#[test]
fn a_burst_beyond_the_rate_is_slowed_by_the_limiter_and_nothing_is_discarded() {
    const THREADS: usize = 16;
    const EACH: usize = 10;
    let aws = Aws::start(&AwsSettings::default(), true);
    let burst = |jobs: &Jobs| {
        thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|_| {
                    scope.spawn(|| (0..EACH).map(|_| jobs.list()).filter(Result::is_ok).count())
                })
                .collect();
            workers
                .into_iter()
                .map(|w| w.join().unwrap())
                .sum::<usize>()
        })
    };
    // The default client (40 requests a second, bursts of 5) and 160 requests at once: the
    // limiter spreads them over at least (160 - 5) / 40 s.
    let client = aws.client(
        GATEWAY,
        Subscriptions::GatewayWildcards { notify: false },
        |b| b,
    );
    let jobs = Jobs::new(&client, thing(0)).unwrap();
    let started = Instant::now();
    assert_eq!(burst(&jobs), THREADS * EACH);
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(3800), "{took:?}");
    let counters = aws.counters(GATEWAY);
    assert_eq!(counters.discarded(), 0, "{counters:?}");
    assert_eq!(counters.published as usize, THREADS * EACH);

    // The same burst without the limiter: AWS's quota discards part of it (the proof that
    // the burst is beyond the rate); those calls time out.
    let unpaced = aws.client(
        "unpaced",
        Subscriptions::GatewayWildcards { notify: false },
        |b| b.publish_rate(None),
    );
    let jobs = Jobs::builder(&unpaced, thing(1))
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap();
    let answered = burst(&jobs);
    let counters = aws.counters("unpaced");
    assert!(counters.discarded() > 0, "{counters:?}");
    assert!(answered < THREADS * EACH);
}

#[test]
fn events_the_gateways_updates_cause_slow_its_requests_instead_of_overrunning_the_quota() {
    // AWS's real quota (100 a second, in and out together) and the default client pace (40
    // requests a second, bursts of 5). Every completed execution brings `notify` and
    // `notify-next` back: one event per request, half the pace's share again. The pace charges
    // each event half a request, so requests slow down to about 27 a second (27 requests, 27
    // replies, 27 events); without that charge, 45 + 45 + 45 in a second would overrun it.
    const THINGS: usize = 4;
    const JOBS: usize = 15;
    let aws = Aws::start(&AwsSettings::default(), true);
    for n in 0..JOBS {
        aws.create(&format!("queued-{n:02}"), 0..THINGS);
    }
    let client = aws.client(
        GATEWAY,
        Subscriptions::GatewayWildcards { notify: true },
        |b| b,
    );
    let things: Vec<Jobs> = (0..THINGS)
        .map(|n| Jobs::new(&client, thing(n)).unwrap())
        .collect();
    let failures: Vec<Error> = thread::scope(|scope| {
        let workers: Vec<_> = things
            .iter()
            .map(|jobs| {
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    for _ in 0..JOBS {
                        match jobs.start_next() {
                            Ok(Some(mut job)) => {
                                if let Err(e) = job.update(JobStatus::Succeeded, None) {
                                    failures.push(e);
                                }
                            }
                            Ok(None) => {}
                            Err(e) => failures.push(e),
                        }
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let gateway = aws.counters(GATEWAY);
    assert_eq!(
        gateway.discarded(),
        0,
        "{gateway:?}; failed calls: {failures:?}"
    );
    assert!(failures.is_empty(), "{failures:?}");
    assert_eq!(gateway.published as usize, 2 * THINGS * JOBS);
    for n in 0..THINGS {
        for j in 0..JOBS {
            let execution = aws
                .simulator
                .execution(
                    &ThingName::new(thing(n)).unwrap(),
                    &JobId::new(format!("queued-{j:02}")).unwrap(),
                )
                .unwrap();
            assert_eq!(execution.status, JobStatus::Succeeded);
        }
    }
}

#[test]
fn in_every_strategy_closing_and_rebuilding_things_under_event_traffic_keeps_every_owners_filters()
{
    for strategy in STRATEGIES {
        // Replies implicit only where the strategy needs them: elsewhere a lost reply filter
        // makes the keeper's calls time out. The rate is not under test here.
        let aws = Aws::start(
            &AwsSettings::default().unlimited_publish_rate(),
            needs_implicit_replies(strategy),
        );
        let client = aws.client(GATEWAY, strategy, |b| b.publish_rate(None));
        let keeper = Jobs::new(&client, thing(99)).unwrap();
        let stop = AtomicBool::new(false);
        thread::scope(|scope| {
            // Events for the keeper and for the things being closed and rebuilt.
            scope.spawn(|| {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) && n < 500 {
                    aws.create(&format!("traffic-{n}"), [99, 0, 1, 2, 3, 4, 5]);
                    n += 1;
                }
            });
            for round in 0..30 {
                let (a, b) = (thing(round % 3), thing(3 + round % 3));
                let (a, b) = thread::scope(|inner| {
                    let a = inner.spawn(|| Jobs::new(&client, &a).unwrap());
                    let b = inner.spawn(|| Jobs::new(&client, &b).unwrap());
                    (a.join().unwrap(), b.join().unwrap())
                });
                thread::scope(|inner| {
                    inner.spawn(|| a.close().unwrap());
                    inner.spawn(|| drop(b));
                });
                let counters = aws.counters(GATEWAY);
                assert_eq!(
                    counters.subscriptions as usize,
                    client.subscription_count(),
                    "{strategy:?}, round {round}: the broker and the client disagree"
                );
            }
            stop.store(true, Ordering::Relaxed);
        });
        // The keeper still gets its replies: the reply comes after every traffic event (the
        // service published them first, on the same connection), so once they are drained
        // the next event is the one for the last job.
        assert!(!keeper.list().unwrap().is_empty(), "{strategy:?}");
        while keeper.try_next_event().is_some() {}
        aws.create("last", [99]);
        let event = keeper.with_timeout(WAIT).next_event().unwrap();
        assert!(event.is_some(), "{strategy:?}: the keeper heard no event");
        assert_eq!(aws.counters(GATEWAY).subscribe_refused, 0);
        keeper.close().unwrap();
    }
}

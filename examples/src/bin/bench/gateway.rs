//! Part 5: a gateway at AWS IoT Core's scale, on mosquitto with the `jobs-mosquitto-plugin`
//! (AWS's quotas per connection, implicit Jobs replies) and the simulator behind its relay, as
//! `jobs-service --relay` runs it. AWS's publish rate is scaled up (`scale` × 100 a second) so
//! that a sweep of 10,000 things takes seconds, not minutes; the client's pace is scaled the
//! same way ([`PublishRate::within`] the scaled limit), so every ratio to the budget holds at
//! AWS's real rate too.
//!
//! One connection with [`Subscriptions::GatewayWildcards`] serves every thing: construction
//! (time, memory, subscriptions), a [`Sweep`] of all of them at the limiter's pace (rate,
//! discards), and one [`Runner`] for all of them running a job targeted at some (each
//! execution exactly once, discards). Side by side: [`Subscriptions::PerThing`] refusing the
//! 9th thing with the typed budget error, and what the limiter costs a call under budget.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::runner::{Ending, Outcome, Runner};
use jobs_core::{
    BrokerLimits, Client, Document, Error, InvalidInput, JobId, JobStatus, Jobs, PublishRate,
    Subscriptions, Sweep, ThingName,
};
use jobs_mock::aws::{AwsSettings, QuotaCounters};
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator, SimulatorMode};
use jobs_paho::PahoTransport;
use parking_lot::Mutex;

use crate::fleet::vm_rss_kib;
use crate::stats::percentile;
use crate::{BoxError, Config};

/// The gateway's client ID.
const GATEWAY: &str = "bench-gateway";
/// Lists a sweep keeps in flight (the pace, not the round trip, must set its speed).
const SWEEP_IN_FLIGHT: usize = 32;

/// What part 5 measured.
#[derive(Debug)]
pub(crate) struct Gateway {
    /// AWS's publish rate × this.
    pub(crate) scale: u32,
    /// The broker's quota: publishes a second per connection, in and out together.
    pub(crate) quota_per_second: usize,
    /// The client's pace: requests a second and burst.
    pub(crate) budget_per_second: f64,
    pub(crate) burst: u32,
    pub(crate) things: usize,
    /// Subscriptions the client holds, and what the plugin counted.
    pub(crate) subscriptions: usize,
    pub(crate) broker_subscriptions: u64,
    pub(crate) subscribe_refused: u64,
    pub(crate) construct_ms: f64,
    pub(crate) rss_growth_kib: i64,
    pub(crate) sweep_s: f64,
    pub(crate) sweep_pending: usize,
    pub(crate) sweep_failed: usize,
    pub(crate) sweep_discarded: u64,
    /// Things the job targets, executions that ran exactly once and ended SUCCEEDED.
    pub(crate) job_things: usize,
    pub(crate) exactly_once: usize,
    /// Until the first execution ended, until the last, and until `run` returned after the
    /// stop.
    pub(crate) runner_first_s: f64,
    pub(crate) runner_s: f64,
    pub(crate) runner_total_s: f64,
    pub(crate) runner_discarded: u64,
    pub(crate) runner_requests: u64,
    /// The per-thing strategy: the (1-based) thing it refused, and the error's text.
    pub(crate) per_thing_refused_at: Option<usize>,
    pub(crate) per_thing_error: String,
    /// The limiter's cost under budget.
    pub(crate) limiter: Limiter,
}

/// The limiter's cost under budget: `list` with and without it, interleaved.
#[derive(Debug)]
pub(crate) struct Limiter {
    /// Each round's p50 with and without, in µs.
    pub(crate) rounds: Vec<(f64, f64)>,
    /// The p50 over every call of all rounds, with and without, in µs.
    pub(crate) p50_with: f64,
    pub(crate) p50_without: f64,
    /// Calls a second each side made.
    pub(crate) calls_per_second: f64,
}

impl Gateway {
    /// Lists a second the sweep achieved.
    pub(crate) fn sweep_rate(&self) -> f64 {
        self.things as f64 / self.sweep_s
    }

    /// p50 with the limiter ÷ p50 without, over every call of all rounds.
    pub(crate) fn limiter_ratio(&self) -> f64 {
        self.limiter.p50_with / self.limiter.p50_without
    }
}

fn thing(n: usize) -> String {
    format!("gw-{n:05}")
}

/// Runs part 5 on a broker of its own.
pub(crate) fn run(config: &Config) -> Result<Gateway, BoxError> {
    let scale = config.gateway_scale;
    let quota = 100 * scale as usize;
    let settings = AwsSettings::default().publish_rate(quota, Duration::from_secs(1));
    let broker = LocalBroker::start_aws(&settings)?;
    let uri = broker.uri();
    let simulator = Simulator::start_with(
        Arc::new(
            PahoTransport::builder(&uri, settings.service())
                .operation_timeout(Duration::from_secs(10))
                .build()?,
        ),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
        SimulatorMode::Relay,
    )?;
    let things = config.gateway_things;
    let job_things = config.gateway_job_things;
    // Every `step`-th thing gets the job. It exists before the gateway connects: what a
    // gateway finds at start-up (AWS rolls a job out at about 1,000 things a minute, which
    // the quota could not take as one burst of events on one connection either).
    let step = (things / job_things.max(1)).max(1);
    let targets: Vec<usize> = (0..things).step_by(step).take(job_things).collect();
    simulator.create_job(
        JobSpec::new(
            JobId::new("gateway-fw")?,
            Document::from_json(r#"{"operation":"install"}"#)?,
        )
        .things(
            targets
                .iter()
                .map(|&n| ThingName::new(thing(n)))
                .collect::<Result<Vec<_>, _>>()?,
        ),
    )?;

    let rate = PublishRate::within(100 * scale);
    let client = gateway_client(&uri, GATEWAY, Some(rate))?;
    let names: Vec<String> = (0..things).map(thing).collect();
    let mut served = Vec::with_capacity(things);
    let rss_before = vm_rss_kib()?;
    let begin = Instant::now();
    for name in &names {
        served.push(Jobs::new(&client, name)?);
    }
    let construct = begin.elapsed();
    let rss_after = vm_rss_kib()?;
    let subscribed = counters(&broker, GATEWAY)?;

    // The sweep: every thing listed once, at the client's pace.
    let before = counters(&broker, GATEWAY)?;
    let (mut pending, mut failed) = (0, 0);
    let begin = Instant::now();
    Sweep::new(served.iter().cloned()).run(SWEEP_IN_FLIGHT, |swept| {
        match swept.pending {
            Ok(jobs) => pending += jobs.len(),
            Err(_) => failed += 1,
        }
        ControlFlow::Continue(())
    });
    let sweep = begin.elapsed();
    let after_sweep = counters(&broker, GATEWAY)?;

    // One runner for every thing; the job's executions must each run once and end SUCCEEDED.
    let runs: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let (ended_tx, ended) = crossbeam_channel::unbounded();
    let mut builder = Runner::builder(&served[0]).things(&served[1..]);
    builder = builder
        .handler("install", {
            let runs = Arc::clone(&runs);
            move |ctx| {
                *runs.lock().entry(ctx.thing_name().to_string()).or_default() += 1;
                Ok(Outcome::succeeded())
            }
        })
        .on_ended(move |e| {
            let _ = ended_tx.send(e.clone());
        });
    let runner = builder.build()?;
    let stop = runner.stop_handle();
    let begin = Instant::now();
    let running = std::thread::spawn(move || runner.run());
    // The runner lists every thing, then spends about 3.5 tokens per execution (start-next,
    // update, a listing, half a token for the event its end brings back): it may take twice
    // that at the pace, and a minute more, before the bench gives up.
    let tokens = things as f64 + 3.5 * targets.len() as f64;
    let deadline = begin + Duration::from_secs_f64(2.0 * tokens / rate.rate() + 60.0);
    let mut endings = Vec::with_capacity(targets.len());
    let mut first_ending = None;
    while endings.len() < targets.len() {
        match ended.recv_deadline(deadline) {
            Ok(e) => endings.push(e),
            Err(_) => break,
        }
        first_ending.get_or_insert_with(|| begin.elapsed());
    }
    let runner_time = begin.elapsed();
    stop.stop();
    running
        .join()
        .map_err(|_| BoxError::from("the runner panicked"))??;
    let runner_total = begin.elapsed();
    let after_runner = counters(&broker, GATEWAY)?;
    let runs = runs.lock();
    let job = JobId::new("gateway-fw")?;
    let mut exactly_once = 0;
    for &n in &targets {
        let name = thing(n);
        let ended_once = endings
            .iter()
            .filter(|e| e.thing_name.as_str() == name)
            .map(|e| &e.ending)
            .collect::<Vec<_>>();
        let status = simulator
            .execution(&ThingName::new(name.as_str())?, &job)
            .map(|e| e.status);
        if runs.get(&name) == Some(&1)
            && ended_once == [&Ending::Reported(JobStatus::Succeeded)]
            && status == Some(JobStatus::Succeeded)
        {
            exactly_once += 1;
        }
    }
    let extra_runs = runs.len() > targets.len();
    drop(runs);
    if extra_runs {
        return Err("the runner ran a thing the job does not target".into());
    }
    for jobs in served.drain(..) {
        drop(jobs);
    }

    let (refused_at, per_thing_error) = per_thing_budget(&uri)?;
    let limiter = limiter_cost(config, &uri, rate)?;

    Ok(Gateway {
        scale,
        quota_per_second: quota,
        budget_per_second: rate.rate(),
        burst: rate.burst(),
        things,
        subscriptions: client.subscription_count(),
        broker_subscriptions: subscribed.subscriptions,
        subscribe_refused: subscribed.subscribe_refused,
        construct_ms: construct.as_secs_f64() * 1000.0,
        rss_growth_kib: rss_after - rss_before,
        sweep_s: sweep.as_secs_f64(),
        sweep_pending: pending,
        sweep_failed: failed,
        sweep_discarded: after_sweep.discarded() - before.discarded(),
        job_things: targets.len(),
        exactly_once,
        runner_first_s: first_ending.map_or(f64::NAN, |t| t.as_secs_f64()),
        runner_s: runner_time.as_secs_f64(),
        runner_total_s: runner_total.as_secs_f64(),
        runner_discarded: after_runner.discarded() - after_sweep.discarded(),
        runner_requests: after_runner.published - after_sweep.published,
        per_thing_refused_at: refused_at,
        per_thing_error,
        limiter,
    })
}

/// A client over Paho told AWS IoT Core's limits, with `rate` for its pace.
fn gateway_client(
    uri: &str,
    client_id: &str,
    rate: Option<PublishRate>,
) -> Result<Client, BoxError> {
    Ok(Client::builder(
        PahoTransport::builder(uri, client_id)
            .operation_timeout(Duration::from_secs(10))
            .broker_limits(BrokerLimits::AWS_IOT)
            .build()?,
    )
    .subscriptions(Subscriptions::GatewayWildcards { notify: false })
    .publish_rate(rate)
    .build()?)
}

fn counters(broker: &LocalBroker, client_id: &str) -> Result<QuotaCounters, BoxError> {
    Ok(broker.quota_report()?.client(client_id))
}

/// The per-thing strategy within AWS's 50 subscriptions: the thing it refuses (1-based) and
/// the error.
fn per_thing_budget(uri: &str) -> Result<(Option<usize>, String), BoxError> {
    let client = Client::new(
        PahoTransport::builder(uri, "bench-per-thing")
            .broker_limits(BrokerLimits::AWS_IOT)
            .build()?,
    )?;
    let mut served = Vec::new();
    for n in 0..50 {
        match Jobs::new(&client, thing(n)) {
            Ok(jobs) => served.push(jobs),
            Err(error @ Error::InvalidInput(InvalidInput::SubscriptionBudget { .. })) => {
                return Ok((Some(n + 1), error.to_string()));
            }
            Err(error) => return Err(error.into()),
        }
    }
    Ok((None, "no refusal".into()))
}

/// The limiter's cost under budget: two connections, one paced at `rate` and one unpaced,
/// calling `list` in turn on one thread (the order flips every call), each at half the paced
/// rate so that a token is always there. Returns each round's p50 (µs) with and without,
/// the p50s over all rounds, and the calls a second each side made.
fn limiter_cost(config: &Config, uri: &str, rate: PublishRate) -> Result<Limiter, BoxError> {
    let paced = gateway_client(uri, "bench-paced", Some(rate))?;
    let unpaced = gateway_client(uri, "bench-unpaced", None)?;
    let paced = Jobs::new(&paced, "limiter-paced")?;
    let unpaced = Jobs::new(&unpaced, "limiter-unpace")?;
    let per_second = rate.rate() / 2.0;
    let interval = Duration::from_secs_f64(1.0 / per_second);
    let calls = config.gateway_calls_per_round;
    let timed = |jobs: &Jobs, nanos: &mut Vec<u64>| -> Result<(), BoxError> {
        let begin = Instant::now();
        jobs.list()?;
        nanos.push(begin.elapsed().as_nanos() as u64);
        Ok(())
    };
    let round = || -> Result<(Vec<u64>, Vec<u64>), BoxError> {
        let (mut with, mut without) = (Vec::with_capacity(calls), Vec::with_capacity(calls));
        let start = Instant::now();
        for k in 0..calls {
            // An open-loop schedule: the k-th pair at start + k × interval.
            let due = start + interval.mul_f64(k as f64);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
            if k % 2 == 0 {
                timed(&paced, &mut with)?;
                timed(&unpaced, &mut without)?;
            } else {
                timed(&unpaced, &mut without)?;
                timed(&paced, &mut with)?;
            }
        }
        with.sort_unstable();
        without.sort_unstable();
        Ok((with, without))
    };
    // One unrecorded round first.
    round()?;
    let (mut all_with, mut all_without) = (Vec::new(), Vec::new());
    let mut rounds = Vec::new();
    for _ in 0..config.rounds.max(2) {
        let (with, without) = round()?;
        rounds.push((percentile(&with, 0.5), percentile(&without, 0.5)));
        all_with.extend(with);
        all_without.extend(without);
    }
    all_with.sort_unstable();
    all_without.sort_unstable();
    Ok(Limiter {
        rounds,
        p50_with: percentile(&all_with, 0.5),
        p50_without: percentile(&all_without, 0.5),
        calls_per_second: per_second,
    })
}

//! Part 3: a fleet of things (one `Jobs` each) sharing one connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{Client, JobId, Jobs, ThingName};
use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator};
use jobs_paho::PahoTransport;

use crate::inprocess::small_document;
use crate::stats::percentile;
use crate::{BoxError, Config};

/// Results of part 3.
#[derive(Debug)]
pub(crate) struct Fleet {
    pub(crate) things: usize,
    /// Constructing (and subscribing) every `Jobs`, one after the other.
    pub(crate) construct_ms: f64,
    /// VmRSS growth over the construction, in KiB.
    pub(crate) rss_growth_kib: i64,
    /// From `create_job` for every thing to each thing's first event: p50, p99, last, in ms.
    pub(crate) fanout_p50_ms: f64,
    pub(crate) fanout_p99_ms: f64,
    pub(crate) fanout_last_ms: f64,
    /// How long the simulator took to publish the 2 × N events.
    pub(crate) publish_ms: f64,
}

/// The process's resident set size in KiB, from `/proc/self/status`.
pub(crate) fn vm_rss_kib() -> Result<i64, BoxError> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| "no VmRSS in /proc/self/status".into())
}

/// Builds `config.things` Jobs over one connection, then creates one job for all of them and
/// times the notifications.
pub(crate) fn run(config: &Config, uri: &str) -> Result<Fleet, BoxError> {
    let simulator = Simulator::start(
        Arc::new(
            PahoTransport::builder(uri, "bench-fleet-sim")
                .operation_timeout(Duration::from_secs(10))
                .build()?,
        ),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )?;
    let client = Client::new(
        PahoTransport::builder(uri, "bench-fleet")
            .operation_timeout(Duration::from_secs(10))
            .build()?,
    )?;
    let names: Vec<String> = (0..config.things)
        .map(|i| format!("fleet-{i:05}"))
        .collect();
    let mut fleet = Vec::with_capacity(names.len());

    let rss_before = vm_rss_kib()?;
    let begin = Instant::now();
    for name in &names {
        fleet.push(Jobs::new(&client, name)?);
    }
    let construct = begin.elapsed();
    let rss_after = vm_rss_kib()?;

    let things = names
        .iter()
        .map(|n| ThingName::new(n.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let spec = JobSpec::new(JobId::new("fleet-wide")?, small_document()?).things(things);
    let begin = Instant::now();
    let mut arrivals = Vec::with_capacity(fleet.len());
    let publish = std::thread::scope(|scope| {
        let publisher = scope.spawn(|| {
            simulator.create_job(spec)?;
            Ok::<_, BoxError>(begin.elapsed())
        });
        for jobs in &fleet {
            if jobs
                .with_timeout(Duration::from_secs(30))
                .next_event()?
                .is_none()
            {
                return Err::<_, BoxError>(format!("{}: no event", jobs.thing_name()).into());
            }
            arrivals.push(begin.elapsed().as_nanos() as u64);
        }
        publisher
            .join()
            .map_err(|_| BoxError::from("publisher panicked"))?
    })?;
    arrivals.sort_unstable();
    let ms = |us: f64| us / 1000.0;
    Ok(Fleet {
        things: fleet.len(),
        construct_ms: construct.as_secs_f64() * 1000.0,
        rss_growth_kib: rss_after - rss_before,
        fanout_p50_ms: ms(percentile(&arrivals, 0.50)),
        fanout_p99_ms: ms(percentile(&arrivals, 0.99)),
        fanout_last_ms: ms(percentile(&arrivals, 1.0)),
        publish_ms: publish.as_secs_f64() * 1000.0,
    })
}

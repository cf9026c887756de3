//! Part 1: the library against the Jobs simulator on the in-memory `MockBroker`.

mod baseline;

pub(crate) use baseline::Comparison;

use jobs_core::{Client, Document, JobId, JobStatus, Jobs, StatusDetails, ThingName};
use jobs_mock::MockBroker;
use jobs_mock::service::{Clock, JobSpec, JobsService, Simulator};

use crate::stats::{self, Sample};
use crate::{BoxError, Config};

/// The thing every in-process call talks about.
const THING: &str = "bench-device";
/// The size of the large document (the "32 KB" of the describe measurement and the profile).
const LARGE_DOCUMENT_BYTES: usize = 32 * 1024;

/// One benchmarked operation, made fresh on each thread.
type Op = Box<dyn FnMut() -> Result<(), BoxError>>;
/// Makes the operation of one thread.
type MakeOp<'a> = dyn Fn() -> Result<Op, BoxError> + Sync + 'a;

/// Results of part 1.
#[derive(Debug)]
pub(crate) struct InProcess {
    pub(crate) describe: Vec<Sample>,
    pub(crate) update: Vec<Sample>,
    pub(crate) list: Vec<Sample>,
    pub(crate) describe_large: Vec<Sample>,
    pub(crate) large_document_bytes: usize,
    /// The targets' comparisons (see [`baseline`]), one thread.
    pub(crate) ratios: Ratios,
}

/// The library against same-run baselines, in alternating rounds.
#[derive(Debug, Default)]
pub(crate) struct Ratios {
    /// Time per side per round.
    pub(crate) slice: std::time::Duration,
    /// Describe of the small job ÷ bare round trip with a reply of its size.
    pub(crate) describe: Comparison,
    /// Describe of the 32 KB job ÷ bare round trip with a reply of its size.
    pub(crate) describe_large: Comparison,
    /// Decoding the 32 KB describe reply ÷ one `RawValue` parse of it.
    pub(crate) decode_large: Comparison,
    /// The size of that reply.
    pub(crate) reply_large_bytes: usize,
}

/// A small document, as most jobs carry.
pub(crate) fn small_document() -> Result<Document, BoxError> {
    Ok(Document::from_json(
        r#"{"action":"rotate-logs","keep":5,"url":"https://example.com/logs"}"#,
    )?)
}

/// A structured document of about `bytes` bytes: an object with nested steps, arrays, numbers
/// and strings, as a firmware manifest would be.
pub(crate) fn large_document(bytes: usize) -> Result<Document, BoxError> {
    let mut steps = Vec::new();
    let mut size = 0;
    let mut i = 0;
    while size < bytes {
        let step = serde_json::json!({
            "id": i,
            "name": format!("step-{i:04}"),
            "action": if i % 3 == 0 { "download" } else { "verify" },
            "url": format!("https://updates.example.com/firmware/2.4.0/part-{i:04}.bin"),
            "sha256": format!("{:064x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15)),
            "retries": {"max": 3, "backoffMs": [100, 200, 400]},
            "critical": i % 5 == 0,
        });
        size += step.to_string().len() + 1;
        steps.push(step);
        i += 1;
    }
    let document = serde_json::json!({
        "operation": "install-firmware",
        "version": "2.4.0",
        "steps": steps,
    });
    Ok(Document::from_serialize(&document)?)
}

/// Sets up broker, simulator, client and one `Jobs` with two jobs, runs every measurement.
pub(crate) fn run(config: &Config) -> Result<InProcess, BoxError> {
    let broker = MockBroker::new();
    broker.set_recording(false);
    let simulator = Simulator::start_inline(
        broker.connect("jobs-service"),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )?;
    let thing = ThingName::new(THING)?;
    simulator
        .create_job(JobSpec::new(JobId::new("small")?, small_document()?).thing(thing.clone()))?;
    let large = large_document(LARGE_DOCUMENT_BYTES)?;
    let large_document_bytes = large.as_json().len();
    simulator.create_job(JobSpec::new(JobId::new("large")?, large).thing(thing))?;

    let client = Client::new(broker.connect("bench-client"))?;
    let jobs = Jobs::new(&client, THING)?;
    // Leave the "small" job IN_PROGRESS so updates to IN_PROGRESS are legal repeatedly.
    jobs.job("small")?.update(JobStatus::InProgress, None)?;
    let details = StatusDetails::from_pairs([("progress", "42")])?;

    let mut result = InProcess {
        describe: Vec::new(),
        update: Vec::new(),
        list: Vec::new(),
        describe_large: Vec::new(),
        large_document_bytes,
        ratios: Ratios::default(),
    };
    for &threads in &config.threads {
        let measure = |make: &MakeOp<'_>| {
            let (nanos, wall) = stats::run(threads, config.warmup, config.time, |_| make())?;
            Ok::<_, BoxError>(Sample::from_latencies(threads, nanos, wall))
        };
        result.describe.push(measure(&|| {
            let mut job = jobs.job("small")?;
            Ok(Box::new(move || Ok(job.describe()?)))
        })?);
        result.update.push(measure(&|| {
            let mut job = jobs.job("small")?;
            let details = details.clone();
            Ok(Box::new(move || {
                Ok(job.update(JobStatus::InProgress, Some(&details))?)
            }))
        })?);
        result.list.push(measure(&|| {
            let jobs = jobs.clone();
            Ok(Box::new(move || {
                jobs.list()?;
                Ok(())
            }))
        })?);
        result.describe_large.push(measure(&|| {
            let mut job = jobs.job("large")?;
            Ok(Box::new(move || Ok(job.describe()?)))
        })?);
    }
    result.ratios = ratios(config, &broker, &jobs)?;
    drop(simulator);
    Ok(result)
}

/// The comparisons of the targets, on `jobs` (whose simulator on `broker` holds the jobs
/// "small" and "large").
fn ratios(config: &Config, broker: &MockBroker, jobs: &Jobs) -> Result<Ratios, BoxError> {
    let (rounds, slice) = (config.rounds, config.compare_time / (2 * config.rounds));
    let compare = |job: &str, request: Vec<u8>, reply: Vec<u8>| {
        let bare = baseline::Bare::new(THING, job, request, reply)?;
        let mut job = jobs.job(job)?;
        baseline::compare(rounds, slice, &mut || Ok(job.describe()?), &mut || {
            bare.round_trip()
        })
    };
    let (request, reply) = baseline::capture(broker, jobs, "small")?;
    let describe = compare("small", request, reply)?;
    let (request, reply) = baseline::capture(broker, jobs, "large")?;
    let describe_large = compare("large", request, reply.clone())?;
    let text = std::str::from_utf8(&reply)?;
    let decode_large =
        baseline::compare(rounds, slice, &mut || baseline::decode(&reply), &mut || {
            baseline::parse(text)
        })?;
    Ok(Ratios {
        slice,
        describe,
        describe_large,
        decode_large,
        reply_large_bytes: reply.len(),
    })
}

/// `--profile N`: N describes of the small job on one thread, nothing else timed.
/// Which document [`profile`] describes.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Size {
    Small,
    /// The 32 KB document of the `in-process describe 32 KB` rows.
    Large,
}

pub(crate) fn profile(calls: u64, size: Size) -> Result<(), BoxError> {
    let broker = MockBroker::new();
    broker.set_recording(false);
    let simulator = Simulator::start_inline(
        broker.connect("jobs-service"),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )?;
    let document = match size {
        Size::Small => small_document()?,
        Size::Large => large_document(LARGE_DOCUMENT_BYTES)?,
    };
    simulator
        .create_job(JobSpec::new(JobId::new("job")?, document).thing(ThingName::new(THING)?))?;
    let client = Client::new(broker.connect("bench-client"))?;
    let jobs = Jobs::new(&client, THING)?;
    let mut job = jobs.job("job")?;
    let begin = std::time::Instant::now();
    for _ in 0..calls {
        job.describe()?;
    }
    let elapsed = begin.elapsed();
    println!(
        "{calls} describes in {elapsed:?}: {:.0} calls/s",
        calls as f64 / elapsed.as_secs_f64()
    );
    Ok(())
}

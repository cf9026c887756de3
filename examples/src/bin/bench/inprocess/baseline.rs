//! The in-process targets as ratios to baselines measured in the same run, side by side.
//!
//! Absolute calls/s in process say as much about the machine (and whatever else runs on it) as
//! about the library, so every in-process target compares the library with a baseline doing
//! the least the same job needs, on one thread, in alternating rounds (the order flips every
//! round) so that load and clock changes fall on both alike. Time is the measuring thread's
//! time on a CPU (`/proc/thread-self/schedstat`, so that time other processes take the CPU
//! away counts for neither side; wall time where that file is missing):
//!
//! - **describe ÷ bare round trip**: a [`Job::describe`](jobs_core::Job::describe) against
//!   the inline simulator, against a bare request/reply on a `MockBroker` of its own: the same
//!   request bytes (recorded from one describe) published on the same topic, a responder whose
//!   sink publishes the recorded reply bytes back, a sink that keeps a copy of them for the
//!   caller. No JSON is read or written on the baseline side.
//! - **decode ÷ parse**: taking in the recorded describe reply as the client does,
//!   `serde_json::from_slice::<ExecutionReply>` with the check of the document, against one
//!   `serde_json::from_str::<&RawValue>` over the same bytes: the parse every reply needs
//!   anyway.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::model::ExecutionReply;
use jobs_core::{ConnectionEvent, Jobs, MessageSink, MqttTransport, QoS};
use jobs_mock::{MockBroker, MockTransport};
use parking_lot::Mutex;
use serde_json::value::RawValue;

use crate::BoxError;

/// Calls made between two looks at the clock.
const BATCH: u32 = 16;

/// One comparison: per round, the mean time per call of the library and of the baseline.
#[derive(Debug, Clone, Default)]
pub(crate) struct Comparison {
    /// Library and baseline nanoseconds per call, one pair per round.
    pub(crate) rounds: Vec<(f64, f64)>,
    /// Whether the times are on-CPU times (else wall times).
    pub(crate) on_cpu: bool,
}

impl Comparison {
    /// Library ÷ baseline time per call, per round.
    pub(crate) fn ratios(&self) -> Vec<f64> {
        self.rounds.iter().map(|(l, b)| l / b).collect()
    }

    /// The median of [`ratios`](Self::ratios) (NaN without rounds).
    pub(crate) fn ratio(&self) -> f64 {
        median(self.ratios())
    }

    /// The median library time per call, in microseconds.
    pub(crate) fn library_us(&self) -> f64 {
        median(self.rounds.iter().map(|(l, _)| l / 1000.0).collect())
    }

    /// The median baseline time per call, in microseconds.
    pub(crate) fn baseline_us(&self) -> f64 {
        median(self.rounds.iter().map(|(_, b)| b / 1000.0).collect())
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    match values.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => values[n / 2],
        n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
    }
}

/// An operation measured on the calling thread.
pub(crate) type Op<'a> = &'a mut dyn FnMut() -> Result<(), BoxError>;

/// Runs `library` and `baseline` for `slice` each per round, `rounds` times, alternating which
/// goes first, after one unrecorded slice of each.
pub(crate) fn compare(
    rounds: u32,
    slice: Duration,
    library: Op<'_>,
    baseline: Op<'_>,
) -> Result<Comparison, BoxError> {
    per_call(slice, library)?;
    per_call(slice, baseline)?;
    let mut comparison = Comparison {
        rounds: Vec::new(),
        on_cpu: on_cpu_ns().is_some(),
    };
    for round in 0..rounds {
        let (l, b) = if round % 2 == 0 {
            let l = per_call(slice, library)?;
            (l, per_call(slice, baseline)?)
        } else {
            let b = per_call(slice, baseline)?;
            (per_call(slice, library)?, b)
        };
        comparison.rounds.push((l, b));
    }
    Ok(comparison)
}

/// Calls `op` for at least `slice` of wall time (whole batches) and returns the mean
/// nanoseconds per call: on-CPU time when [`on_cpu_ns`] has it, else wall time.
fn per_call(slice: Duration, op: Op<'_>) -> Result<f64, BoxError> {
    let cpu = on_cpu_ns();
    let begin = Instant::now();
    let mut calls = 0u64;
    loop {
        for _ in 0..BATCH {
            op()?;
        }
        calls += u64::from(BATCH);
        let elapsed = begin.elapsed();
        if elapsed >= slice {
            let nanos = match (cpu, on_cpu_ns()) {
                (Some(from), Some(to)) => to.saturating_sub(from) as f64,
                _ => elapsed.as_nanos() as f64,
            };
            return Ok(nanos / calls as f64);
        }
    }
}

/// The calling thread's time on a CPU so far, in nanoseconds (Linux; the kernel updates it at
/// least every scheduler tick, a few milliseconds, against slices of a quarter second).
fn on_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The request topic of a describe of `job` for `thing`.
fn describe_topic(thing: &str, job: &str) -> String {
    format!("$aws/things/{thing}/jobs/{job}/get")
}

/// The request and the reply of one describe of `job`, as `broker` carried them (recording
/// is on only for that call).
pub(crate) fn capture(
    broker: &MockBroker,
    jobs: &Jobs,
    job: &str,
) -> Result<(Vec<u8>, Vec<u8>), BoxError> {
    broker.set_recording(true);
    let described = jobs.job(job).and_then(|mut job| job.describe());
    let topic = describe_topic(jobs.thing_name().as_str(), job);
    let last = |topic: &str| broker.published_on(topic).pop().map(|p| p.payload);
    let (request, reply) = (last(&topic), last(&format!("{topic}/accepted")));
    broker.set_recording(false);
    described?;
    Ok((
        request.ok_or("no describe request recorded")?,
        reply.ok_or("no describe reply recorded")?,
    ))
}

/// [`ExecutionReply`] as the client decodes it, document check included.
pub(crate) fn decode(reply: &[u8]) -> Result<(), BoxError> {
    black_box(serde_json::from_slice::<ExecutionReply>(black_box(reply))?);
    Ok(())
}

/// The parse every reply needs anyway.
pub(crate) fn parse(reply: &str) -> Result<(), BoxError> {
    black_box(serde_json::from_str::<&RawValue>(black_box(reply))?);
    Ok(())
}

/// A bare request/reply over a `MockBroker` of its own: no JSON, no correlation.
pub(crate) struct Bare {
    _broker: MockBroker,
    client: MockTransport,
    responder: MockTransport,
    topic: String,
    request: Vec<u8>,
    received: Arc<Mutex<Option<Vec<u8>>>>,
}

impl Bare {
    /// A client that publishes `request` on the describe topic of `thing`'s `job`, and a
    /// responder that answers every request with `reply`.
    pub(crate) fn new(
        thing: &str,
        job: &str,
        request: Vec<u8>,
        reply: Vec<u8>,
    ) -> Result<Self, BoxError> {
        let broker = MockBroker::new();
        broker.set_recording(false);
        let deadline = || Instant::now() + Duration::from_secs(5);
        let topic = describe_topic(thing, job);
        let accepted = format!("{topic}/accepted");

        let responder = broker.connect("bare-responder");
        responder.set_sink(Arc::new(Responder {
            transport: responder.clone(),
            topic: accepted.clone(),
            reply,
        }))?;
        responder.subscribe(&[&topic], QoS::AtLeastOnce, deadline())?;

        let client = broker.connect("bare-client");
        let received = Arc::new(Mutex::new(None));
        client.set_sink(Arc::new(Keep(Arc::clone(&received))))?;
        client.subscribe(&[&accepted], QoS::AtLeastOnce, deadline())?;
        Ok(Self {
            _broker: broker,
            client,
            responder,
            topic,
            request,
            received,
        })
    }

    /// Publishes the request and takes the reply the broker delivered before `publish`
    /// returned.
    pub(crate) fn round_trip(&self) -> Result<(), BoxError> {
        let deadline = Instant::now() + Duration::from_secs(5);
        self.client
            .publish(&self.topic, &self.request, QoS::AtLeastOnce, deadline)?;
        let reply = self.received.lock().take().ok_or("no reply")?;
        black_box(reply);
        Ok(())
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        // The responder's sink holds a clone of its transport: disconnecting drops it.
        self.responder.disconnect();
        self.client.disconnect();
    }
}

/// Answers every request with the same bytes.
struct Responder {
    transport: MockTransport,
    topic: String,
    reply: Vec<u8>,
}

impl MessageSink for Responder {
    fn message(&self, _topic: &str, _payload: &[u8]) {
        let deadline = Instant::now() + Duration::from_secs(5);
        if let Err(error) =
            self.transport
                .publish(&self.topic, &self.reply, QoS::AtLeastOnce, deadline)
        {
            log::warn!("bare responder: {error}");
        }
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

/// Keeps a copy of the last message, as the client's sink does with a reply.
struct Keep(Arc<Mutex<Option<Vec<u8>>>>);

impl MessageSink for Keep {
    fn message(&self, _topic: &str, payload: &[u8]) {
        *self.0.lock() = Some(payload.to_vec());
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

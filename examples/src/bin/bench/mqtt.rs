//! Part 2: describe over a local mosquitto through jobs-paho, against a raw paho-mqtt
//! baseline doing the same exchange with no library code, through the pure-Rust rumqttc
//! transport (the port in `examples::rumqttc_transport`), and against a slow responder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use examples::rumqttc_transport::{RumqttcTransport, Settings};
use jobs_core::{Client, JobId, Jobs, ThingName};
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::service::{Clock, JobSpec, JobsService, Outgoing, REQUEST_FILTERS, Simulator};
use jobs_paho::PahoTransport;
use paho_mqtt as paho;
use serde::Deserialize;

use crate::inprocess::small_document;
use crate::stats::{self, Sample};
use crate::{BoxError, Config};

/// The thing the library talks about, and the raw baseline's (same length: same topic sizes).
const LIB_THING: &str = "bench-lib-0001";
const RAW_THING: &str = "bench-raw-0001";
const SLOW_THING: &str = "bench-slo-0001";
const RUMQTTC_THING: &str = "bench-rmq-0001";
/// Bound on every wait.
const WAIT: Duration = Duration::from_secs(10);
/// How long the slow responder holds each reply.
pub(crate) const HOLD: Duration = Duration::from_millis(1);

/// Results of part 2, one sample per thread count of `Config::threads`.
#[derive(Debug)]
pub(crate) struct OverBroker {
    pub(crate) library: Vec<Sample>,
    pub(crate) raw: Vec<Sample>,
    /// The library over the rumqttc transport instead of jobs-paho.
    pub(crate) rumqttc: Vec<Sample>,
    pub(crate) slow: Vec<Sample>,
}

/// Runs every part-2 measurement against `broker`.
pub(crate) fn run(config: &Config, broker: &LocalBroker) -> Result<OverBroker, BoxError> {
    let uri = broker.uri();
    let (library, raw, rumqttc) = compare(config, broker)?;
    let slow = slow_responder(config, &uri)?;
    Ok(OverBroker {
        library,
        raw,
        rumqttc,
        slow,
    })
}

fn paho_transport(uri: &str, client_id: &str) -> Result<PahoTransport, BoxError> {
    Ok(PahoTransport::builder(uri, client_id)
        .operation_timeout(WAIT)
        .build()?)
}

/// One sample per thread count.
type Series = Vec<Sample>;

/// Library over jobs-paho, raw baseline and library over rumqttc, interleaved in rounds so
/// that all three see the same machine.
fn compare(config: &Config, broker: &LocalBroker) -> Result<(Series, Series, Series), BoxError> {
    let uri = &broker.uri();
    let simulator = Simulator::start(
        Arc::new(paho_transport(uri, "bench-sim")?),
        JobsService::new(Clock::virtual_at(1_750_000_000)),
    )?;
    simulator.create_job(
        JobSpec::new(JobId::new("small")?, small_document()?)
            .thing(ThingName::new(LIB_THING)?)
            .thing(ThingName::new(RAW_THING)?)
            .thing(ThingName::new(RUMQTTC_THING)?),
    )?;
    let client = Client::new(paho_transport(uri, "bench-lib")?)?;
    let jobs = Jobs::new(&client, LIB_THING)?;
    let raw = Raw::connect(uri, "bench-raw", RAW_THING)?;
    let rumqttc_client = Client::new(RumqttcTransport::connect(Settings::new(
        "127.0.0.1",
        broker.port(),
        "bench-rumqttc",
    ))?)?;
    let rumqttc_jobs = Jobs::new(&rumqttc_client, RUMQTTC_THING)?;

    let rounds = config.rounds;
    let slice = config.compare_time / rounds;
    let mut library = Vec::new();
    let mut baseline = Vec::new();
    let mut rumqttc = Vec::new();
    for &threads in &config.threads {
        let mut lib_nanos = Vec::new();
        let mut raw_nanos = Vec::new();
        let mut rumqttc_nanos = Vec::new();
        let (mut lib_wall, mut raw_wall, mut rumqttc_wall) =
            (Duration::ZERO, Duration::ZERO, Duration::ZERO);
        for round in 0..rounds {
            let warmup = if round == 0 {
                config.warmup
            } else {
                Duration::ZERO
            };
            let (nanos, wall) = stats::run(threads, warmup, slice, |_| {
                let mut job = jobs.job("small")?;
                Ok(move || Ok(job.describe()?))
            })?;
            lib_nanos.extend(nanos);
            lib_wall += wall;
            let (nanos, wall) = stats::run(threads, warmup, slice, |_| {
                let (tx, rx) = crossbeam_channel::bounded(1);
                let raw = &raw;
                Ok(move || raw.describe(&tx, &rx))
            })?;
            raw_nanos.extend(nanos);
            raw_wall += wall;
            let (nanos, wall) = stats::run(threads, warmup, slice, |_| {
                let mut job = rumqttc_jobs.job("small")?;
                Ok(move || Ok(job.describe()?))
            })?;
            rumqttc_nanos.extend(nanos);
            rumqttc_wall += wall;
        }
        library.push(Sample::from_latencies(threads, lib_nanos, lib_wall));
        baseline.push(Sample::from_latencies(threads, raw_nanos, raw_wall));
        rumqttc.push(Sample::from_latencies(threads, rumqttc_nanos, rumqttc_wall));
    }
    drop(jobs);
    drop(client);
    drop(rumqttc_jobs);
    drop(rumqttc_client);
    drop(raw);
    drop(simulator);
    Ok((library, baseline, rumqttc))
}

/// The raw baseline: one paho-mqtt connection, a message callback on Paho's thread that
/// routes each reply by its `clientToken` to the waiting thread's channel. No library code.
struct Raw {
    client: paho::AsyncClient,
    topic: String,
    waiting: Arc<Mutex<HashMap<String, Sender<Vec<u8>>>>>,
    prefix: String,
    counter: AtomicU64,
}

#[derive(Deserialize)]
struct TokenOnly<'a> {
    #[serde(rename = "clientToken", borrow)]
    client_token: Option<std::borrow::Cow<'a, str>>,
}

impl Raw {
    fn connect(uri: &str, client_id: &str, thing: &str) -> Result<Self, BoxError> {
        let create = paho::CreateOptionsBuilder::new_v3()
            .server_uri(uri)
            .client_id(client_id)
            .finalize();
        let client = paho::AsyncClient::new(create)?;
        let waiting: Arc<Mutex<HashMap<String, Sender<Vec<u8>>>>> = Arc::default();
        let routes = Arc::clone(&waiting);
        client.set_message_callback(move |_, message| {
            let Some(message) = message else { return };
            let Ok(TokenOnly {
                client_token: Some(token),
            }) = serde_json::from_slice(message.payload())
            else {
                return;
            };
            let sender = routes
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(token.as_ref());
            if let Some(sender) = sender {
                let _ = sender.try_send(message.payload().to_vec());
            }
        });
        let connect = paho::ConnectOptionsBuilder::new_v3()
            .clean_session(true)
            .finalize();
        client.connect(connect).wait_for(WAIT)?;
        let topic = format!("$aws/things/{thing}/jobs/small/get");
        let replies = [format!("{topic}/accepted"), format!("{topic}/rejected")];
        client.subscribe_many_same_qos(&replies, 1).wait_for(WAIT)?;
        Ok(Self {
            client,
            topic,
            waiting,
            prefix: format!("{:016x}", u64::from(std::process::id()) << 20 | 0xbe7c4),
            counter: AtomicU64::new(0),
        })
    }

    /// Publishes the library's describe payload under a fresh token and waits for the reply.
    fn describe(&self, tx: &Sender<Vec<u8>>, rx: &Receiver<Vec<u8>>) -> Result<(), BoxError> {
        let n = self.counter.fetch_add(1, Ordering::Relaxed);
        let token = format!("{}-{n:x}", self.prefix);
        let payload = format!(r#"{{"includeJobDocument":true,"clientToken":"{token}"}}"#);
        self.waiting
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token, tx.clone());
        let message = paho::Message::new(self.topic.as_str(), payload, 1);
        self.client.publish(message).wait_for(WAIT)?;
        let reply = rx.recv_timeout(WAIT)?;
        if !reply.starts_with(b"{") {
            return Err("raw baseline: unexpected reply".into());
        }
        Ok(())
    }
}

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = self.client.disconnect(None).wait_for(WAIT);
    }
}

/// The 1 ms responder: the simulator's `JobsService` on a raw Paho connection of its own. The
/// message callback computes each answer at once and queues it; one timer thread publishes
/// each answer [`HOLD`] after its request arrived, without waiting for the PUBACK, so a reply
/// is late by 1 ms without delaying any other reply (a service with 1 ms of latency). It costs
/// the shared CPU less than the threaded `Simulator` plus a pool of sleeping publishers.
struct HeldResponder {
    client: paho::AsyncClient,
    stop: Arc<AtomicBool>,
    timer: Option<JoinHandle<()>>,
}

impl HeldResponder {
    fn start(uri: &str, mut service: JobsService, setup: JobSpec) -> Result<Self, BoxError> {
        let create = paho::CreateOptionsBuilder::new_v3()
            .server_uri(uri)
            .client_id("bench-held")
            .finalize();
        let client = paho::AsyncClient::new(create)?;
        // No device is subscribed yet: the events of the set-up job go nowhere.
        drop(service.create_job(setup)?);
        let service = Mutex::new(service);
        let (queue, due) = crossbeam_channel::unbounded::<(Instant, Vec<Outgoing>)>();
        client.set_message_callback(move |_, message| {
            let Some(message) = message else { return };
            let out = service
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .handle(message.topic(), message.payload());
            let _ = queue.send((Instant::now() + HOLD, out));
        });
        let connect = paho::ConnectOptionsBuilder::new_v3()
            .clean_session(true)
            .finalize();
        client.connect(connect).wait_for(WAIT)?;
        client
            .subscribe_many_same_qos(&REQUEST_FILTERS, 1)
            .wait_for(WAIT)?;
        let stop = Arc::new(AtomicBool::new(false));
        let timer = {
            let (client, stop) = (client.clone(), Arc::clone(&stop));
            std::thread::Builder::new()
                .name("held-responder".into())
                .spawn(move || {
                    while !stop.load(Ordering::Acquire) {
                        let Ok((at, out)) = due.recv_timeout(Duration::from_millis(50)) else {
                            continue;
                        };
                        // A workload, not synchronisation: the emulated service latency.
                        let left = at.saturating_duration_since(Instant::now());
                        if !left.is_zero() {
                            std::thread::sleep(left);
                        }
                        for message in out {
                            // Not awaited: the PUBACK would only hold up the next reply.
                            drop(client.publish(paho::Message::new(
                                message.topic,
                                message.payload,
                                1,
                            )));
                        }
                    }
                })?
        };
        Ok(Self {
            client,
            stop,
            timer: Some(timer),
        })
    }
}

impl Drop for HeldResponder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(timer) = self.timer.take() {
            let _ = timer.join();
        }
        let _ = self.client.disconnect(None).wait_for(WAIT);
    }
}

/// The library against the responder that holds each reply 1 ms.
fn slow_responder(config: &Config, uri: &str) -> Result<Vec<Sample>, BoxError> {
    let responder = HeldResponder::start(
        uri,
        JobsService::new(Clock::virtual_at(1_750_000_000)),
        JobSpec::new(JobId::new("small")?, small_document()?).thing(ThingName::new(SLOW_THING)?),
    )?;
    let client = Client::new(paho_transport(uri, "bench-slow-lib")?)?;
    let jobs = Jobs::new(&client, SLOW_THING)?;
    let mut samples = Vec::new();
    for &threads in &config.threads {
        let (nanos, wall) = stats::run(threads, config.warmup, config.time, |_| {
            let mut job = jobs.job("small")?;
            Ok(move || Ok(job.describe()?))
        })?;
        samples.push(Sample::from_latencies(threads, nanos, wall));
    }
    drop(jobs);
    drop(client);
    drop(responder);
    Ok(samples)
}

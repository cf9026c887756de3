//! jobs-service: a local stand-in for AWS IoT Jobs on a real MQTT broker.
//!
//! Hosts the `jobs-mock` [`Simulator`] (on the system clock) on any MQTT broker through
//! `jobs-paho`, so device code can be developed and tested against the Jobs device API
//! (`$aws/things/<thing>/jobs/...`: get, start-next, describe, update, notify, notify-next)
//! without an AWS account. Jobs come from a JSON file given at start and from commands on a
//! control topic at run time. It logs to standard output what it does: the jobs it created,
//! each control command, and every change of an execution's status (checked every 200 ms).
//!
//! It also serves the AWS IoT API over HTTP (`--http`), so jobs are created and inspected
//! with the AWS CLI or boto3 exactly as on AWS (signatures are not checked; any credentials
//! do). Run it beside a broker (here a local mosquitto) and a device:
//! ```sh
//! mosquitto -p 1883 &
//! cargo run -p examples --features paho --bin jobs-service -- --http 127.0.0.1:8080
//! aws iot create-job --endpoint-url http://127.0.0.1:8080 --region us-east-1 \
//!     --job-id rotate-logs --targets pump-07 --document '{"action":"rotate-logs","keep":5}'
//! cargo run -p examples --features paho --bin device -- --thing pump-07 --once
//! aws iot list-job-executions-for-job --endpoint-url http://127.0.0.1:8080 --region us-east-1 \
//!     --job-id rotate-logs
//! ```
//!
//! Flags (all optional):
//! - `--broker URI` — the broker (default `tcp://127.0.0.1:1883`); `--ca FILE`, `--cert FILE`,
//!   `--key FILE` for TLS and client certificates, `--alpn` for the AWS IoT ALPN protocol.
//! - `--client-id ID` — the Simulator's MQTT client ID (default `jobs-service`); the control
//!   connection uses `ID-control`.
//! - `--jobs FILE` — jobs to create at start (format below; default none).
//! - `--http ADDRESS` — serve the AWS IoT API on this address, such as `127.0.0.1:8080`
//!   (port 0: a free port); it prints `http: listening on http://ADDRESS` (default: no HTTP).
//! - `--time-scale N` — run the service's clock N times faster than real time (a whole number
//!   ≥ 1, default 1): a 1-minute step timer fires after 60 / N seconds. Timestamps then run
//!   ahead of the wall clock (after `t` seconds they read start + N × `t`).
//! - `--no-stdin` — do not stop when standard input closes (for running detached).
//!
//! It runs until standard input reaches end of file (Ctrl-D, or the parent closing the pipe),
//! or until killed (Ctrl-C). `RUST_LOG=info` (a bare level) shows the libraries' logs on
//! standard error.
//!
//! The jobs file:
//! ```json
//! {"jobs": [{"jobId": "rotate-logs", "document": {"action": "rotate-logs"},
//!            "things": ["pump-07"], "inProgressTimeoutMinutes": 30}]}
//! ```
//! The control topic `jobs-service/control` takes the operations of the HTTP API as JSON,
//! answered on `jobs-service/control/result` (echoing `requestId`):
//! `{"operation": "CreateJob", "requestId": 1, "input": {"jobId": …, "targets": […],
//! "document": "…"}}`. See `examples/README.md` for the details.

use std::error::Error;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use examples::connect::{BrokerArgs, USAGE};
use examples::http::HttpServer;
use examples::logger;
use examples::service::{CONTROL_TOPIC, ChangeLog, RESULT_TOPIC, handle_control, parse_jobs_file};
use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome};
use jobs_mock::service::{Clock, JobsService, Simulator};

/// How often the execution states are checked for the log.
const WATCH_INTERVAL: Duration = Duration::from_millis(200);
/// How long subscribing to and replying on the control topics may take.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

struct Args {
    broker: BrokerArgs,
    client_id: String,
    jobs: Option<String>,
    http: Option<String>,
    time_scale: NonZeroU32,
    stdin: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        broker: BrokerArgs::default(),
        client_id: "jobs-service".to_owned(),
        jobs: None,
        http: None,
        time_scale: NonZeroU32::MIN,
        stdin: true,
    };
    let mut rest = std::env::args().skip(1);
    while let Some(flag) = rest.next() {
        if args.broker.parse_flag(&flag, &mut rest)? {
            continue;
        }
        match flag.as_str() {
            "--client-id" => args.client_id = rest.next().ok_or("--client-id needs a value")?,
            "--jobs" => args.jobs = Some(rest.next().ok_or("--jobs needs a value")?),
            "--http" => args.http = Some(rest.next().ok_or("--http needs an address")?),
            "--time-scale" => {
                let value = rest.next().ok_or("--time-scale needs a value")?;
                args.time_scale = value
                    .parse()
                    .map_err(|_| format!("--time-scale takes a whole number >= 1, not {value}"))?;
            }
            "--no-stdin" => args.stdin = false,
            "--help" | "-h" => {
                return Err(format!(
                    "usage: jobs-service [flags]\n{USAGE}\n  --client-id ID   MQTT client ID \
                     (default jobs-service)\n  --jobs FILE      jobs to create at start\n  \
                     --http ADDRESS   serve the AWS IoT API over HTTP\n  \
                     --time-scale N   run the clock N times faster\n  \
                     --no-stdin       keep running when standard input closes"
                ));
            }
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    Ok(args)
}

/// What the main loop waits for.
enum Input {
    Command(Vec<u8>),
    Reconnected,
    StdinClosed,
}

/// The control connection's sink: a pure hand-off to the main loop.
struct ControlSink(Sender<Input>);

impl MessageSink for ControlSink {
    fn message(&self, topic: &str, payload: &[u8]) {
        if topic == CONTROL_TOPIC {
            let _ = self.0.send(Input::Command(payload.to_vec()));
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        if let ConnectionEvent::Connected { .. } = event {
            let _ = self.0.send(Input::Reconnected);
        }
    }
}

fn subscribe_control(transport: &dyn MqttTransport) -> Result<(), Box<dyn Error>> {
    let outcomes = transport.subscribe(
        &[CONTROL_TOPIC],
        QoS::AtLeastOnce,
        Instant::now() + CONTROL_TIMEOUT,
    )?;
    if outcomes.contains(&SubscribeOutcome::Refused) {
        return Err(format!("the broker refused the subscription to {CONTROL_TOPIC}").into());
    }
    Ok(())
}

fn main() {
    examples::exit_on_error("jobs-service", run);
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = examples::args_or_exit(parse_args());
    logger::init();

    let entries = match &args.jobs {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
            parse_jobs_file(&text).map_err(|e| format!("{path}: {e}"))?
        }
        None => Vec::new(),
    };

    let transport = args.broker.connect(&args.client_id)?;
    let simulator = Arc::new(Simulator::start(
        Arc::new(transport),
        JobsService::new(Clock::scaled(args.time_scale)),
    )?);
    let control = args
        .broker
        .connect(&format!("{}-control", args.client_id))?;
    let (tx, rx) = mpsc::channel();
    control.set_sink(Arc::new(ControlSink(tx.clone())))?;
    subscribe_control(&control)?;
    println!(
        "connected to {} as {} (control: {CONTROL_TOPIC}, replies: {RESULT_TOPIC})",
        args.broker.uri, args.client_id
    );

    for entry in &entries {
        simulator.create_job(entry.to_spec()?)?;
        println!("created {} for {}", entry.job_id, entry.things.join(", "));
    }
    let http = match &args.http {
        Some(address) => {
            let server = HttpServer::start(address, Arc::clone(&simulator))
                .map_err(|e| format!("--http {address}: {e}"))?;
            println!("http: listening on http://{}", server.address());
            Some(server)
        }
        None => None,
    };
    let mut changes = ChangeLog::new();
    for line in changes.changes(&simulator.executions()) {
        println!("{line}");
    }

    if args.stdin {
        std::thread::Builder::new()
            .name("stdin".into())
            .spawn(move || {
                // Discard input until end of file (or an error), then say so.
                let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
                let _ = tx.send(Input::StdinClosed);
            })?;
    }
    println!("ready");

    loop {
        match rx.recv_timeout(WATCH_INTERVAL) {
            Ok(Input::Command(payload)) => {
                let outcome = handle_control(&simulator, &payload);
                println!("control: {}", outcome.summary);
                let reply = outcome.reply.to_string();
                if let Err(error) = control.publish(
                    RESULT_TOPIC,
                    reply.as_bytes(),
                    QoS::AtLeastOnce,
                    Instant::now() + CONTROL_TIMEOUT,
                ) {
                    println!("control: could not publish the reply: {error}");
                }
            }
            Ok(Input::Reconnected) => {
                if let Err(error) = subscribe_control(&control) {
                    println!("control: could not re-subscribe: {error}");
                }
            }
            Ok(Input::StdinClosed) => break,
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        for line in changes.changes(&simulator.executions()) {
            println!("{line}");
        }
    }
    for line in changes.changes(&simulator.executions()) {
        println!("{line}");
    }
    println!("standard input closed; stopping");
    drop(http);
    drop(simulator);
    drop(control);
    Ok(())
}

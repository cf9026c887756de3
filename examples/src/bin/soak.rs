//! soak: the job runner on real parts, with the broker killed and restarted under it.
//!
//! Starts a private mosquitto on 127.0.0.1, hosts the Jobs simulator on it (system clock)
//! through `jobs-paho`, and runs one [`Runner`] per device thing over its own Paho connection.
//! It creates the jobs (half at the start, half midway), kills the broker by its pid and
//! restarts it at random moments, and "crashes" some handlers on purpose: the device's runner
//! is stopped with the handler still running (abandoned, as a reboot would) and a new runner is
//! built, which must resume the execution (`Context::resumed`).
//!
//! At the end every execution must be in exactly one terminal state (nothing left
//! IN_PROGRESS or QUEUED), every handler side effect (the ledger kept here) must have happened
//! exactly once per execution, every crashed execution must have been resumed, and every runner
//! must have stopped. It prints the counts and exits non-zero on any failure.
//!
//! ```sh
//! cargo run -p examples --features paho --bin soak                 # 10 devices, 200 jobs, 20 restarts
//! cargo run -p examples --features paho --bin soak -- --short      # what ./test.sh runs
//! cargo run -p examples --features paho --bin soak -- --devices 4 --jobs 60 --restarts 8
//! ```
//! The requests go out at QoS 0, as `jobs-paho` asks: with QoS 1, Paho C 1.3.16 aborts the
//! process under these outages (a double free; see the `jobs-paho` docs, "Reconnect churn").
//! Needs the `mosquitto` executable. `RUST_LOG=info` shows the libraries' logs.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::error::Error;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, select};
use examples::{args_or_exit, exit_on_error, logger};
use jobs_core::runner::{Backoff, Context, HandlerError, Outcome, Runner};
use jobs_core::{Client, Document, JobId, JobStatus, Jobs, ThingName};
use jobs_mock::local_broker::LocalBroker;
use jobs_mock::service::{Clock, ExecutionInfo, JobSpec, JobsService, Simulator};
use jobs_paho::PahoTransport;
use parking_lot::Mutex;
use serde_json::json;

/// How long the whole run may take before it is declared stuck.
const OVERALL: Duration = Duration::from_secs(300);

struct Args {
    devices: usize,
    jobs: usize,
    restarts: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        devices: 10,
        jobs: 200,
        restarts: 20,
    };
    let mut rest = std::env::args().skip(1);
    while let Some(flag) = rest.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            rest.next()
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match flag.as_str() {
            "--devices" => args.devices = number("--devices")?.max(1),
            "--jobs" => args.jobs = number("--jobs")?,
            "--restarts" => args.restarts = number("--restarts")?,
            "--short" => {
                args.devices = 4;
                args.jobs = 40;
                args.restarts = 5;
            }
            _ => {
                return Err(
                    "usage: soak [--short] [--devices N] [--jobs N] [--restarts N]".to_owned(),
                );
            }
        }
    }
    Ok(args)
}

/// What the handlers did, as a device's own persistent storage would remember it.
#[derive(Default)]
struct Ledger {
    /// Side effects per (thing, job, execution number).
    effects: HashMap<String, u32>,
    /// Executions a handler saw with `resumed()` true.
    resumed: HashSet<String>,
    /// Executions whose handler was crashed on purpose.
    crashed: HashSet<String>,
}

/// A small random number source (no dependency needed for chaos timing).
struct Dice(RandomState, u64);

impl Dice {
    fn new() -> Self {
        Self(RandomState::new(), 0)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.1 += 1;
        let mut hasher = self.0.build_hasher();
        hasher.write_u64(self.1);
        hasher.finish() % n.max(1)
    }
}

fn main() {
    logger::init();
    let args = args_or_exit(parse_args());
    exit_on_error("soak", || soak(&args));
}

fn soak(args: &Args) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let mut broker = LocalBroker::start()?;
    let uri = broker.uri();
    let connect = |id: &str| {
        PahoTransport::builder(&uri, id)
            .operation_timeout(Duration::from_secs(2))
            .connect_timeout(Duration::from_secs(2))
            .keep_alive(Duration::from_secs(2))
            .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
            .build()
    };
    let simulator = Simulator::start(
        Arc::new(connect("soak-service")?),
        JobsService::new(Clock::system()),
    )?;
    let things: Vec<ThingName> = (0..args.devices)
        .map(|i| ThingName::new(format!("soak-{i:02}")))
        .collect::<Result<_, _>>()?;
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (release_tx, release) = crossbeam_channel::bounded::<()>(0);
    let (finish_tx, finish) = crossbeam_channel::bounded::<()>(0);
    let mut devices = Vec::new();
    for thing in &things {
        let client = Client::new(connect(thing.as_str())?)?;
        let jobs = Jobs::builder(&client, thing)
            .timeout(Duration::from_secs(2))
            .build()?;
        devices.push(Device::start(
            jobs,
            Arc::clone(&ledger),
            release.clone(),
            finish.clone(),
        ));
    }

    let create = |range: std::ops::Range<usize>, dice: &mut Dice| -> Result<(), Box<dyn Error>> {
        for n in range {
            let thing = &things[n % things.len()];
            let crash = dice.below(10) == 0;
            let document =
                json!({"operation": "work", "n": n, "crash": crash, "ms": dice.below(20)});
            simulator.create_job(
                JobSpec::new(
                    JobId::new(format!("job-{n:04}"))?,
                    Document::from_serialize(&document)?,
                )
                .thing(thing.clone()),
            )?;
        }
        Ok(())
    };
    let mut dice = Dice::new();
    create(0..args.jobs / 2, &mut dice)?;
    for restart in 0..args.restarts {
        thread::sleep(Duration::from_millis(100 + dice.below(600)));
        broker.kill();
        thread::sleep(Duration::from_millis(50 + dice.below(250)));
        broker.restart()?;
        if restart == args.restarts / 2 {
            create(args.jobs / 2..args.jobs, &mut dice)?;
        }
    }
    if args.restarts == 0 {
        create(args.jobs / 2..args.jobs, &mut dice)?;
    }

    // Every execution must reach a terminal state.
    let deadline = started + OVERALL;
    let executions = loop {
        let executions = simulator.executions();
        let done =
            executions.len() == args.jobs && executions.iter().all(|e| e.status.is_terminal());
        if done || Instant::now() >= deadline {
            break executions;
        }
        thread::sleep(Duration::from_millis(200));
    };

    // Stop every runner; release abandoned handlers so their threads end too.
    let stopping = Instant::now();
    drop(finish_tx);
    let mut stopped = 0;
    for device in devices {
        if device.thread.join().is_ok() {
            stopped += 1;
        }
    }
    drop(release_tx);
    let stop_time = stopping.elapsed();

    report(
        args,
        &executions,
        &ledger.lock(),
        stopped,
        stop_time,
        started.elapsed(),
    )
}

/// One device: its runner, rebuilt after each crash, on a thread of its own.
struct Device {
    thread: JoinHandle<()>,
}

impl Device {
    fn start(
        jobs: Jobs,
        ledger: Arc<Mutex<Ledger>>,
        release: Receiver<()>,
        finish: Receiver<()>,
    ) -> Self {
        let thread = thread::spawn(move || {
            loop {
                let (crash_tx, crash) = crossbeam_channel::unbounded();
                let runner = match build_runner(&jobs, &ledger, &release, crash_tx) {
                    Ok(runner) => runner,
                    Err(error) => {
                        eprintln!("soak: building a runner failed: {error}");
                        return;
                    }
                };
                let stop = runner.stop_handle();
                let running = thread::spawn(move || runner.run());
                let crashed = select! {
                    recv(crash) -> _ => true,
                    recv(finish) -> _ => false,
                };
                stop.stop();
                if let Ok(Err(error)) = running.join() {
                    eprintln!("soak: a runner ended with {error}");
                }
                if !crashed {
                    return;
                }
            }
        });
        Self { thread }
    }
}

fn build_runner(
    jobs: &Jobs,
    ledger: &Arc<Mutex<Ledger>>,
    release: &Receiver<()>,
    crash: Sender<()>,
) -> Result<Runner, jobs_core::Error> {
    let thing = jobs.thing_name().clone();
    let ledger = Arc::clone(ledger);
    let release = release.clone();
    Runner::builder(jobs)
        .backoff(Backoff::new(
            Duration::from_millis(100),
            Duration::from_secs(1),
        ))
        .resync_interval(Duration::from_secs(2))
        .stop_grace(Duration::ZERO)
        .handler("work", move |ctx| {
            work(ctx, &thing, &ledger, &release, &crash)
        })
        .build()
}

/// The handler: one side effect per execution, remembered in the ledger (the device's own
/// storage); a "crash" job crashes once after its side effect, and the rebuilt runner resumes.
fn work(
    ctx: &Context,
    thing: &ThingName,
    ledger: &Mutex<Ledger>,
    release: &Receiver<()>,
    crash: &Sender<()>,
) -> Result<Outcome, HandlerError> {
    let document = ctx.document().to_value();
    let key = format!(
        "{thing}/{}/{}",
        ctx.job_id(),
        ctx.execution_number().map_or(0, |n| n.get())
    );
    let pause = Duration::from_millis(document["ms"].as_u64().unwrap_or(0));
    if ctx.cancellation().wait_timeout(pause) && ctx.is_canceled() {
        return Ok(Outcome::failed());
    }
    {
        let mut ledger = ledger.lock();
        if ctx.resumed() {
            ledger.resumed.insert(key.clone());
        }
        let effects = ledger.effects.entry(key.clone()).or_default();
        if !ctx.resumed() || *effects == 0 {
            *effects += 1;
        }
        if document["crash"] == json!(true) && !ctx.resumed() {
            ledger.crashed.insert(key);
            drop(ledger);
            // Crash: the runner is torn down with this handler still running.
            let _ = crash.send(());
            let _ = release.recv();
            return Ok(Outcome::failed());
        }
    }
    Ok(Outcome::succeeded())
}

fn report(
    args: &Args,
    executions: &[ExecutionInfo],
    ledger: &Ledger,
    stopped: usize,
    stop_time: Duration,
    duration: Duration,
) -> Result<(), Box<dyn Error>> {
    let mut states: BTreeMap<String, usize> = BTreeMap::new();
    for execution in executions {
        *states.entry(execution.status.to_string()).or_default() += 1;
    }
    let effects: u32 = ledger.effects.values().sum();
    let repeated = ledger.effects.values().filter(|&&n| n != 1).count();
    let unresumed = ledger.crashed.difference(&ledger.resumed).count();
    println!(
        "soak: {} devices, {} jobs, {} broker restarts, {:.1} s",
        args.devices,
        args.jobs,
        args.restarts,
        duration.as_secs_f64()
    );
    println!("  executions: {} {states:?}", executions.len());
    println!(
        "  side effects: {effects} over {} executions ({repeated} not exactly once)",
        ledger.effects.len()
    );
    println!(
        "  crashed on purpose: {}, resumed: {} ({unresumed} crashed but never resumed)",
        ledger.crashed.len(),
        ledger.resumed.len()
    );
    println!(
        "  runners stopped: {stopped}/{} in {:.2} s",
        args.devices,
        stop_time.as_secs_f64()
    );
    let mut failures = Vec::new();
    if executions.len() != args.jobs {
        failures.push(format!(
            "{} executions, expected {}",
            executions.len(),
            args.jobs
        ));
    }
    if let Some(open) = executions.iter().find(|e| !e.status.is_terminal()) {
        failures.push(format!("{} is still {}", open.job_id, open.status));
    }
    if executions.iter().any(|e| e.status != JobStatus::Succeeded) {
        failures.push("an execution did not succeed".to_owned());
    }
    if ledger.effects.len() != args.jobs || repeated > 0 {
        failures.push("side effects are not exactly one per execution".to_owned());
    }
    if unresumed > 0 {
        failures.push("a crashed execution was not resumed".to_owned());
    }
    if stopped != args.devices {
        failures.push("a runner did not stop".to_owned());
    }
    if failures.is_empty() {
        println!("soak: ok");
        Ok(())
    } else {
        Err(failures.join("; ").into())
    }
}

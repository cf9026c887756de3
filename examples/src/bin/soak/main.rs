//! soak: the job runner on real parts, under broker outages, crashes, reboots, cloud cancels,
//! step timeouts, failing handlers and re-runs — and a ledger that can see every way it could
//! go wrong.
//!
//! Starts a private mosquitto on 127.0.0.1, hosts the Jobs simulator on it through `jobs-paho`
//! (on a clock 60 times faster than real time, so a 1-minute step timer fires after 1 s), and
//! runs one [`Runner`](jobs_core::runner::Runner) per device thing over its own Paho
//! connection (2 handlers at once, 2 s `Jobs` timeout, backoff 100 ms to 1 s). Every job is
//! planned up front from the seed; its handler:
//! - succeeds, fails (an error), panics, or rejects — at a random moment, or timed to return
//!   while the broker is down (65 % of them: half during the next kill, half during the next
//!   freeze), so that its terminal report starts during an outage; some documents name an
//!   operation no handler serves;
//! - waits to be canceled: the soak cancels the running execution (CancelJobExecution with
//!   `force`) after a random delay, removes the thing from the job's targets (`REMOVED`), or
//!   deletes the execution (DeleteJobExecution with `force`: the service forgets it);
//! - succeeds during an outage, and the soak cancels the execution right then: the report
//!   can only reach the service after the cancel, and is refused;
//! - starts a 1-minute step timer and waits for it to expire;
//! - or is a CONTINUOUS job run twice: execution 2 is queued by AssociateTargetsWithJob once
//!   execution 1 ended, or right after execution 1's cancel, while its handler still runs;
//! - and "crashes" some executions on purpose: the device's runner is stopped with the handler
//!   still running, and a new runner must resume the execution. The soak also reboots devices
//!   (the same, at a random moment, with a random stop grace of 0–400 ms), refuses some jobs'
//!   updates in the simulator (throttled, internal error, version mismatch) and answers
//!   bursts of any device's requests with `RequestThrottled` or `InternalError`.
//!
//! Meanwhile the broker is killed (SIGKILL, then restarted on the same port) and frozen
//! (SIGSTOP, then SIGCONT), evenly interleaved: outages of 0.3–1.2 s (kills) or 0.3–3 s
//! (freezes), with the broker up for 2–3 s after a kill (the devices reconnect first) and
//! 0.8–1.6 s after a freeze; jobs are created in waves over the first half of the outages.
//!
//! At the end every execution must be in the state AWS would give it (the plan says which),
//! and the ledger is checked against it:
//! - every handler call and side effect is counted by (thing, job, execution number): the side
//!   effect happens exactly once per execution, and a second run of an execution must follow a
//!   teardown of the runner that ran it before (a crash, a reboot: its handler abandoned, or
//!   its outcome not yet reported or unconfirmed), be marked resumed, and is counted by cause;
//!   anything else is a duplicate;
//! - `on_ended` is called once per execution and runner, for every execution the runner ran;
//!   each execution has one settling ending (`Reported`, `EndedByService`) that agrees with
//!   the service's final state of that execution number, or ends `Unconfirmed` (the service
//!   holds a terminal state) or `LeftInProgress` (the service ended it while no runner held
//!   it); nothing is still held at the final stop;
//! - every cancel and timeout reached a handler whose runner held the execution; every
//!   request about an execution named its execution number; no execution got more than 10
//!   terminal updates;
//! - at least a quarter of the terminal reports of handler outcomes started during an outage
//!   (the handler returned between the broker's kill or SIGSTOP and its restart or SIGCONT),
//!   with reports during kills and during freezes both;
//! - abandoned handlers are released and must all return; the service is re-read after a
//!   quiet spell and after the final stop, and nothing may change;
//! - every scenario of the plan happened, and every join is bounded (a stuck runner fails
//!   the run; a watchdog ends a run that hangs).
//!
//! It prints every count, and for a failure the history of each execution concerned, and
//! exits non-zero on any failure.
//!
//! `--ota` (see the `ota` module): every job is a firmware update instead. The document holds a
//! pre-signed URL placeholder that the service replaces with a URL of its own object store,
//! served through a proxy that paces, cuts, refuses and stalls the transfers while the broker
//! is killed and frozen; some executions crash mid-download and devices reboot. Besides the
//! checks above (the share of reports during outages is printed, not required: no handler is
//! timed to an outage), every destination must hold the file byte for byte and by SHA-256,
//! each execution must complete one download, no partial or other file may be left, and
//! downloads must have resumed from partial files.
//!
//! ```sh
//! cargo run -p examples --features paho --bin soak              # 10 devices, 200 jobs, 20 kills, 10 freezes
//! cargo run -p examples --features paho --bin soak -- --short   # what ./test.sh runs (4 devices, 40 jobs)
//! cargo run -p examples --features paho --bin soak -- --big     # 100 devices, 1,000 jobs
//! cargo run -p examples --features paho --bin soak -- --devices 4 --jobs 60 --restarts 8 --seed 7
//! cargo run -p examples --features paho --bin soak -- --ota           # 6 devices, 24 jobs, a 4 MiB file
//! cargo run -p examples --features paho --bin soak -- --ota --short   # in ./test.sh (3 devices, 9 jobs, 2 MiB)
//! ```
//! The things are registered in the simulator and jobs target their ARNs, as on AWS. The
//! requests go out at QoS 0, as `jobs-paho` asks, and so do the simulator's replies and events
//! (the `tap` module): with QoS 1, Paho C 1.3.16 aborts the process under these outages (a
//! double free; see the `jobs-paho` docs, "Reconnect churn").
//!
//! Other flags: `--freezes N`, `--reboots N`, `--file-mib N` (see `--help`). The seed is printed; the same
//! seed gives the same plan (not the same timing). Needs the `mosquitto` executable.
//! `RUST_LOG=warn` (or lower) shows the libraries' logs; the default is `error`.

mod args;
mod bounded;
mod chaos;
mod check;
mod control;
mod device;
mod dice;
mod ledger;
mod ota;
mod plan;
mod report;
mod schedule;
mod tap;

use std::error::Error;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use examples::{exit_on_error, logger};
use jobs_core::{Client, Jobs, ThingName};
use jobs_mock::service::api::CreateThing;
use jobs_mock::service::{Clock, ExecutionInfo, JobsService, Simulator};
use jobs_paho::PahoTransport;
use parking_lot::Mutex;

use args::Args;
use chaos::{Broker, Outages};
use control::Command;
use device::{DEVICE_STOP_BOUND, Device, JOBS_TIMEOUT, Shared};
use dice::Dice;
use ledger::Ledger;
use plan::Plan;
use tap::{Received, Tap};

/// How much faster than real time the simulator's clock runs: a 1-minute step timer fires
/// after 1 s.
const CLOCK_FACTOR: u32 = 60;

/// How long after the last outage every execution must have ended.
const DRAIN_LIMIT: Duration = Duration::from_secs(90);

/// How long the released handlers get to return.
const RELEASE_LIMIT: Duration = Duration::from_secs(10);

/// How long the service must stay unchanged after the release (more than the runners' resync
/// interval and slowest backoff together).
const QUIET: Duration = Duration::from_millis(3500);

fn main() {
    logger::init();
    if std::env::var_os("RUST_LOG").is_none() {
        // Outages make the libraries warn all the time; the soak prints what it found.
        log::set_max_level(log::LevelFilter::Error);
    }
    let args = Args::parse();
    exit_on_error("soak", || soak(&args));
}

fn connect(uri: &str, id: &str) -> Result<PahoTransport, jobs_paho::ConnectError> {
    PahoTransport::builder(uri, id)
        .operation_timeout(Duration::from_secs(2))
        .connect_timeout(Duration::from_secs(2))
        .keep_alive(Duration::from_secs(2))
        .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
        .build()
}

fn soak(args: &Args) -> Result<(), Box<dyn Error>> {
    let started = Instant::now();
    let phase = Arc::new(Mutex::new("starting"));
    let mut dice = Dice::new(args.seed);
    let factor = NonZeroU32::new(CLOCK_FACTOR).ok_or("clock factor of zero")?;
    let mut service = JobsService::new(Clock::scaled(factor));
    let mut ota = match args.ota_mib {
        Some(mib) => Some(ota::Ota::prepare(mib, &mut service, &mut dice)?),
        None => None,
    };
    let plan = Arc::new(Plan::generate(
        args.jobs,
        args.devices,
        ota.as_ref().map(|ota| ota.file().clone()),
        &mut dice,
    )?);
    let mut broker = Broker::start()?;
    let _watchdog = chaos::watchdog(args.limit, Arc::clone(&broker.pid), Arc::clone(&phase));
    let uri = broker.local.uri();
    let received = Arc::new(Mutex::new(Received::default()));
    let simulator = Arc::new(Simulator::start(
        Arc::new(Tap::new(
            connect(&uri, "soak-service")?,
            Arc::clone(&received),
        )),
        service,
    )?);
    if let Some(ota) = &mut ota {
        ota.serve(Arc::clone(&simulator))?;
    }
    let ota = ota.map(Arc::new);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let outages = Arc::new(Outages::default());
    let (control_tx, control_rx) = crossbeam_channel::unbounded();
    let control_pending = Arc::new(AtomicUsize::new(0));
    let control = control::start(
        Arc::clone(&simulator),
        Arc::clone(&ledger),
        control_rx,
        Arc::clone(&control_pending),
    )?;
    let (release_tx, release) = crossbeam_channel::bounded::<()>(0);
    let shared = Arc::new(Shared {
        ledger: Arc::clone(&ledger),
        simulator: Arc::clone(&simulator),
        plan: Arc::clone(&plan),
        outages: Arc::clone(&outages),
        control: control_tx.clone(),
        control_pending: Arc::clone(&control_pending),
        release,
        generations: AtomicU64::new(0),
        ota: ota.clone(),
    });
    let (finish_tx, finish) = crossbeam_channel::bounded::<()>(0);
    let mut devices = Vec::new();
    for i in 0..args.devices {
        let thing = ThingName::new(plan::thing_name(i))?;
        // Job targets are ARNs of registered things, as on AWS.
        let registered = simulator.call(CreateThing::new(thing.clone()))?;
        if registered.thing_arn != plan::thing_arn(thing.as_str()) {
            return Err(format!("{thing} was registered as {}", registered.thing_arn).into());
        }
        let client = Client::new(connect(&uri, thing.as_str())?)?;
        let jobs = Jobs::builder(&client, &thing)
            .timeout(JOBS_TIMEOUT)
            .build()?;
        devices.push(Device::start(
            jobs,
            Arc::clone(&shared),
            finish.clone(),
            dice.fork(),
        )?);
    }

    // The outages, with the jobs created in waves and the reboots spread among them.
    *phase.lock() = "running the outages";
    let outages_started = Instant::now();
    let (files_over_tx, files_over) = crossbeam_channel::bounded::<()>(0);
    let file_chaos = match &ota {
        Some(ota) => Some(ota.interrupt(files_over, dice.fork())?),
        None => None,
    };
    let faults = schedule::run(
        &schedule::Chaos {
            args,
            plan: &plan,
            simulator: &simulator,
            devices: &devices,
            outages: &outages,
        },
        &mut broker,
        &mut dice,
    )?;
    let outages_took = outages_started.elapsed();
    drop(files_over_tx);
    let mut failures = check::Findings::default();
    let interruptions = file_chaos.map(|chaos| match chaos.join_within(Duration::from_secs(5)) {
        Ok(done) => done,
        Err(stuck) => {
            failures.fail(None, stuck);
            ota::Interruptions::default()
        }
    });

    // Every execution must end.
    *phase.lock() = "waiting for every execution to end";
    let drain_started = Instant::now();
    drain(&simulator, &plan, &ledger, &control_pending, &mut failures);
    let drain_took = drain_started.elapsed();
    let before_release = simulator.executions();

    // Release the abandoned handlers; they must all return, and change nothing.
    *phase.lock() = "releasing the abandoned handlers";
    let released_at = Instant::now();
    drop(release_tx);
    loop {
        let waiting = ledger
            .lock()
            .calls
            .iter()
            .filter(|c| c.returned.is_none())
            .count();
        if waiting == 0 {
            break;
        }
        if released_at.elapsed() > RELEASE_LIMIT {
            failures.fail(
                None,
                format!(
                    "{waiting} handlers did not return within {} s of their release",
                    RELEASE_LIMIT.as_secs()
                ),
            );
            break;
        }
        thread::sleep(Duration::from_millis(20));
    }
    thread::sleep(QUIET);
    let after_release = simulator.executions();
    compare(
        "after the release",
        &before_release,
        &after_release,
        &mut failures,
    );

    // Stop every runner, each join bounded.
    *phase.lock() = "stopping the runners";
    let stopping = Instant::now();
    drop(finish_tx);
    let count = devices.len();
    let mut joined = 0;
    for device in devices {
        let left = DEVICE_STOP_BOUND.saturating_sub(stopping.elapsed());
        match device.join_within(left) {
            Ok(()) => joined += 1,
            Err(stuck) => failures.fail(None, stuck),
        }
    }
    let _ = control_tx.send(Command::Quit);
    let control_joined = match control.join_within(Duration::from_secs(5)) {
        Ok(()) => 1,
        Err(stuck) => {
            failures.fail(None, stuck);
            0
        }
    };
    let stop_took = stopping.elapsed();
    let after_stop = simulator.executions();
    compare("after the stop", &after_release, &after_stop, &mut failures);

    *phase.lock() = "checking";
    let ledger = ledger.lock();
    let received = received.lock();
    let observed = check::Observed {
        plan: &plan,
        ledger: &ledger,
        received: &received,
        outages: &outages,
        executions: &after_stop,
        released_at,
        started,
        kills: args.restarts,
        freezes: args.freezes,
        reboots: args.reboots,
    };
    let (mut found, counts) = check::check(&observed);
    found.failures.append(&mut failures.failures);
    found.keys.append(&mut failures.keys);
    let mut ota_lines = Vec::new();
    if let Some(ota) = &ota {
        let (mut ota_failures, lines) = ota.check(&plan, &ledger);
        found.failures.append(&mut ota_failures);
        ota_lines = lines;
        if let Some(done) = &interruptions {
            ota_lines.push(format!(
                "OTA: file server interruptions: {} cuts of every transfer, {} outages \
                 (connections refused), {} stalls",
                done.cuts, done.downs, done.stalls
            ));
        }
        ota.remove_files();
    }
    println!(
        "soak ({}): {} devices, {} jobs ({} executions), {} kills, {} freezes, {} reboots, seed {}: {:.1} s",
        args.mode,
        args.devices,
        args.jobs,
        plan.executions(),
        args.restarts,
        args.freezes,
        args.reboots,
        args.seed,
        started.elapsed().as_secs_f64()
    );
    counts.print();
    for line in &ota_lines {
        println!("  {line}");
    }
    println!(
        "  requests refused on purpose (the next requests of any device): {} throttled, {} \
         internal errors",
        faults.0, faults.1
    );
    println!(
        "  joins (each bounded): devices {joined}/{count}, control thread {control_joined}/1, \
         handlers {}/{} returned",
        ledger.calls.iter().filter(|c| c.returned.is_some()).count(),
        ledger.calls.len()
    );
    println!(
        "  durations: outages {:.1} s, then until every execution ended {:.1} s, release and \
         quiet spell {:.1} s, stop {:.2} s",
        outages_took.as_secs_f64(),
        drain_took.as_secs_f64(),
        (stopping - released_at).as_secs_f64(),
        stop_took.as_secs_f64()
    );
    if found.failures.is_empty() {
        println!("soak: ok");
        return Ok(());
    }
    for failure in found.failures.iter().take(30) {
        println!("  FAILED: {failure}");
    }
    if found.failures.len() > 30 {
        println!("  … and {} more", found.failures.len() - 30);
    }
    println!("  what happened to the executions concerned (times from the start):");
    for key in found.keys.iter().take(10) {
        print!("{}", report::history(&observed, key));
    }
    Err(format!("{} failures", found.failures.len()).into())
}

/// Waits until every execution of the plan exists and ended, no live runner's handler runs and
/// no control command waits, at most [`DRAIN_LIMIT`].
fn drain(
    simulator: &Simulator,
    plan: &Plan,
    ledger: &Mutex<Ledger>,
    control_pending: &AtomicUsize,
    failures: &mut check::Findings,
) {
    let started = Instant::now();
    loop {
        let executions = simulator.executions();
        // Handlers of live runners still running (abandoned ones wait for the release).
        let (running, deleted): (Vec<ledger::Key>, usize) = {
            let ledger = ledger.lock();
            let torn_down: std::collections::HashSet<ledger::Generation> =
                ledger.teardowns.iter().map(|t| t.generation).collect();
            let running = ledger
                .calls
                .iter()
                .filter(|c| c.returned.is_none() && !torn_down.contains(&c.generation))
                .map(|c| c.key.clone())
                .collect();
            (running, ledger.deletions_made.len())
        };
        let open: Vec<ledger::Key> = executions
            .iter()
            .filter(|e| !e.status.is_terminal())
            .map(check::key_of)
            .collect();
        let pending = control_pending.load(Ordering::Acquire);
        if executions.len() + deleted == plan.executions()
            && open.is_empty()
            && running.is_empty()
            && pending == 0
        {
            return;
        }
        if started.elapsed() > DRAIN_LIMIT {
            failures.fail(
                None,
                format!(
                    "not everything ended within {} s of the last outage: {} of {} executions \
                     exist ({deleted} deleted); still open: {open:?}; handlers still running: \
                     {running:?}; control commands pending: {pending}",
                    DRAIN_LIMIT.as_secs(),
                    executions.len(),
                    plan.executions(),
                ),
            );
            failures
                .keys
                .extend(open.into_iter().chain(running).take(10));
            return;
        }
        thread::sleep(Duration::from_millis(100));
    }
}

/// Records the differences between two readings of the service.
fn compare(
    when: &str,
    before: &[ExecutionInfo],
    after: &[ExecutionInfo],
    findings: &mut check::Findings,
) {
    let state = |e: &ExecutionInfo| {
        (
            check::key_of(e),
            (e.status.clone(), e.version_number, e.status_details.clone()),
        )
    };
    let before: std::collections::BTreeMap<_, _> = before.iter().map(state).collect();
    let after: std::collections::BTreeMap<_, _> = after.iter().map(state).collect();
    for (key, now) in &after {
        match before.get(key) {
            Some(then) if then == now => {}
            then => findings.fail(
                Some(key),
                format!("{key} changed {when}: from {then:?} to {now:?}"),
            ),
        }
    }
    for key in before.keys().filter(|k| !after.contains_key(*k)) {
        findings.fail(Some(key), format!("{key} disappeared {when}"));
    }
}

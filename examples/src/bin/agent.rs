//! agent: a device agent built on the job runner, over a real MQTT broker, for one thing.
//!
//! Runs `jobs_core::runner::Runner` with three handlers, chosen by the document's `operation`:
//! - `rotate-logs` (`{"operation": "rotate-logs", "keep": 5}`): rotates, reports `kept`.
//! - `install-firmware` (`{"operation": "install-firmware", "version": "2.4.0"}`): downloads,
//!   verifies and installs with a progress update at each step (and a 10-minute step timer),
//!   then **reboots**: it saves its progress in `--state-dir`, the agent tears its runner down
//!   as a reboot would and builds a new one, which resumes the execution
//!   (`Context::resumed`), reads the saved progress and finishes with `SUCCEEDED`. A real reboot
//!   (kill the agent while it installs, start it again) resumes the same way.
//! - `fail` (`{"operation": "fail"}`): reports `FAILED` with a reason.
//!
//! Any other document is reported `REJECTED` by the runner (which prints no line for it beyond
//! "ended"). A job canceled in the cloud stops its handler at the next step.
//!
//! Against the local stand-in (`jobs-service`) on a local mosquitto:
//! ```sh
//! cargo run -p examples --features paho --bin agent -- --thing pump-07
//! ```
//! Against AWS IoT Core, with the thing's certificate (the same flags as `device`):
//! ```sh
//! cargo run -p examples --features paho --bin agent -- --thing pump-07 \
//!     --broker ssl://abcdefgh123456-ats.iot.eu-west-1.amazonaws.com:8883 \
//!     --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key
//! ```
//!
//! Flags: `--thing NAME` (required; also the client ID unless `--client-id ID`); the broker
//! flags of `device` (`--broker`, `--ca`, `--cert`, `--key`, `--alpn`); `--state-dir DIR`
//! where progress survives a reboot (default: a directory under the system's temp dir);
//! `--work-scale F` real seconds per simulated second of work (default 0.01); `--exit-after N`
//! stops after N executions ended (default: run until killed). Output: one line per step on
//! standard output.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, select};
use examples::connect::DeviceArgs;
use examples::logger;
use jobs_core::runner::{Context, Ending, HandlerError, Outcome, Runner};
use jobs_core::{Jobs, StatusDetails, StepTimeout};

struct Args {
    device: DeviceArgs,
    thing: String,
    state_dir: Option<PathBuf>,
    exit_after: Option<usize>,
}

fn usage() -> String {
    DeviceArgs::usage(
        "agent",
        &format!(
            "  --state-dir DIR  where progress survives a reboot\n{}\n  \
             --exit-after N   stop after N executions ended",
            DeviceArgs::WORK_SCALE_USAGE
        ),
    )
}

fn parse_args() -> Result<Args, String> {
    let mut device = DeviceArgs::default();
    let mut state_dir = None;
    let mut exit_after = None;
    let mut rest = std::env::args().skip(1);
    while let Some(flag) = rest.next() {
        if device.parse_flag(&flag, &mut rest)? {
            continue;
        }
        let mut value = || rest.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--state-dir" => state_dir = Some(PathBuf::from(value()?)),
            "--exit-after" => {
                exit_after = Some(value()?.parse().map_err(|e| format!("--exit-after: {e}"))?);
            }
            "--help" | "-h" => return Err(usage()),
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    let thing = device.thing.take().unwrap_or_default();
    if thing.is_empty() {
        return Err(usage());
    }
    Ok(Args {
        device,
        thing,
        state_dir,
        exit_after,
    })
}

fn main() {
    examples::exit_on_error("agent", run);
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = examples::args_or_exit(parse_args());
    logger::init();
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("jobs-agent-{}", args.thing)));
    fs::create_dir_all(&state_dir)?;
    let jobs = args.device.connect(&args.thing)?;
    println!(
        "agent: connected to {} as {}",
        args.device.broker.uri, args.thing
    );

    let mut ended = 0;
    let (ended_tx, ended_rx) = crossbeam_channel::unbounded::<()>();
    // Never sent to: a handler that "reboots" blocks on it until the agent exits.
    let (_halt, halt) = crossbeam_channel::bounded::<()>(0);
    loop {
        let (reboot_tx, reboot) = crossbeam_channel::unbounded();
        let host = Host {
            state_dir: state_dir.clone(),
            scale: args.device.work_scale,
            reboot: reboot_tx,
            halt: halt.clone(),
        };
        let runner = runner(&jobs, Arc::new(host), ended_tx.clone())?;
        let stop = runner.stop_handle();
        let running = std::thread::spawn(move || runner.run());
        let rebooting = loop {
            select! {
                recv(reboot) -> _ => break true,
                recv(ended_rx) -> _ => {
                    ended += 1;
                    if args.exit_after.is_some_and(|n| ended >= n) {
                        break false;
                    }
                }
            }
        };
        stop.stop();
        running.join().map_err(|_| "the runner panicked")??;
        if !rebooting {
            println!("agent: {ended} executions ended; exiting");
            return Ok(());
        }
        println!("agent: rebooting");
    }
}

/// What the handlers need from the device.
struct Host {
    state_dir: PathBuf,
    scale: f64,
    reboot: Sender<()>,
    halt: Receiver<()>,
}

impl Host {
    /// Simulated work: returns early (true) if the job was canceled or the agent is stopping.
    fn work(&self, ctx: &Context, seconds: u64) -> bool {
        ctx.cancellation()
            .wait_timeout(Duration::from_secs(seconds).mul_f64(self.scale))
    }

    fn progress_file(&self, ctx: &Context) -> PathBuf {
        self.state_dir.join(format!("{}.step", ctx.job_id()))
    }
}

fn runner(jobs: &Jobs, host: Arc<Host>, ended: Sender<()>) -> Result<Runner, jobs_core::Error> {
    let rotate = Arc::clone(&host);
    Runner::builder(jobs)
        // A "reboot" abandons the handler that asked for it after this grace.
        .stop_grace(Duration::from_secs(2))
        .handler("rotate-logs", move |ctx| rotate_logs(ctx, &rotate))
        .handler("install-firmware", move |ctx| install_firmware(ctx, &host))
        .handler("fail", |ctx| {
            println!("agent: {} fails on purpose", ctx.job_id());
            let reason = StatusDetails::from_pairs([("reason", "asked to fail")])?;
            Ok(Outcome::failed().with_details(reason))
        })
        .on_ended(move |done| {
            let id = &done.job_id;
            match &done.ending {
                Ending::Reported(status) => println!("agent: {id} ended: reported {status}"),
                Ending::EndedByService(Some(status)) => {
                    println!("agent: {id} ended by the service: {status}")
                }
                Ending::EndedByService(None) => println!("agent: {id} ended by the service"),
                // A reboot leaves it in progress: the next runner resumes it.
                Ending::LeftInProgress => {
                    println!("agent: {id} left in progress");
                    return;
                }
                _ => println!("agent: {id} ended; its status is unknown"),
            }
            let _ = ended.send(());
        })
        .build()
}

fn rotate_logs(ctx: &Context, host: &Host) -> Result<Outcome, HandlerError> {
    let keep = ctx.document().to_value()["keep"].as_u64().unwrap_or(5);
    println!("agent: {} rotating logs, keeping {keep}", ctx.job_id());
    host.work(ctx, 5);
    Ok(Outcome::succeeded().with_details(StatusDetails::from_pairs([("kept", keep.to_string())])?))
}

/// The firmware steps, in order; the progress file holds the last one done.
const STEPS: [&str; 3] = ["download", "verify", "install"];

fn install_firmware(ctx: &Context, host: &Host) -> Result<Outcome, HandlerError> {
    let version = ctx.document().to_value()["version"]
        .as_str()
        .unwrap_or("unknown")
        .to_owned();
    let file = host.progress_file(ctx);
    let done = if ctx.resumed() {
        read_step(&file)
    } else {
        None
    };
    if done.as_deref() == Some("reboot") {
        println!(
            "agent: {} resumed after the reboot: running {version}",
            ctx.job_id()
        );
        let _ = fs::remove_file(&file);
        return Ok(
            Outcome::succeeded().with_details(StatusDetails::from_pairs([("version", version)])?)
        );
    }
    let start = done
        .and_then(|step| STEPS.iter().position(|s| *s == step))
        .map_or(0, |i| i + 1);
    if ctx.resumed() {
        println!("agent: {} resumed at step {start}", ctx.job_id());
    }
    for step in STEPS.iter().skip(start) {
        println!("agent: {} {step} {version}", ctx.job_id());
        let details = StatusDetails::from_pairs([("step", *step), ("version", version.as_str())])?;
        // Best effort: a lost progress update does not stop the install.
        if let Err(error) = ctx.progress_with_step_timeout(details, StepTimeout::minutes(10)?) {
            println!("agent: {} progress not reported: {error}", ctx.job_id());
        }
        if host.work(ctx, 30) {
            if ctx.is_canceled() {
                println!("agent: {} canceled in the cloud; stopping", ctx.job_id());
            }
            return Ok(Outcome::failed());
        }
        save_step(&file, step)?;
    }
    save_step(&file, "reboot")?;
    println!(
        "agent: {} installed {version}; rebooting to activate it",
        ctx.job_id()
    );
    let _ = host.reboot.send(());
    // The runner is torn down now and abandons this handler, as a reboot would: it never
    // returns an outcome (it waits until the agent exits).
    let _ = host.halt.recv();
    Ok(Outcome::failed())
}

fn read_step(file: &Path) -> Option<String> {
    fs::read_to_string(file).ok().map(|s| s.trim().to_owned())
}

fn save_step(file: &Path, step: &str) -> Result<(), HandlerError> {
    fs::write(file, step)?;
    Ok(())
}

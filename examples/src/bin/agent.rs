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
//! Any other document (another operation, or none) is reported `REJECTED` with the reason,
//! which the agent prints. A job the service ends meanwhile (canceled in the cloud, timed out
//! by its step or in-progress timer, removed) stops its handler at the next step, and the
//! agent says which it was.
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
//! Flags (`--help` lists them): `--thing NAME` (required; also the client ID unless
//! `--client-id ID`); the broker flags of `device` (`--broker`, `--ca`, `--cert`, `--key`,
//! `--alpn`, `--connect-retry`); `--state-dir DIR` where progress survives a reboot (default: a
//! directory under the system's temp dir); `--work-scale F` real seconds per simulated second
//! of work (default 0.01); `--exit-after N` stops after N executions ended (default: run until
//! killed). Output: one line per step on standard output.

use std::error::Error;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use crossbeam_channel::{Receiver, Sender, select};
use examples::connect::DeviceArgs;
use examples::{logger, say};
use jobs_core::runner::{Context, Ending, HandlerError, Outcome, Runner};
use jobs_core::{JobStatus, Jobs, StatusDetails, StepTimeout};

/// agent: a device agent on the job runner, for one thing, over a real MQTT broker.
///
/// Handlers by the document's "operation": rotate-logs, install-firmware (with progress, a
/// simulated reboot and a resume), fail. Anything else is REJECTED with the reason.
#[derive(Debug, Parser)]
#[command(name = "agent", version)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Where progress survives a reboot [default: a directory under the system's temp dir].
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,
    /// Stop after N executions ended [default: run until killed].
    #[arg(long, value_name = "N")]
    exit_after: Option<usize>,
}

fn main() {
    let args = Args::parse();
    logger::init();
    examples::exit_on_error("agent", || run(&args));
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let thing = args.device.thing.as_str();
    let state_dir = args
        .state_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("jobs-agent-{thing}")));
    fs::create_dir_all(&state_dir)?;
    let jobs = args.device.connect()?;
    say!("agent: connected to {} as {thing}", args.device.broker.uri);

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
            say!("agent: {ended} executions ended; exiting");
            return Ok(());
        }
        say!("agent: rebooting");
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
            say!("agent: {} fails on purpose", ctx.job_id());
            let reason = StatusDetails::from_pairs([("reason", "asked to fail")])?;
            Ok(Outcome::failed().with_details(reason))
        })
        // Documents no handler takes: REJECTED, with the reason printed and reported.
        .fallback(|ctx| {
            let reason = match ctx.operation() {
                Some(operation) => format!(
                    "unsupported operation {operation:?} (this agent knows rotate-logs, \
                     install-firmware, fail)"
                ),
                None => "no \"operation\" field in the document".to_owned(),
            };
            say!("agent: {} REJECTED: {reason}", ctx.job_id());
            Ok(Outcome::rejected().with_details(StatusDetails::from_pairs([("reason", reason)])?))
        })
        .on_ended(move |done| {
            let id = &done.job_id;
            match &done.ending {
                // A reboot, or the agent exiting, leaves it in progress: the next start resumes
                // it. Nothing to say, and it has not ended.
                Ending::LeftInProgress => return,
                Ending::Reported(status) => say!("agent: {id} ended: reported {status}"),
                Ending::EndedByService(Some(status)) => {
                    say!("agent: {id} ended by the service: {status}")
                }
                Ending::EndedByService(None) => say!("agent: {id} ended by the service"),
                _ => say!("agent: {id} ended; whether with this agent's report is unknown"),
            }
            let _ = ended.send(());
        })
        .build()
}

fn rotate_logs(ctx: &Context, host: &Host) -> Result<Outcome, HandlerError> {
    let keep = ctx.document().to_value()["keep"].as_u64().unwrap_or(5);
    say!("agent: {} rotating logs, keeping {keep}", ctx.job_id());
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
        say!(
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
        say!("agent: {} resumed at step {start}", ctx.job_id());
    }
    for step in STEPS.iter().skip(start) {
        say!("agent: {} {step} {version}", ctx.job_id());
        let details = StatusDetails::from_pairs([("step", *step), ("version", version.as_str())])?;
        // Best effort: a lost progress update does not stop the install.
        if let Err(error) = ctx.progress_with_step_timeout(details, StepTimeout::minutes(10)?) {
            say!("agent: {} progress not reported: {error}", ctx.job_id());
        }
        if host.work(ctx, 30) {
            if ctx.is_canceled() {
                say!(
                    "agent: {} {}; stopping",
                    ctx.job_id(),
                    ended_by_service(ctx)
                );
            }
            return Ok(Outcome::failed());
        }
        save_step(&file, step)?;
    }
    save_step(&file, "reboot")?;
    say!(
        "agent: {} installed {version}; rebooting to activate it",
        ctx.job_id()
    );
    let _ = host.reboot.send(());
    // The runner is torn down now and abandons this handler, as a reboot would: it never
    // returns an outcome (it waits until the agent exits).
    let _ = host.halt.recv();
    Ok(Outcome::failed())
}

/// What the service did to a canceled execution, from the state its refusal of one more
/// progress update carries (AWS names the execution's status there): "canceled in the cloud",
/// "timed out", "removed".
fn ended_by_service(ctx: &Context) -> String {
    let probe = StatusDetails::from_pairs([("step", "stopping")]).unwrap_or_default();
    let status = match ctx.progress(probe) {
        Err(error) => error
            .rejection()
            .and_then(|rejection| rejection.execution_state.as_ref())
            .and_then(|state| state.status.clone()),
        Ok(()) => None,
    };
    match status {
        Some(JobStatus::Canceled) => "canceled in the cloud".to_owned(),
        Some(JobStatus::TimedOut) => {
            "timed out (TIMED_OUT: a step or in-progress timer ran out)".to_owned()
        }
        Some(JobStatus::Removed) => "removed in the cloud".to_owned(),
        Some(other) => format!("ended by the service ({other})"),
        None => "ended by the service".to_owned(),
    }
}

fn read_step(file: &Path) -> Option<String> {
    fs::read_to_string(file).ok().map(|s| s.trim().to_owned())
}

fn save_step(file: &Path, step: &str) -> Result<(), HandlerError> {
    fs::write(file, step)?;
    Ok(())
}

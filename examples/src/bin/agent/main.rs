//! agent: a device agent built on the job runner, over a real MQTT broker, for one thing.
//!
//! Runs `jobs_core::runner::Runner` with three handlers, chosen by the document's `operation`:
//! - `rotate-logs` (`{"operation": "rotate-logs", "keep": 5}`): rotates, reports `kept`.
//! - `install-firmware`: an over-the-air update (module [`ota`]). The document names the
//!   firmware's version, its URL (on AWS a pre-signed S3 URL:
//!   `${aws:iot:s3-presigned-url:https://s3.amazonaws.com/BUCKET/KEY}`, which the service
//!   replaces before the device sees it) and its SHA-256:
//!   `{"operation": "install-firmware", "version": "3.0.0", "url": "…", "sha256": "…"}`.
//!   The agent downloads it with the runner's download step (progress in the status details,
//!   resumed after a cut or a restart, a fresh URL when it expired, verified before it is
//!   moved into place), installs it (the version goes to a file in `--state-dir`), and
//!   **reboots**: the runner is torn down as a reboot would and a new one is built, which
//!   resumes the execution (`Context::resumed`), checks the version that runs and reports
//!   `SUCCEEDED`, or `FAILED` with the reason. A real reboot (kill the agent, start it again)
//!   resumes the same way, a download included.
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
//! `--alpn`, `--connect-retry`); `--state-dir DIR` where the firmware, its version and the
//! progress survive a reboot (default: a directory under the system's temp dir);
//! `--work-scale F` real seconds per simulated second of work (default 0.01); `--exit-after N`
//! stops after N executions ended (default: run until killed). Output: one line per step on
//! standard output.

mod handlers;
mod ota;

use std::error::Error;
use std::fs;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use crossbeam_channel::{Receiver, Sender, select};
use examples::connect::DeviceArgs;
use examples::{logger, say};
use jobs_core::Jobs;
use jobs_core::runner::{Context, Ending, Runner};

/// agent: a device agent on the job runner, for one thing, over a real MQTT broker.
///
/// Handlers by the document's "operation": rotate-logs, install-firmware (an over-the-air
/// update: download with progress, verify, install, a simulated reboot and a resume), fail.
/// Anything else is REJECTED with the reason.
#[derive(Debug, Parser)]
#[command(name = "agent", version)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Where the firmware, its version and the progress survive a reboot [default: a
    /// directory under the system's temp dir].
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

    /// Asks for a reboot and never comes back: the runner is torn down and abandons this
    /// handler after its stop grace, as a reboot would, leaving the execution IN_PROGRESS for
    /// the next runner to resume. The thread waits until the agent exits.
    fn reboot(&self) {
        let _ = self.reboot.send(());
        self.halt_until_exit();
    }

    /// Leaves the execution IN_PROGRESS for the next start: the runner is stopping, and a
    /// handler that returned an outcome now would have it reported; one that does not return
    /// within the stop grace is abandoned, its execution left IN_PROGRESS.
    fn halt_until_exit(&self) {
        let _ = self.halt.recv();
    }
}

fn runner(jobs: &Jobs, host: Arc<Host>, ended: Sender<()>) -> Result<Runner, jobs_core::Error> {
    let rotate = Arc::clone(&host);
    Runner::builder(jobs)
        // A "reboot" abandons the handler that asked for it after this grace.
        .stop_grace(Duration::from_secs(2))
        .handler("rotate-logs", move |ctx| {
            handlers::rotate_logs(ctx, &rotate)
        })
        .handler("install-firmware", move |ctx| {
            ota::install_firmware(ctx, &host)
        })
        .handler("fail", handlers::fail)
        // Documents no handler takes: REJECTED, with the reason printed and reported.
        .fallback(handlers::unsupported)
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

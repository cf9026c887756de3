//! device: the quickstart's device loop over a real MQTT broker, for one thing.
//!
//! Connects to `--broker` as `--thing`, then works through its jobs: when the service reports
//! a change, list the pending executions, describe each to get its document, report
//! `IN_PROGRESS`, do the work (sleep), then report `SUCCEEDED` or `FAILED` — or `REJECTED` for
//! a document it cannot handle (see `examples::device` for the documents it understands). The
//! loop is the one the offline quickstart runs, shared through the `examples` library.
//!
//! Against the local stand-in (`jobs-service`, see its header) on a local mosquitto:
//! ```sh
//! cargo run -p examples --features paho --bin device -- --thing pump-07 --once
//! ```
//! Against AWS IoT Core, with the thing's certificate (port 8883, or 443 with `--alpn`):
//! ```sh
//! cargo run -p examples --features paho --bin device -- --thing pump-07 \
//!     --broker ssl://abcdefgh123456-ats.iot.eu-west-1.amazonaws.com:443 --alpn \
//!     --ca AmazonRootCA1.pem --cert device.pem.crt --key private.pem.key
//! ```
//!
//! Flags:
//! - `--thing NAME` — the thing (required); also the MQTT client ID unless `--client-id ID`.
//! - `--broker URI` — the broker (default `tcp://127.0.0.1:1883`); `--ca FILE`, `--cert FILE`,
//!   `--key FILE` for TLS and client certificates; `--alpn` sends `x-amzn-mqtt-ca` (AWS IoT
//!   with certificates on port 443).
//! - `--once` — process what is pending, then exit (exit status 0 if every request
//!   succeeded). Without it the device runs forever: after each pass it waits for a `notify`
//!   (`next_event`, at most `--wait SECONDS`, default 30, then it waits again).
//! - `--work-scale FACTOR` — real seconds slept per second of simulated work (default 0.01: the
//!   120 s firmware download takes 1.2 s; 0 for no waiting).
//!
//! Output: one line per step on standard output, each stamped with the seconds since start;
//! with `--once` a final `done: N succeeded, N failed, N rejected`. `RUST_LOG=info` (a bare
//! level) shows the libraries' logs on standard error.

use std::error::Error;
use std::time::{Duration, Instant};

use examples::connect::DeviceArgs;
use examples::device::{Host, Tally, process_pending};
use examples::logger;

struct Args {
    device: DeviceArgs,
    thing: String,
    once: bool,
    wait: Duration,
}

fn usage() -> String {
    DeviceArgs::usage(
        "device",
        &format!(
            "  --once           process what is pending, then exit\n  \
             --wait SECONDS   longest wait for a notification between passes (default 30)\n{}",
            DeviceArgs::WORK_SCALE_USAGE
        ),
    )
}

fn parse_args() -> Result<Args, String> {
    let mut device = DeviceArgs::default();
    let mut once = false;
    let mut wait = Duration::from_secs(30);
    let mut rest = std::env::args().skip(1);
    while let Some(flag) = rest.next() {
        if device.parse_flag(&flag, &mut rest)? {
            continue;
        }
        let mut value = || rest.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--once" => once = true,
            "--wait" => {
                let seconds: u64 = value()?.parse().map_err(|e| format!("--wait: {e}"))?;
                wait = Duration::from_secs(seconds);
            }
            "--help" | "-h" => return Err(usage()),
            other => return Err(format!("unknown flag {other} (try --help)")),
        }
    }
    let thing = device.thing.take().ok_or_else(usage)?;
    Ok(Args {
        device,
        thing,
        once,
        wait,
    })
}

/// Real time: stamps are seconds since start, work sleeps.
struct RealTime {
    start: Instant,
    scale: f64,
}

impl Host for RealTime {
    fn timestamp(&self) -> String {
        format!("[+{:>6.2}s]", self.start.elapsed().as_secs_f64())
    }

    fn work(&self, seconds: u64) -> Result<(), Box<dyn Error>> {
        // The scale is checked to be 0–1000 and the work takes minutes at most.
        std::thread::sleep(Duration::from_secs(seconds).mul_f64(self.scale));
        Ok(())
    }
}

fn main() {
    examples::exit_on_error("device", run);
}

fn run() -> Result<(), Box<dyn Error>> {
    let args = examples::args_or_exit(parse_args());
    logger::init();
    let host = RealTime {
        start: Instant::now(),
        scale: args.device.work_scale,
    };

    let jobs = args.device.connect(&args.thing)?;
    println!(
        "{} connected to {} as {}",
        host.timestamp(),
        args.device.broker.uri,
        args.thing
    );

    if args.once {
        let tally = process_pending(&jobs, &host, false)?;
        println!("{} done: {}", host.timestamp(), summary(tally));
        return Ok(());
    }

    let mut total = Tally::default();
    let mut retry = false;
    loop {
        match process_pending(&jobs, &host, retry) {
            Ok(tally) => {
                total += tally;
                retry = false;
                println!(
                    "{} waiting for jobs ({} so far)",
                    host.timestamp(),
                    summary(total)
                );
            }
            Err(error) => {
                // E.g. a timeout while the broker is away: look again after the next wait.
                println!("{} error: {error}; will retry", host.timestamp());
                retry = true;
            }
        }
        match jobs.with_timeout(args.wait).next_event() {
            Ok(Some(event)) => log::debug!("event: {event:?}"),
            Ok(None) => {}
            Err(error) => {
                println!("{} error while waiting: {error}", host.timestamp());
                retry = true;
            }
        }
        if retry {
            // Not connected, most likely: Paho reconnects on its own; look again in a second.
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

fn summary(tally: Tally) -> String {
    format!(
        "{} succeeded, {} failed, {} rejected",
        tally.succeeded, tally.failed, tally.rejected
    )
}

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
//! Flags (`--help` lists them; `--flag value` or `--flag=value`):
//! - `--thing NAME` — the thing (required); also the MQTT client ID unless `--client-id ID`.
//! - `--broker URI` — the broker (default `tcp://127.0.0.1:1883`); `--ca FILE`, `--cert FILE`,
//!   `--key FILE` for TLS and client certificates; `--alpn` sends `x-amzn-mqtt-ca` (AWS IoT
//!   with certificates on port 443); `--connect-retry SECONDS` keeps retrying the first
//!   connect.
//! - `--once` — process what is pending, then exit (exit status 0 if every request
//!   succeeded). Without it the device runs forever: after each pass it waits for a `notify`
//!   (`next_event`, at most `--wait SECONDS`, default 30, at least 1, then it waits again).
//! - `--work-scale FACTOR` — real seconds slept per second of simulated work (default 0.01: the
//!   120 s firmware download takes 1.2 s; 0 for no waiting).
//!
//! Output: one line per step on standard output, each stamped with the seconds since start;
//! `waiting for jobs` once per quiet spell; with `--once` a final
//! `done: N succeeded, N failed, N rejected`. `RUST_LOG=info` (or module filters such as
//! `RUST_LOG=jobs_paho=debug`) shows the libraries' logs on standard error.

use std::error::Error;
use std::time::{Duration, Instant};

use clap::Parser;
use examples::connect::DeviceArgs;
use examples::device::{Host, Tally, process_pending};
use examples::{logger, say};

/// device: the quickstart's device loop for one thing, over a real MQTT broker.
///
/// Works through the thing's jobs: list, describe, IN_PROGRESS, work, then SUCCEEDED or
/// FAILED, or REJECTED (with the reason) for a document whose "operation" it does not know.
#[derive(Debug, Parser)]
#[command(name = "device", version)]
struct Args {
    #[command(flatten)]
    device: DeviceArgs,
    /// Process what is pending, then exit.
    #[arg(long)]
    once: bool,
    /// Longest wait for a notification between passes, in seconds (at least 1).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_wait)]
    wait: Duration,
}

/// Parses `--wait`: whole seconds, at least 1 (0 would poll without pause).
fn parse_wait(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(0) => Err("must be at least 1 second (0 would poll the broker without pause)".into()),
        Ok(seconds) => Ok(Duration::from_secs(seconds)),
        Err(_) => Err(format!("not a whole number of seconds: {value:?}")),
    }
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
    let args = Args::parse();
    logger::init();
    examples::exit_on_error("device", || run(&args));
}

fn run(args: &Args) -> Result<(), Box<dyn Error>> {
    let host = RealTime {
        start: Instant::now(),
        scale: args.device.work_scale,
    };

    let jobs = args.device.connect()?;
    say!(
        "{} connected to {} as {}",
        host.timestamp(),
        args.device.broker.uri,
        args.device.thing
    );

    if args.once {
        let tally = process_pending(&jobs, &host, false)?;
        say!("{} done: {}", host.timestamp(), summary(tally));
        return Ok(());
    }

    let mut total = Tally::default();
    let mut retry = false;
    // The tally last reported by a "waiting" line: a pass that changed nothing (an event that
    // only repeated what was already handled) prints nothing.
    let mut reported = None;
    loop {
        match process_pending(&jobs, &host, retry) {
            Ok(tally) => {
                total += tally;
                retry = false;
                if reported != Some(total) {
                    say!(
                        "{} waiting for jobs ({} so far)",
                        host.timestamp(),
                        summary(total)
                    );
                    reported = Some(total);
                }
            }
            Err(error) => {
                // E.g. a timeout while the broker is away: look again after the next wait.
                say!("{} error: {error}; will retry", host.timestamp());
                retry = true;
                reported = None;
            }
        }
        match jobs.with_timeout(args.wait).next_event() {
            Ok(Some(event)) => log::debug!("event: {event:?}"),
            Ok(None) => {}
            Err(error) => {
                say!("{} error while waiting: {error}", host.timestamp());
                retry = true;
                reported = None;
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

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_parses_typed_values_before_anything_connects() {
        Args::command().debug_assert();
        let args =
            Args::try_parse_from(["device", "--thing=pump-07", "--wait=5", "--once"]).unwrap();
        assert_eq!(args.device.thing.as_str(), "pump-07");
        assert_eq!(args.wait, Duration::from_secs(5));
        for bad in [
            vec!["device", "--thing", "pump-07", "--wait", "0"],
            vec!["device", "--thing", ""],
            vec!["device", "--thing", "x/+/#"],
            vec!["device", "--thing", "pump-07", "--broker", "http://h:1883"],
            vec!["device", "--thing", "pump-07", "--work-scale", "-1"],
            vec!["device"],
        ] {
            assert!(Args::try_parse_from(&bad).is_err(), "{bad:?}");
        }
    }
}

//! Quickstart: a small simulated fleet works through its AWS IoT Jobs — offline.
//!
//! Needs no network, broker or credentials: everything runs in memory on the `jobs-mock`
//! [`MockBroker`], with the `jobs-mock` [`Simulator`] playing the AWS IoT Jobs service on a
//! virtual clock (so the output is the same on every run).
//!
//! What it shows:
//! 1. An operator creates four jobs for three things; one of them carries a document the
//!    device does not understand.
//! 2. Each device runs the classic loop over its own `jobs_core::Client`: when `changed()`,
//!    `list()` the pending executions, `describe()` each one to get its document, report
//!    `IN_PROGRESS`, do the work, then report `SUCCEEDED` or `FAILED` — or `REJECTED` for the
//!    document it cannot handle.
//! 3. Finally the state of every execution as the simulated service sees it.
//!
//! Run it with:
//! ```sh
//! cargo run -p examples --bin quickstart
//! ```
//! `--help` says what it does; it takes no other flag. `RUST_LOG` (such as `RUST_LOG=debug`
//! or `RUST_LOG=jobs_core=debug`) shows the libraries' logs on standard error.

use std::error::Error;
use std::time::Duration;

use clap::Parser;
use examples::device::{Host, process_pending};
use examples::{logger, say};
use jobs_core::{Client, Document, Event, JobId, Jobs, ThingName};
use jobs_mock::MockBroker;
use jobs_mock::service::{Clock, ExecutionInfo, JobSpec, JobsService, Simulator};
use serde_json::json;

/// The virtual clock's start: 2025-06-15T15:06:40Z. Times below are shown relative to it.
const START: i64 = 1_750_000_000;

const THINGS: [&str; 3] = ["pump-07", "pump-08", "valve-12"];

/// quickstart: a small simulated fleet works through its AWS IoT Jobs, offline.
///
/// Everything runs in memory: the jobs-mock broker, and its simulator of the AWS IoT Jobs
/// service on a virtual clock, so every run prints the same. No network, broker or
/// credentials.
#[derive(Debug, Parser)]
#[command(name = "quickstart", version)]
struct Args {}

fn main() {
    let Args {} = Args::parse();
    logger::init();
    examples::exit_on_error("quickstart", run);
}

fn run() -> Result<(), Box<dyn Error>> {
    let broker = MockBroker::new();
    // Inline: the simulator answers on the device's publishing thread, so the reply and the
    // events it causes have both arrived when a call returns, and every run prints the same.
    let simulator = Simulator::start_inline(
        broker.connect("jobs-service"),
        JobsService::new(Clock::virtual_at(START)),
    )?;

    say!("== operator: creating jobs ==");
    let jobs = [
        (
            "rotate-logs",
            json!({"operation": "rotate-logs", "keep": 5}),
            &THINGS[..],
        ),
        (
            "firmware-2-4",
            json!({"operation": "install-firmware", "version": "2.4.0", "sizeMb": 40}),
            &THINGS[..2],
        ),
        (
            "calibrate-flow",
            json!({"operation": "calibrate-flow", "litresPerMinute": 42}),
            &THINGS[2..],
        ),
        (
            "quantum-upgrade",
            json!({"operation": "teleport", "destination": "elsewhere"}),
            &THINGS[2..],
        ),
    ];
    for (id, document, things) in jobs {
        let targets = things
            .iter()
            .map(|t| ThingName::new(*t))
            .collect::<Result<Vec<_>, _>>()?;
        simulator.create_job(
            JobSpec::new(JobId::new(id)?, Document::from_serialize(&document)?).things(targets),
        )?;
        say!("created {id:<16} for {}: {document}", things.join(", "));
    }

    for thing in THINGS {
        say!();
        say!("== device {thing} ==");
        run_device(&broker, &simulator, thing)?;
    }

    say!();
    say!("== the service's view of every execution ==");
    print_table(&simulator.executions());
    Ok(())
}

/// The device loop of one thing, over its own connection (the loop itself is
/// [`examples::device::process_pending`], shared with the `device` program).
fn run_device(
    broker: &MockBroker,
    simulator: &Simulator,
    thing: &str,
) -> Result<(), Box<dyn Error>> {
    let client = Client::new(broker.connect(thing))?;
    let jobs = Jobs::new(&client, thing)?;
    process_pending(&jobs, &VirtualTime(simulator), false)?;
    let mut notify = 0;
    let mut notify_next = 0;
    while let Some(event) = jobs.try_next_event() {
        match event {
            Event::JobsChanged(_) => notify += 1,
            Event::NextJobChanged(_) => notify_next += 1,
            _ => {}
        }
    }
    say!(
        "{} done; heard {notify} notify and {notify_next} notify-next events",
        at(simulator)
    );
    Ok(())
}

/// The device runs on the simulator's virtual clock: "doing the work" advances it, so time
/// passes only when we say so.
struct VirtualTime<'a>(&'a Simulator);

impl Host for VirtualTime<'_> {
    fn timestamp(&self) -> String {
        at(self.0)
    }

    fn work(&self, seconds: u64) -> Result<(), Box<dyn Error>> {
        self.0.advance_clock(Duration::from_secs(seconds));
        Ok(())
    }
}

/// The simulated time, relative to the start.
fn at(simulator: &Simulator) -> String {
    format!("[+{:>3}s]", simulator.now() - START)
}

fn relative(time: Option<i64>) -> String {
    time.map_or_else(|| "-".to_owned(), |t| format!("+{}s", t - START))
}

fn print_table(executions: &[ExecutionInfo]) {
    say!(
        "{:<9} {:<16} {:<10} {:>3} {:>5} {:>7} {:>8} {:>8}  details",
        "thing",
        "job",
        "status",
        "ver",
        "exec#",
        "queued",
        "started",
        "updated"
    );
    for e in executions {
        let details = e.status_details.as_ref().map_or_else(String::new, |d| {
            d.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(", ")
        });
        say!(
            "{:<9} {:<16} {:<10} {:>3} {:>5} {:>7} {:>8} {:>8}  {details}",
            e.thing_name.as_str(),
            e.job_id.as_str(),
            e.status.to_string(),
            e.version_number,
            e.execution_number,
            relative(Some(e.queued_at)),
            relative(e.started_at),
            relative(Some(e.last_updated_at)),
        );
    }
}

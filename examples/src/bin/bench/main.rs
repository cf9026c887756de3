//! Benchmarks of the Jobs client: in-process against the simulator, over a local mosquitto
//! against a raw Paho baseline and over the pure-Rust rumqttc transport, and a fleet of 1,000
//! things on one connection.
//!
//! Prints a table and writes `bench.json` and `bench.svg` (latency and throughput against
//! threads) into the output directory. Needs `mosquitto` on the `PATH`: the bench starts its
//! own on 127.0.0.1 (free port, `set_tcp_nodelay true`) and kills it at the end.
//!
//! ```sh
//! cargo run --release -p examples --features paho,rumqttc,bench --bin bench
//! cargo run --release -p examples --features paho,rumqttc,bench --bin bench -- --smoke   # CI: seconds
//! ```
//! Options: `--smoke` (small counts, short runs; no timing is asserted), `--out DIR` (default
//! `target/bench`), `--profile N` (only N in-process describes on one thread, for
//! `valgrind --tool=callgrind` or `perf record`).

mod chart;
mod fleet;
mod inprocess;
mod mqtt;
mod report;
mod stats;

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

/// The error type of the whole program.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// What to run and for how long.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) smoke: bool,
    pub(crate) threads: Vec<usize>,
    /// Unrecorded calls before each measurement.
    pub(crate) warmup: Duration,
    /// Measured time per data point.
    pub(crate) time: Duration,
    /// Measured time per data point of the library / raw comparison (longer: the ratio is
    /// what the targets judge, and 8 threads on 2 cores are noisy).
    pub(crate) compare_time: Duration,
    /// Library and raw baseline alternate in this many rounds per data point.
    pub(crate) rounds: u32,
    /// Things in the fleet.
    pub(crate) things: usize,
    pub(crate) out: PathBuf,
    /// `--profile N` / `--profile-large N`: only N in-process describes of the small or the
    /// 32 KB document on one thread (for callgrind/perf).
    pub(crate) profile: Option<(u64, inprocess::Size)>,
}

/// bench: the benchmarks of BENCHMARKS.md (in-process, over a mosquitto it starts itself
/// against a raw paho-mqtt baseline and the rumqttc transport, and a fleet of things).
#[derive(Debug, clap::Parser)]
#[command(name = "bench", version)]
struct Args {
    /// A few-second run with small counts; no targets are judged.
    #[arg(long)]
    smoke: bool,
    /// Where the report (bench.json, bench.txt, bench.svg) is written.
    #[arg(long, value_name = "DIR", default_value = "target/bench")]
    out: PathBuf,
    /// Only N in-process describes of the small document on one thread (for callgrind/perf).
    #[arg(long, value_name = "N", conflicts_with = "profile_large")]
    profile: Option<u64>,
    /// Only N in-process describes of the 32 KB document on one thread.
    #[arg(long, value_name = "N")]
    profile_large: Option<u64>,
}

impl Config {
    fn from_args() -> Self {
        let args = <Args as clap::Parser>::parse();
        let smoke = args.smoke;
        let profile = match (args.profile, args.profile_large) {
            (Some(calls), _) => Some((calls, inprocess::Size::Small)),
            (None, Some(calls)) => Some((calls, inprocess::Size::Large)),
            (None, None) => None,
        };
        Self {
            smoke,
            threads: vec![1, 2, 4, 8],
            warmup: Duration::from_millis(if smoke { 20 } else { 300 }),
            time: Duration::from_millis(if smoke { 60 } else { 3000 }),
            compare_time: Duration::from_millis(if smoke { 60 } else { 6000 }),
            rounds: if smoke { 1 } else { 12 },
            things: if smoke { 50 } else { 1000 },
            out: args.out,
            profile,
        }
    }
}

fn main() -> Result<(), BoxError> {
    let config = Config::from_args();
    if let Some((calls, size)) = config.profile {
        return inprocess::profile(calls, size);
    }
    let machine_before = report::Machine::probe();
    let mosquitto = jobs_mock::local_broker::LocalBroker::start()?;
    let uri = mosquitto.uri();
    // The fleet first, so that its memory growth is not hidden by memory freed earlier.
    let fleet = fleet::run(&config, &uri)?;
    let over_broker = mqtt::run(&config, &mosquitto)?;
    drop(mosquitto);
    let in_process = inprocess::run(&config)?;
    let mut machine = machine_before;
    machine.load_after = report::load_average();
    let results = report::Results {
        config,
        machine,
        in_process,
        over_broker,
        fleet,
    };
    results.print();
    results.write()?;
    Ok(())
}

//! Benchmarks of the Jobs client: in-process against the simulator, over a local mosquitto
//! against a raw Paho baseline and over the pure-Rust rumqttc transport, a fleet of 1,000
//! things on one connection, and a gateway of 10,000 things within AWS IoT Core's quotas (on
//! mosquitto with the `jobs-mosquitto-plugin`).
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
//! `valgrind --tool=callgrind` or `perf record`), `--gateway-only` (only the gateway part,
//! written to `gateway.json`), `--gateway-scale N` (AWS's publish rate × N for the gateway).

mod chart;
mod fleet;
mod gateway;
mod gateway_report;
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
    /// Only the gateway part.
    pub(crate) gateway_only: bool,
    /// The gateway part: AWS's publish rate × this, things on the connection, things the job
    /// targets, calls per side per round of the limiter's comparison.
    pub(crate) gateway_scale: u32,
    pub(crate) gateway_things: usize,
    pub(crate) gateway_job_things: usize,
    pub(crate) gateway_calls_per_round: usize,
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
    /// Only the gateway part (10,000 things within AWS IoT Core's quotas); writes gateway.json.
    #[arg(long, conflicts_with_all = ["profile", "profile_large"])]
    gateway_only: bool,
    /// The gateway part runs at AWS IoT Core's publish rate × N (100 × N a second per
    /// connection), the client's pace scaled the same way, so that it takes seconds.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=1000))]
    gateway_scale: u32,
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
            gateway_only: args.gateway_only,
            gateway_scale: args.gateway_scale,
            gateway_things: if smoke { 200 } else { 10_000 },
            gateway_job_things: if smoke { 20 } else { 1_000 },
            gateway_calls_per_round: if smoke { 20 } else { 200 },
        }
    }
}

fn main() -> Result<(), BoxError> {
    let config = Config::from_args();
    if let Some((calls, size)) = config.profile {
        return inprocess::profile(calls, size);
    }
    let machine_before = report::Machine::probe();
    if config.gateway_only {
        let gateway = gateway::run(&config)?;
        let mut machine = machine_before;
        machine.load_after = report::load_average();
        return gateway_report::only(&config, &machine, &gateway);
    }
    let mosquitto = jobs_mock::local_broker::LocalBroker::start()?;
    let uri = mosquitto.uri();
    // The fleet first, so that its memory growth is not hidden by memory freed earlier.
    let fleet = fleet::run(&config, &uri)?;
    // The gateway next, on a broker of its own: memory freed by the fleet is small against
    // its 20 MB target (`--gateway-only` measures it alone).
    let gateway = gateway::run(&config)?;
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
        gateway,
    };
    results.print();
    results.write()?;
    Ok(())
}

//! Benchmarks of the Jobs client: in-process against the simulator, over a local mosquitto
//! against a raw Paho baseline, and a fleet of 1,000 things on one connection.
//!
//! Run it with (needs `mosquitto` on the `PATH` for parts 2 and 3):
//! ```sh
//! cargo run --release -p examples --features paho --bin bench
//! cargo run --release -p examples --features paho --bin bench -- --smoke   # CI: a few seconds
//! ```
//! Options: `--smoke` (small counts, short runs), `--out DIR` (where `bench.json` and
//! `bench.svg` go; default `target/bench`), `--skip-broker` (part 1 only).

mod inprocess;
mod stats;

use std::error::Error;
use std::time::Duration;

/// The error type of the whole program.
pub(crate) type BoxError = Box<dyn Error + Send + Sync>;

/// What to run and for how long.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) smoke: bool,
    pub(crate) threads: Vec<usize>,
    pub(crate) warmup: Duration,
    pub(crate) time: Duration,
}

fn main() -> Result<(), BoxError> {
    let smoke = std::env::args().any(|a| a == "--smoke");
    let config = Config {
        smoke,
        threads: vec![1, 2, 4, 8],
        warmup: Duration::from_millis(if smoke { 20 } else { 200 }),
        time: Duration::from_millis(if smoke { 50 } else { 1000 }),
    };
    println!("mode: {}", if config.smoke { "smoke" } else { "full" });
    let part1 = inprocess::run(&config)?;
    println!("32 KB document: {} bytes", part1.large_document_bytes);
    for (name, samples) in [
        ("describe", &part1.describe),
        ("update", &part1.update),
        ("list", &part1.list),
        ("describe 32KB", &part1.describe_large),
    ] {
        for s in samples {
            println!(
                "{name:14} {:>2} thr {:>10.0}/s p50 {:>8.1} p99 {:>8.1}",
                s.threads,
                s.rate(),
                s.p50_us,
                s.p99_us
            );
        }
    }
    Ok(())
}

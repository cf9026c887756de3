//! The command line: a mode (`--short`, full, `--big`) and overrides.

use std::time::Duration;

use clap::Parser;

use crate::dice::Dice;

#[derive(Debug, Parser)]
#[command(
    name = "soak",
    version,
    about = "The job runner on real parts under broker outages, crashes, reboots, cancels, \
             timeouts, failing handlers and re-runs; checks what it claims."
)]
struct Cli {
    /// What ./test.sh runs: 4 devices, 40 jobs, 4 kills, 3 freezes, 2 reboots (about 25 s).
    #[arg(long, conflicts_with = "big")]
    short: bool,
    /// 100 devices, 1,000 jobs, 20 kills, 10 freezes, 20 reboots. Without a mode: 10
    /// devices, 200 jobs, 20 kills, 10 freezes, 6 reboots.
    #[arg(long)]
    big: bool,
    /// Device things, each with its own connection and runner.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    devices: Option<u32>,
    /// Jobs (a re-run job has two executions).
    #[arg(long, value_name = "N")]
    jobs: Option<u32>,
    /// Broker kills (SIGKILL, then a restart).
    #[arg(long, value_name = "N")]
    restarts: Option<u32>,
    /// Broker freezes (SIGSTOP, then SIGCONT).
    #[arg(long, value_name = "N")]
    freezes: Option<u32>,
    /// Device reboots (the runner stopped with its handlers running, and built again).
    #[arg(long, value_name = "N")]
    reboots: Option<u32>,
    /// The seed of the plan [default: random; printed].
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
}

/// The settings of a run.
#[derive(Debug)]
pub(crate) struct Args {
    pub(crate) mode: &'static str,
    pub(crate) devices: usize,
    pub(crate) jobs: usize,
    pub(crate) restarts: usize,
    pub(crate) freezes: usize,
    pub(crate) reboots: usize,
    pub(crate) seed: u64,
    /// The watchdog's limit on the whole run.
    pub(crate) limit: Duration,
}

impl Args {
    /// Parses the command line (exits with the usage on an error).
    pub(crate) fn parse() -> Self {
        let cli = Cli::parse();
        let (mode, [devices, jobs, restarts, freezes, reboots], limit) = if cli.short {
            ("short", [4, 40, 4, 3, 2], 120)
        } else if cli.big {
            ("big", [100, 1000, 20, 10, 20], 1200)
        } else {
            ("full", [10, 200, 20, 10, 6], 600)
        };
        let pick = |given: Option<u32>, default: usize| {
            given.map_or(default, |n| usize::try_from(n).unwrap_or(usize::MAX))
        };
        Self {
            mode,
            devices: pick(cli.devices, devices),
            jobs: pick(cli.jobs, jobs),
            restarts: pick(cli.restarts, restarts),
            freezes: pick(cli.freezes, freezes),
            reboots: pick(cli.reboots, reboots),
            seed: cli.seed.unwrap_or_else(Dice::random_seed),
            limit: Duration::from_secs(limit),
        }
    }
}

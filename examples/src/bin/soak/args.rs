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
    /// What ./test.sh runs: 4 devices, 40 jobs, 4 kills, 3 freezes, 2 reboots (about 30 s).
    /// With --ota: 3 devices, 9 jobs, a 2 MiB file, 2 kills, 2 freezes, 1 reboot.
    #[arg(long, conflicts_with = "big")]
    short: bool,
    /// 100 devices, 1,000 jobs, 20 kills, 10 freezes, 20 reboots. Without a mode: 10
    /// devices, 200 jobs, 20 kills, 10 freezes, 6 reboots.
    #[arg(long, conflicts_with = "ota")]
    big: bool,
    /// OTA: every job downloads a file from jobs-service's object store through a proxy that
    /// cuts, refuses and stalls the transfers, while the broker is killed and frozen: 6
    /// devices, 24 jobs, a 4 MiB file, 6 kills, 4 freezes, 4 reboots.
    #[arg(long)]
    ota: bool,
    /// OTA: the file's size in MiB.
    #[arg(long, value_name = "MIB", requires = "ota", value_parser = clap::value_parser!(u32).range(1..=64))]
    file_mib: Option<u32>,
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
    /// OTA mode: the file's size in MiB (`None`: not OTA).
    pub(crate) ota_mib: Option<usize>,
    /// The watchdog's limit on the whole run.
    pub(crate) limit: Duration,
}

impl Args {
    /// Parses the command line (exits with the usage on an error).
    pub(crate) fn parse() -> Self {
        let cli = Cli::parse();
        let (mode, [devices, jobs, restarts, freezes, reboots], limit) = if cli.ota && cli.short {
            ("ota, short", [3, 9, 2, 2, 1], 120)
        } else if cli.ota {
            ("ota", [6, 24, 6, 4, 4], 300)
        } else if cli.short {
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
            ota_mib: cli.ota.then(|| {
                let default = if cli.short { 2 } else { 4 };
                pick(cli.file_mib, default)
            }),
            limit: Duration::from_secs(limit),
        }
    }
}

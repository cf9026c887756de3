//! The table, the targets, `bench.json` and `bench.svg` (drawn by [`chart`]).

use std::fs;

use plotters::style::RGBColor;

use serde_json::{Value, json};

use crate::fleet::Fleet;
use crate::gateway::Gateway;
use crate::gateway_report;
use crate::inprocess::{Comparison, InProcess};
use crate::mqtt::{HOLD, OverBroker};
use crate::stats::{Sample, at};
use crate::{BoxError, Config, chart};

/// What the numbers were measured on.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    pub(crate) cpu: String,
    pub(crate) cores: usize,
    pub(crate) kernel: String,
    pub(crate) mosquitto: String,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
}

/// `/proc/loadavg`'s three load averages.
pub(crate) fn load_average() -> String {
    fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

impl Machine {
    pub(crate) fn probe() -> Self {
        let cpu = fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|c| {
                c.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        let mosquitto = std::process::Command::new("mosquitto")
            .arg("-h")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .next()
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".into());
        Self {
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
                .map(|k| k.trim().to_owned())
                .unwrap_or_else(|_| "unknown".into()),
            mosquitto,
            load_before: load_average(),
            load_after: String::new(),
        }
    }
}

/// Everything one run measured.
#[derive(Debug)]
pub(crate) struct Results {
    pub(crate) config: Config,
    pub(crate) machine: Machine,
    pub(crate) in_process: InProcess,
    pub(crate) over_broker: OverBroker,
    pub(crate) fleet: Fleet,
    pub(crate) gateway: Gateway,
}

/// In-process describe of the small job ÷ a bare round trip of its request and reply bytes
/// (median of the alternating rounds).
const DESCRIBE_TARGET: f64 = 12.0;
/// The same with the 32 KB document.
const DESCRIBE_LARGE_TARGET: f64 = 35.0;
/// Taking in a 32 KB describe reply (decode and document check) ÷ one
/// `serde_json::from_str::<&RawValue>` over the same bytes (issue #15).
const DECODE_LARGE_TARGET: f64 = 1.2;

/// One target and whether this run met it.
pub(crate) struct Check {
    pub(crate) name: &'static str,
    pub(crate) value: f64,
    pub(crate) unit: &'static str,
    /// `<=`, `>=` or `==`.
    pub(crate) op: &'static str,
    pub(crate) target: f64,
}

impl Check {
    pub(crate) fn met(&self) -> bool {
        match self.op {
            "<=" => self.value <= self.target,
            "==" => self.value == self.target,
            _ => self.value >= self.target,
        }
    }

    /// Prints the target's line: its value, the target, and whether it was met (never judged
    /// in smoke mode).
    pub(crate) fn print(&self, smoke: bool) {
        println!(
            "  {:<52} {:>10.3} {:<7} target {} {:<9} {}",
            self.name,
            self.value,
            self.unit,
            self.op,
            self.target,
            match (smoke, self.met()) {
                (true, _) => "not judged",
                (false, true) => "met",
                (false, false) => "MISSED",
            }
        );
    }
}

/// The p50 latency (µs) of the sample taken with `threads` threads.
fn p50(samples: &[Sample], threads: usize) -> Option<f64> {
    at(samples, threads).map(|s| s.p50_us)
}

/// The throughput (calls/s) of the sample taken with `threads` threads.
fn rate(samples: &[Sample], threads: usize) -> Option<f64> {
    at(samples, threads).map(Sample::rate)
}

fn ratio(a: Option<f64>, b: Option<f64>) -> f64 {
    match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => a / b,
        _ => f64::NAN,
    }
}

impl Results {
    fn checks(&self) -> Vec<Check> {
        let ob = &self.over_broker;
        let mut checks = vec![
            Check {
                name: "over mosquitto, 1 thread: library / raw p50",
                value: ratio(p50(&ob.library, 1), p50(&ob.raw, 1)),
                unit: "x",
                op: "<=",
                target: 1.05,
            },
            Check {
                name: "over mosquitto, 8 threads: library / raw throughput",
                value: ratio(rate(&ob.library, 8), rate(&ob.raw, 8)),
                unit: "x",
                op: ">=",
                target: 0.90,
            },
            Check {
                name: "1 ms responder: 8 threads / 1 thread throughput",
                value: ratio(rate(&ob.slow, 8), rate(&ob.slow, 1)),
                unit: "x",
                op: ">=",
                target: 6.0,
            },
            Check {
                name: "in-process describe / bare round trip",
                value: self.in_process.ratios.describe.ratio(),
                unit: "x",
                op: "<=",
                target: DESCRIBE_TARGET,
            },
            Check {
                name: "in-process describe 32 KB / bare round trip",
                value: self.in_process.ratios.describe_large.ratio(),
                unit: "x",
                op: "<=",
                target: DESCRIBE_LARGE_TARGET,
            },
            Check {
                name: "decode 32 KB describe reply / RawValue parse",
                value: self.in_process.ratios.decode_large.ratio(),
                unit: "x",
                op: "<=",
                target: DECODE_LARGE_TARGET,
            },
            Check {
                name: "fleet: client RSS growth",
                value: self.fleet.rss_growth_kib as f64 / 1024.0,
                unit: "MiB",
                op: "<=",
                target: 5.0,
            },
            Check {
                name: "fleet: construct and subscribe all",
                value: self.fleet.construct_ms,
                unit: "ms",
                op: "<=",
                target: 250.0,
            },
        ];
        checks.extend(gateway_report::checks(&self.gateway));
        checks
    }

    fn series(&self) -> Vec<(&'static str, &[Sample])> {
        vec![
            ("in-process describe", &self.in_process.describe[..]),
            ("in-process update", &self.in_process.update[..]),
            ("in-process list", &self.in_process.list[..]),
            (
                "in-process describe 32 KB",
                &self.in_process.describe_large[..],
            ),
            ("mosquitto describe, library", &self.over_broker.library[..]),
            ("mosquitto describe, raw paho", &self.over_broker.raw[..]),
            ("mosquitto describe, rumqttc", &self.over_broker.rumqttc[..]),
            (
                "mosquitto describe, 1 ms responder",
                &self.over_broker.slow[..],
            ),
        ]
    }

    /// The in-process comparisons behind the ratio targets.
    fn comparisons(&self) -> [(&'static str, &Comparison); 3] {
        let r = &self.in_process.ratios;
        [
            ("describe / bare round trip", &r.describe),
            ("describe 32 KB / bare round trip", &r.describe_large),
            ("decode 32 KB reply / RawValue parse", &r.decode_large),
        ]
    }

    /// The library over rumqttc against the library over jobs-paho, per thread count:
    /// (threads, p50 ratio, throughput ratio).
    fn rumqttc_vs_paho(&self) -> Vec<(usize, f64, f64)> {
        let ob = &self.over_broker;
        self.config
            .threads
            .iter()
            .map(|&t| {
                let latency = ratio(p50(&ob.rumqttc, t), p50(&ob.library, t));
                let throughput = ratio(rate(&ob.rumqttc, t), rate(&ob.library, t));
                (t, latency, throughput)
            })
            .collect()
    }

    /// Prints the machine, every data point, the fleet and the targets.
    pub(crate) fn print(&self) {
        let m = &self.machine;
        println!(
            "machine: {} ({} cores), Linux {}, {}",
            m.cpu, m.cores, m.kernel, m.mosquitto
        );
        println!(
            "load average before {} / after {}; mode {}; {:?} per point ({:?} in {} alternating \
             rounds for library vs raw)",
            m.load_before,
            m.load_after,
            if self.config.smoke { "smoke" } else { "full" },
            self.config.time,
            self.config.compare_time,
            self.config.rounds
        );
        println!();
        println!(
            "{:<36} {:>7} {:>12} {:>10} {:>10}",
            "benchmark", "threads", "calls/s", "p50 µs", "p99 µs"
        );
        for (name, samples) in self.series() {
            for s in samples {
                println!(
                    "{name:<36} {:>7} {:>12.0} {:>10.1} {:>10.1}",
                    s.threads,
                    s.rate(),
                    s.p50_us,
                    s.p99_us
                );
            }
        }
        println!(
            "(32 KB document: {} bytes of JSON; responder holds each reply {:?})",
            self.in_process.large_document_bytes, HOLD
        );
        let r = &self.in_process.ratios;
        println!();
        println!(
            "in-process against same-run baselines, 1 thread, {} alternating rounds of {:?} a \
             side, {} time per call (32 KB reply: {} bytes):",
            r.describe.rounds.len(),
            r.slice,
            if r.decode_large.on_cpu {
                "on-CPU"
            } else {
                "wall"
            },
            r.reply_large_bytes
        );
        for (name, comparison) in self.comparisons() {
            println!(
                "  {name:<46} median {:>7.3}x  ({:.2} µs / {:.2} µs); rounds: {}",
                comparison.ratio(),
                comparison.library_us(),
                comparison.baseline_us(),
                comparison
                    .ratios()
                    .iter()
                    .map(|r| format!("{r:.3}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
        }
        let f = &self.fleet;
        println!();
        println!(
            "fleet of {} things on one connection: construct+subscribe {:.1} ms, RSS +{} KiB, \
             notify fan-out p50 {:.1} ms, p99 {:.1} ms, last {:.1} ms (simulator published \
             2x{} events in {:.1} ms)",
            f.things,
            f.construct_ms,
            f.rss_growth_kib,
            f.fanout_p50_ms,
            f.fanout_p99_ms,
            f.fanout_last_ms,
            f.things,
            f.publish_ms
        );
        println!();
        gateway_report::print(&self.gateway);
        println!();
        println!("rumqttc transport / jobs-paho (describe over mosquitto, interleaved rounds):");
        for (threads, p50, rate) in self.rumqttc_vs_paho() {
            println!("  {threads} threads: p50 {p50:.3}x, throughput {rate:.3}x");
        }
        println!();
        if self.config.smoke {
            println!("targets (smoke mode: too short to mean anything, not judged):");
        } else {
            println!("targets:");
        }
        for c in self.checks() {
            c.print(self.config.smoke);
        }
    }

    fn json(&self) -> Value {
        let samples = |s: &[Sample]| {
            s.iter()
                .map(|s| {
                    json!({"threads": s.threads, "calls": s.calls, "seconds": s.seconds,
                           "calls_per_second": s.rate(), "p50_us": s.p50_us, "p99_us": s.p99_us})
                })
                .collect::<Vec<_>>()
        };
        let m = &self.machine;
        let f = &self.fleet;
        json!({
            "machine": {"cpu": m.cpu, "cores": m.cores, "kernel": m.kernel,
                        "mosquitto": m.mosquitto, "load_before": m.load_before,
                        "load_after": m.load_after},
            "mode": if self.config.smoke { "smoke" } else { "full" },
            "seconds_per_point": self.config.time.as_secs_f64(),
            "seconds_per_comparison_point": self.config.compare_time.as_secs_f64(),
            "comparison_rounds": self.config.rounds,
            "in_process": {
                "describe": samples(&self.in_process.describe),
                "update": samples(&self.in_process.update),
                "list": samples(&self.in_process.list),
                "describe_32k": samples(&self.in_process.describe_large),
                "document_32k_bytes": self.in_process.large_document_bytes,
                "reply_32k_bytes": self.in_process.ratios.reply_large_bytes,
                "seconds_per_side_per_round": self.in_process.ratios.slice.as_secs_f64(),
                "ratio_clock": if self.in_process.ratios.decode_large.on_cpu { "on-cpu" } else { "wall" },
                "ratios": self.comparisons().iter().map(|(name, c)| json!({
                    "name": name, "median_ratio": c.ratio(), "library_us": c.library_us(),
                    "baseline_us": c.baseline_us(),
                    "rounds": c.rounds.iter().map(|(l, b)| json!({
                        "library_us": l / 1000.0, "baseline_us": b / 1000.0,
                        "ratio": l / b})).collect::<Vec<_>>()})).collect::<Vec<_>>(),
            },
            "mosquitto": {
                "library": samples(&self.over_broker.library),
                "raw": samples(&self.over_broker.raw),
                "rumqttc": samples(&self.over_broker.rumqttc),
                "held_1ms": samples(&self.over_broker.slow),
            },
            "rumqttc_vs_paho": self.rumqttc_vs_paho().iter().map(|(t, p50, rate)| json!({
                "threads": t, "p50_ratio": p50, "throughput_ratio": rate})).collect::<Vec<_>>(),
            "fleet": {"things": f.things, "construct_ms": f.construct_ms,
                      "rss_growth_kib": f.rss_growth_kib, "fanout_p50_ms": f.fanout_p50_ms,
                      "fanout_p99_ms": f.fanout_p99_ms, "fanout_last_ms": f.fanout_last_ms,
                      "simulator_publish_ms": f.publish_ms},
            "gateway": gateway_report::json(&self.gateway),
            "targets": self.checks().iter().map(|c| json!({
                "name": c.name, "value": c.value, "unit": c.unit, "op": c.op,
                "target": c.target,
                "met": (!self.config.smoke).then(|| c.met())})).collect::<Vec<_>>(),
        })
    }

    /// Writes `bench.json` and `bench.svg` into the output directory.
    pub(crate) fn write(&self) -> Result<(), BoxError> {
        fs::create_dir_all(&self.config.out)?;
        let json_path = self.config.out.join("bench.json");
        fs::write(
            &json_path,
            serde_json::to_string_pretty(&self.json())? + "\n",
        )?;
        let svg_path = self.config.out.join("bench.svg");
        fs::write(&svg_path, self.svg()?)?;
        println!();
        println!("wrote {} and {}", json_path.display(), svg_path.display());
        Ok(())
    }

    /// The chart: every series, the library lines solid, the baselines dashed.
    fn svg(&self) -> Result<String, BoxError> {
        const PALETTE: [(u8, u8, u8); 8] = [
            (31, 119, 180),
            (23, 190, 207),
            (148, 103, 189),
            (140, 86, 75),
            (214, 39, 40),
            (0, 0, 0),
            (255, 127, 14),
            (44, 160, 44),
        ];
        let lines: Vec<chart::Line<'_>> = self
            .series()
            .into_iter()
            .zip(PALETTE)
            .map(|((name, samples), (r, g, b))| chart::Line {
                name,
                samples,
                look: chart::Look {
                    colour: RGBColor(r, g, b),
                    dashed: name.contains("raw"),
                },
            })
            .collect();
        let title = format!(
            "jobs-core describe/update/list against threads: {} ({} cores)",
            self.machine.cpu, self.machine.cores
        );
        let footer = format!(
            "{} mode, {:?} per point; load average {} before, {} after; raw baseline dashed",
            if self.config.smoke { "smoke" } else { "full" },
            self.config.time,
            self.machine.load_before,
            self.machine.load_after
        );
        chart::svg(&title, &footer, &self.config.threads, &lines)
    }
}

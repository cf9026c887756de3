//! The gateway part's targets, its lines of the report and its JSON; `--gateway-only` prints
//! and writes them alone (`gateway.json`).

use std::fs;

use serde_json::{Value, json};

use crate::gateway::Gateway;
use crate::report::{Check, Machine};
use crate::{BoxError, Config};

/// The gateway's targets (issue #16).
pub(crate) fn checks(g: &Gateway) -> Vec<Check> {
    vec![
        Check {
            name: "gateway: subscriptions used (all granted)",
            value: if g.subscribe_refused == 0 {
                g.broker_subscriptions.max(g.subscriptions as u64) as f64
            } else {
                f64::INFINITY
            },
            unit: "",
            op: "<=",
            target: 2.0,
        },
        Check {
            name: "gateway: construct all Jobs",
            value: g.construct_ms,
            unit: "ms",
            op: "<=",
            target: 500.0,
        },
        Check {
            name: "gateway: client RSS growth",
            value: g.rss_growth_kib as f64 / 1024.0,
            unit: "MiB",
            op: "<=",
            target: 20.0,
        },
        Check {
            name: "gateway: sweep publishes discarded",
            value: g.sweep_discarded as f64,
            unit: "",
            op: "<=",
            target: 0.0,
        },
        Check {
            name: "gateway: sweep rate / client budget",
            value: if g.sweep_failed == 0 {
                g.sweep_rate() / g.budget_per_second
            } else {
                0.0
            },
            unit: "x",
            op: ">=",
            target: 0.90,
        },
        Check {
            name: "gateway: runner, executions run exactly once",
            value: g.exactly_once as f64,
            unit: "",
            op: "==",
            target: g.job_things as f64,
        },
        Check {
            name: "gateway: runner publishes discarded",
            value: g.runner_discarded as f64,
            unit: "",
            op: "<=",
            target: 0.0,
        },
        Check {
            name: "per-thing strategy: thing refused (budget 50)",
            value: g.per_thing_refused_at.map_or(f64::NAN, |n| n as f64),
            unit: "",
            op: "==",
            target: 9.0,
        },
        Check {
            name: "limiter under budget: p50 with / without",
            value: g.limiter_ratio(),
            unit: "x",
            op: "<=",
            target: 1.05,
        },
    ]
}

/// The gateway's lines of the report.
pub(crate) fn print(g: &Gateway) {
    let l = &g.limiter;
    println!(
        "gateway on mosquitto with the jobs-mosquitto-plugin: AWS IoT Core's quotas, publish rate \
         scaled x{} ({} publishes/s per connection, in+out), client pace {:.0} requests/s in \
         bursts of {}",
        g.scale, g.quota_per_second, g.budget_per_second, g.burst
    );
    println!(
        "  {} things, GatewayWildcards: {} subscription(s) (plugin: {} held, {} refused); \
         constructed in {:.1} ms, RSS +{} KiB",
        g.things,
        g.subscriptions,
        g.broker_subscriptions,
        g.subscribe_refused,
        g.construct_ms,
        g.rss_growth_kib
    );
    println!(
        "  sweep: {} lists in {:.2} s = {:.0}/s ({:.3} of the budget), {} pending found, {} \
         failed, {} publishes discarded",
        g.things,
        g.sweep_s,
        g.sweep_rate(),
        g.sweep_rate() / g.budget_per_second,
        g.sweep_pending,
        g.sweep_failed,
        g.sweep_discarded
    );
    println!(
        "  runner for all {} things, a job for {}: {} executions run exactly once and SUCCEEDED \
         in {:.2} s (the first at {:.2} s; runner stopped at {:.2} s), {} requests ({:.0}/s), {} \
         publishes discarded",
        g.things,
        g.job_things,
        g.exactly_once,
        g.runner_s,
        g.runner_first_s,
        g.runner_total_s,
        g.runner_requests,
        g.runner_requests as f64 / g.runner_total_s,
        g.runner_discarded
    );
    println!(
        "  PerThing within 50 subscriptions: thing {} refused: {}",
        g.per_thing_refused_at
            .map_or_else(|| "none".to_owned(), |n| n.to_string()),
        g.per_thing_error
    );
    println!(
        "  limiter under budget ({:.0} calls/s each side, calls alternating, {} rounds): p50 \
         {:.1} µs with / {:.1} µs without = {:.3}x; per round: {}",
        l.calls_per_second,
        l.rounds.len(),
        l.p50_with,
        l.p50_without,
        g.limiter_ratio(),
        l.rounds
            .iter()
            .map(|(w, o)| format!("{:.3}", w / o))
            .collect::<Vec<_>>()
            .join(" ")
    );
}

/// The gateway's part of `bench.json`.
pub(crate) fn json(g: &Gateway) -> Value {
    let l = &g.limiter;
    json!({
        "scale": g.scale, "quota_per_second": g.quota_per_second,
        "client_requests_per_second": g.budget_per_second, "client_burst": g.burst,
        "things": g.things, "subscriptions": g.subscriptions,
        "plugin_subscriptions": g.broker_subscriptions,
        "plugin_subscribe_refused": g.subscribe_refused,
        "construct_ms": g.construct_ms, "rss_growth_kib": g.rss_growth_kib,
        "sweep_seconds": g.sweep_s, "sweep_lists_per_second": g.sweep_rate(),
        "sweep_rate_over_budget": g.sweep_rate() / g.budget_per_second,
        "sweep_pending_found": g.sweep_pending, "sweep_failed": g.sweep_failed,
        "sweep_discarded": g.sweep_discarded,
        "job_things": g.job_things, "executions_exactly_once": g.exactly_once,
        "runner_first_ending_seconds": g.runner_first_s, "runner_seconds": g.runner_s, "runner_stopped_seconds": g.runner_total_s,
        "runner_requests": g.runner_requests,
        "runner_discarded": g.runner_discarded,
        "per_thing_refused_at": g.per_thing_refused_at, "per_thing_error": g.per_thing_error,
        "limiter_calls_per_second": l.calls_per_second,
        "limiter_p50_us_with": l.p50_with, "limiter_p50_us_without": l.p50_without,
        "limiter_p50_ratio": g.limiter_ratio(),
        "limiter_rounds": l.rounds.iter().map(|(w, o)| json!({
            "p50_us_with": w, "p50_us_without": o, "ratio": w / o})).collect::<Vec<_>>(),
    })
}

/// `--gateway-only`: prints the machine, the gateway and its targets, writes `gateway.json`.
pub(crate) fn only(config: &Config, m: &Machine, g: &Gateway) -> Result<(), BoxError> {
    println!(
        "machine: {} ({} cores), Linux {}, {}",
        m.cpu, m.cores, m.kernel, m.mosquitto
    );
    println!(
        "load average before {} / after {}; mode {}",
        m.load_before,
        m.load_after,
        if config.smoke { "smoke" } else { "full" }
    );
    println!();
    print(g);
    println!();
    println!(
        "targets{}:",
        if config.smoke {
            " (smoke mode: not judged)"
        } else {
            ""
        }
    );
    let checks = checks(g);
    for c in &checks {
        c.print(config.smoke);
    }
    fs::create_dir_all(&config.out)?;
    let path = config.out.join("gateway.json");
    let mut value = json(g);
    value["machine"] = json!({"cpu": m.cpu, "cores": m.cores, "kernel": m.kernel,
        "mosquitto": m.mosquitto, "load_before": m.load_before, "load_after": m.load_after});
    value["mode"] = json!(if config.smoke { "smoke" } else { "full" });
    value["targets"] = checks
        .iter()
        .map(|c| {
            json!({"name": c.name, "value": c.value, "unit": c.unit, "op": c.op,
                   "target": c.target, "met": (!config.smoke).then(|| c.met())})
        })
        .collect();
    fs::write(&path, serde_json::to_string_pretty(&value)? + "\n")?;
    println!();
    println!("wrote {}", path.display());
    Ok(())
}

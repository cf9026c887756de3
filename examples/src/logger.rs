//! The programs' logger: `env_logger` on standard error, filtered by `RUST_LOG` as people use
//! it elsewhere (`RUST_LOG=info`, `RUST_LOG=jobs_paho=debug,warn`, …).

/// The filters for `RUST_LOG` (`rust_log`, empty when unset): `warn` by default, then
/// `RUST_LOG`'s own directives. Paho's C trace (`paho_mqtt_c`) and its Rust wrapper
/// (`paho_mqtt`, whose warnings print a pointer) stay at `error` unless `RUST_LOG` names them,
/// so `RUST_LOG=debug` shows the programs' and libraries' lines, not the C library's trace.
pub fn filters(rust_log: &str) -> String {
    let mut filters = String::from("warn");
    for quiet in ["paho_mqtt", "paho_mqtt_c"] {
        let named = rust_log
            .split(',')
            .any(|directive| directive.split('=').next().map(str::trim) == Some(quiet));
        if !named {
            filters.push_str(&format!(",{quiet}=error"));
        }
    }
    if !rust_log.trim().is_empty() {
        filters.push(',');
        filters.push_str(rust_log);
    }
    filters
}

/// Installs the logger (see [`filters`]). Does nothing if a logger is already installed.
pub fn init() {
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    let _ = env_logger::Builder::new()
        .parse_filters(&filters(&rust_log))
        .try_init();
}

#[cfg(test)]
mod tests {
    use log::{Level, Log, Metadata};

    use super::*;

    fn enabled(rust_log: &str, target: &str, level: Level) -> bool {
        let logger = env_logger::Builder::new()
            .parse_filters(&filters(rust_log))
            .build();
        logger.enabled(&Metadata::builder().target(target).level(level).build())
    }

    #[test]
    fn module_filters_work_and_the_c_trace_stays_quiet_unless_named() {
        // Before: only a bare level was understood; this was read as `warn`.
        assert!(enabled("paho_mqtt_c=debug", "paho_mqtt_c", Level::Debug));
        assert!(enabled("jobs_paho=debug", "jobs_paho", Level::Debug));
        assert!(!enabled("jobs_paho=debug", "jobs_core", Level::Info));
        assert!(enabled("debug", "jobs_core", Level::Debug));
        assert!(!enabled("debug", "paho_mqtt_c", Level::Debug));
        assert!(!enabled("info", "paho_mqtt", Level::Warn));
        assert!(enabled("", "jobs_paho", Level::Warn));
        assert!(!enabled("", "jobs_paho", Level::Info));
    }
}

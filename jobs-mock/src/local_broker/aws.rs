//! [`LocalBroker::start_aws`]: mosquitto with the `jobs-mosquitto-plugin` (AWS IoT Core's
//! quotas and implicit Jobs replies; see [`crate::aws`]), and reading what it counted.

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use crossbeam_channel::Sender;
use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS};

use super::{LocalBroker, STARTUP_TIMEOUT, context};
use crate::aws::relay::{QUOTA_GET_TOPIC, QUOTA_REPORT_TOPIC, QUOTA_RESET_TOPIC};
use crate::aws::{AwsSettings, QuotaReaction, QuotaReport};
use crate::conformance::Peer;

/// The environment variable that names the plugin library, overriding the search of
/// [`aws_plugin_path`].
pub const PLUGIN_ENV: &str = "JOBS_MOSQUITTO_PLUGIN";

/// The plugin library's file name, as cargo builds it.
#[cfg(target_os = "macos")]
const PLUGIN_FILE: &str = "libjobs_mosquitto_plugin.dylib";
#[cfg(not(target_os = "macos"))]
const PLUGIN_FILE: &str = "libjobs_mosquitto_plugin.so";

/// How long reading the plugin's counters may take.
const REPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// Finds the `jobs-mosquitto-plugin` library: the file named by `JOBS_MOSQUITTO_PLUGIN` if set,
/// else the newest `libjobs_mosquitto_plugin.so` in the running executable's directory, its
/// `deps/` or its parent — where cargo puts it for `cargo build -p jobs-mosquitto-plugin`
/// (`target/debug/`) and for the tests of a crate that lists `jobs-mosquitto-plugin` as a
/// (dev-)dependency (`target/debug/deps/`).
///
/// # Errors
/// [`io::ErrorKind::NotFound`], saying how to build it, when there is none.
pub fn aws_plugin_path() -> io::Result<PathBuf> {
    if let Some(path) = std::env::var_os(PLUGIN_ENV) {
        let path = PathBuf::from(path);
        return match path.is_file() {
            true => Ok(path),
            false => Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{PLUGIN_ENV}={} is not a file", path.display()),
            )),
        };
    }
    let exe = std::env::current_exe()?;
    let dir = exe.parent().unwrap_or(Path::new("."));
    let candidates = [
        Some(dir.join(PLUGIN_FILE)),
        Some(dir.join("deps").join(PLUGIN_FILE)),
        dir.parent().map(|parent| parent.join(PLUGIN_FILE)),
    ];
    candidates
        .into_iter()
        .flatten()
        .filter_map(|path| {
            let modified = path.metadata().and_then(|m| m.modified()).ok()?;
            Some((modified, path))
        })
        .max_by_key(|(modified, _): &(SystemTime, PathBuf)| *modified)
        .map(|(_, path)| path)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "{PLUGIN_FILE} not found near {}: build it with \
                     `cargo build -p jobs-mosquitto-plugin`, list `jobs-mosquitto-plugin` as a \
                     dev-dependency of the crate whose tests use it, or set {PLUGIN_ENV}",
                    exe.display()
                ),
            )
        })
}

impl LocalBroker {
    /// Starts a broker as [`start`](Self::start) does, with the `jobs-mosquitto-plugin`
    /// ([`aws_plugin_path`]) enforcing `settings`: AWS IoT Core's quotas per client ID and,
    /// unless turned off, implicit Jobs replies through the relay — run the service in relay
    /// mode with the settings' service client ID (`jobs-service --relay`, or
    /// [`Simulator::start_with`](crate::service::Simulator::start_with) and
    /// [`SimulatorMode::Relay`](crate::service::SimulatorMode::Relay)). The plugin ignores
    /// what only the [`MockBroker`](crate::MockBroker) does (filters per SUBSCRIBE, the
    /// clock); the plugin crate's docs list where it differs from AWS.
    ///
    /// # Errors
    /// As for [`start`](Self::start); [`io::ErrorKind::NotFound`] without the plugin;
    /// [`io::ErrorKind::InvalidInput`] for a service client ID with white space or a rate
    /// window under a millisecond (the plugin's configuration cannot say them).
    pub fn start_aws(settings: &AwsSettings) -> io::Result<Self> {
        Self::start_aws_with_plugin(settings, &aws_plugin_path()?)
    }

    /// [`start_aws`](Self::start_aws) with the plugin library at `plugin`.
    ///
    /// # Errors
    /// As for [`start_aws`](Self::start_aws).
    pub fn start_aws_with_plugin(settings: &AwsSettings, plugin: &Path) -> io::Result<Self> {
        let plugin = std::path::absolute(plugin)?;
        Self::start_inner(None, false, false, Some(plugin_config(&plugin, settings)?))
    }

    /// What the plugin counted, per client ID: asked on its report topic by a client of its
    /// own (which is not counted), waiting at most 10 s.
    ///
    /// # Errors
    /// When the broker was not started with [`start_aws`](Self::start_aws), the request or
    /// the report fails or times out, or the report is not the expected JSON.
    pub fn quota_report(&self) -> io::Result<QuotaReport> {
        self.ask_plugin(QUOTA_GET_TOPIC)
    }

    /// Zeroes the plugin's counters and rate windows (the subscriptions held stay), and
    /// returns the report after the reset.
    ///
    /// # Errors
    /// As for [`quota_report`](Self::quota_report).
    pub fn reset_quota_counters(&self) -> io::Result<QuotaReport> {
        self.ask_plugin(QUOTA_RESET_TOPIC)
    }

    fn ask_plugin(&self, topic: &str) -> io::Result<QuotaReport> {
        if self.aws.is_none() {
            return Err(io::Error::other(
                "the broker was not started with start_aws",
            ));
        }
        let deadline = Instant::now() + REPORT_TIMEOUT;
        let peer = Peer::connect(
            ("127.0.0.1", self.port),
            &crate::unique_name("quota-reader"),
            STARTUP_TIMEOUT,
        )
        .map_err(|e| context(e, "cannot connect to read the plugin's counters"))?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        peer.set_sink(Arc::new(ReportSink(tx)))
            .map_err(io::Error::other)?;
        peer.publish(topic, b"", QoS::AtLeastOnce, deadline)
            .map_err(|e| io::Error::other(format!("asking the plugin on {topic}: {e}")))?;
        let payload = rx.recv_deadline(deadline).map_err(|_| {
            io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no report on {QUOTA_REPORT_TOPIC} within {REPORT_TIMEOUT:?}"),
            )
        })?;
        serde_json::from_slice(&payload).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the plugin's report: {e}"),
            )
        })
    }
}

/// Hands the first report to the waiting caller.
struct ReportSink(Sender<Vec<u8>>);

impl MessageSink for ReportSink {
    fn message(&self, topic: &str, payload: &[u8]) {
        if topic == QUOTA_REPORT_TOPIC {
            let _ = self.0.try_send(payload.to_vec());
        }
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

/// The configuration lines that load the plugin with `settings`.
fn plugin_config(plugin: &Path, settings: &AwsSettings) -> io::Result<String> {
    let invalid = |what: String| io::Error::new(io::ErrorKind::InvalidInput, what);
    let service = &settings.service_client_id;
    if service.is_empty() || service.contains(char::is_whitespace) {
        return Err(invalid(format!(
            "the plugin's configuration cannot name the service client ID {service:?}"
        )));
    }
    let reaction = |reaction: QuotaReaction| match reaction {
        QuotaReaction::Refuse => "refuse",
        QuotaReaction::RefuseAndDisconnect => "refuse-and-disconnect",
        QuotaReaction::Disconnect => "disconnect",
    };
    let mut config = format!("plugin {}\n", plugin.display());
    let mut opt = |key: &str, value: &dyn std::fmt::Display| {
        let _ = writeln!(config, "plugin_opt_{key} {value}");
    };
    opt("service_client_id", service);
    opt("implicit_replies", &settings.implicit_replies);
    opt("max_subscriptions", &settings.max_subscriptions);
    opt(
        "subscription_overrun",
        &reaction(settings.subscription_overrun),
    );
    match settings.publish_rate {
        Some(rate) => {
            let window = u64::try_from(rate.per.as_millis())
                .ok()
                .filter(|ms| *ms > 0 && Duration::from_millis(*ms) == rate.per)
                .ok_or_else(|| {
                    invalid(format!(
                        "the plugin's rate window is whole milliseconds, not {:?}",
                        rate.per
                    ))
                })?;
            opt("publish_rate", &rate.limit);
            opt("publish_rate_window_ms", &window);
        }
        None => opt("publish_rate", &"off"),
    }
    opt("max_payload", &settings.max_payload);
    opt("payload_overrun", &reaction(settings.payload_overrun));
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_plugin_options_and_unsayable_ones_are_refused() {
        let settings = AwsSettings::default()
            .publish_rate(1000, Duration::from_secs(60))
            .subscription_overrun(QuotaReaction::RefuseAndDisconnect);
        let config = plugin_config(Path::new("/p.so"), &settings).unwrap();
        assert_eq!(
            config,
            "plugin /p.so\nplugin_opt_service_client_id jobs-service\n\
             plugin_opt_implicit_replies true\nplugin_opt_max_subscriptions 50\n\
             plugin_opt_subscription_overrun refuse-and-disconnect\n\
             plugin_opt_publish_rate 1000\nplugin_opt_publish_rate_window_ms 60000\n\
             plugin_opt_max_payload 131072\nplugin_opt_payload_overrun disconnect\n"
        );
        let off = plugin_config(
            Path::new("/p.so"),
            &settings.clone().unlimited_publish_rate(),
        );
        assert!(off.unwrap().contains("plugin_opt_publish_rate off\n"));
        for bad in [
            settings.clone().service_client_id("a b"),
            settings
                .clone()
                .publish_rate(1, Duration::from_micros(1500)),
            settings.publish_rate(1, Duration::ZERO),
        ] {
            let error = plugin_config(Path::new("/p.so"), &bad).unwrap_err();
            assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        }
    }
}

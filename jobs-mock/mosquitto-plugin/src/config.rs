//! The plugin's settings: `plugin_opt_<key> <value>` lines of the mosquitto configuration.

use std::time::Duration;

/// What the plugin does when a client goes beyond a quota (the names of
/// `jobs_mock::aws::QuotaReaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reaction {
    /// `refuse`: SUBACK 0x80, or the PUBLISH dropped; the connection stays.
    Refuse,
    /// `refuse-and-disconnect`: as `refuse`, then the connection is closed (at the broker's
    /// next loop iteration, after the SUBACK or PUBACK is written).
    RefuseAndDisconnect,
    /// `disconnect`: the connection is closed instead of answering the packet.
    Disconnect,
}

impl Reaction {
    fn parse(value: &str) -> Option<Self> {
        match value {
            "refuse" => Some(Self::Refuse),
            "refuse-and-disconnect" => Some(Self::RefuseAndDisconnect),
            "disconnect" => Some(Self::Disconnect),
            _ => None,
        }
    }
}

/// The settings, AWS IoT Core's quotas by default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Config {
    /// `service_client_id` (default `jobs-service`).
    pub(crate) service_client_id: String,
    /// `implicit_replies` `true` | `false` (default `true`).
    pub(crate) implicit_replies: bool,
    /// `max_subscriptions` (default 50).
    pub(crate) max_subscriptions: usize,
    /// `subscription_overrun` (default `refuse`).
    pub(crate) subscription_overrun: Reaction,
    /// `publish_rate` N | `off` (default 100) per `publish_rate_window_ms` (default 1000).
    pub(crate) publish_rate: Option<(usize, Duration)>,
    /// `max_payload` in bytes (default 131072).
    pub(crate) max_payload: usize,
    /// `payload_overrun` (default `disconnect`).
    pub(crate) payload_overrun: Reaction,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            service_client_id: "jobs-service".to_owned(),
            implicit_replies: true,
            max_subscriptions: 50,
            subscription_overrun: Reaction::Refuse,
            publish_rate: Some((100, Duration::from_secs(1))),
            max_payload: 128 * 1024,
            payload_overrun: Reaction::Disconnect,
        }
    }
}

impl Config {
    /// The settings from `(key, value)` options; an unknown key or a bad value is an error
    /// that names it (mosquitto then refuses to start, logging it).
    pub(crate) fn parse<'a>(
        options: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, String> {
        let mut config = Self::default();
        let mut rate: Option<usize> = Some(100);
        let mut window = Duration::from_secs(1);
        for (key, value) in options {
            let bad = || format!("plugin_opt_{key}: invalid value {value:?}");
            match key {
                "service_client_id" => value.clone_into(&mut config.service_client_id),
                "implicit_replies" => {
                    config.implicit_replies = value.parse().map_err(|_| bad())?;
                }
                "max_subscriptions" => {
                    config.max_subscriptions = value.parse().map_err(|_| bad())?;
                }
                "subscription_overrun" => {
                    config.subscription_overrun = Reaction::parse(value).ok_or_else(bad)?;
                }
                "publish_rate" => {
                    rate = match value {
                        "off" => None,
                        n => Some(n.parse().map_err(|_| bad())?),
                    };
                }
                "publish_rate_window_ms" => {
                    let ms: u64 = value.parse().map_err(|_| bad())?;
                    if ms == 0 {
                        return Err(bad());
                    }
                    window = Duration::from_millis(ms);
                }
                "max_payload" => config.max_payload = value.parse().map_err(|_| bad())?,
                "payload_overrun" => {
                    config.payload_overrun = Reaction::parse(value).ok_or_else(bad)?;
                }
                _ => return Err(format!("unknown option plugin_opt_{key}")),
            }
        }
        config.publish_rate = rate.map(|limit| (limit, window));
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_override_aws_defaults_and_bad_ones_are_named() {
        assert_eq!(Config::parse([]).unwrap(), Config::default());
        let config = Config::parse([
            ("service_client_id", "svc/1"),
            ("implicit_replies", "false"),
            ("max_subscriptions", "3"),
            ("subscription_overrun", "refuse-and-disconnect"),
            ("publish_rate", "1000"),
            ("publish_rate_window_ms", "60000"),
            ("max_payload", "10"),
            ("payload_overrun", "refuse"),
        ])
        .unwrap();
        assert_eq!(config.service_client_id, "svc/1");
        assert!(!config.implicit_replies);
        assert_eq!(config.max_subscriptions, 3);
        assert_eq!(config.subscription_overrun, Reaction::RefuseAndDisconnect);
        assert_eq!(config.publish_rate, Some((1000, Duration::from_secs(60))));
        assert_eq!(config.max_payload, 10);
        assert_eq!(config.payload_overrun, Reaction::Refuse);
        assert_eq!(
            Config::parse([("publish_rate", "off")])
                .unwrap()
                .publish_rate,
            None
        );
        for bad in [
            ("max_subscriptions", "-1"),
            ("publish_rate_window_ms", "0"),
            ("payload_overrun", "ignore"),
            ("filters_per_subscribe", "8"),
        ] {
            let error = Config::parse([bad]).unwrap_err();
            assert!(error.contains(bad.0), "{error}");
        }
    }
}

//! The connection flags shared by the programs that use a real broker, and the
//! [`PahoTransport`] they describe; the flags of the programs that run one thing's device side
//! (`device`, `agent`) and the [`Jobs`] they open.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use jobs_core::{Client, Jobs};
use jobs_paho::{AWS_IOT_ALPN, PahoTransport};

/// The broker used when `--broker` is not given.
pub const DEFAULT_BROKER: &str = "tcp://127.0.0.1:1883";

/// Help text for the flags [`BrokerArgs`] understands.
pub const USAGE: &str = "  \
  --broker URI     broker to connect to (default tcp://127.0.0.1:1883; TLS: ssl://host:8883)
  --ca FILE        CA certificate(s) to verify the broker with (PEM; default: system store)
  --cert FILE      client certificate (PEM), with --key
  --key FILE       client private key (PEM), with --cert
  --alpn           send ALPN x-amzn-mqtt-ca (AWS IoT Core with certificates on port 443)";

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerArgs {
    /// The server URI (`--broker`).
    pub uri: String,
    /// The CA file (`--ca`).
    pub ca: Option<PathBuf>,
    /// The client certificate (`--cert`).
    pub cert: Option<PathBuf>,
    /// The client key (`--key`).
    pub key: Option<PathBuf>,
    /// Whether to send the AWS IoT ALPN protocol (`--alpn`).
    pub alpn: bool,
}

impl Default for BrokerArgs {
    fn default() -> Self {
        Self {
            uri: DEFAULT_BROKER.to_owned(),
            ca: None,
            cert: None,
            key: None,
            alpn: false,
        }
    }
}

impl BrokerArgs {
    /// Takes `flag` (and its value, from `rest`) if it is one of the connection flags; returns
    /// whether it was.
    ///
    /// # Errors
    /// A flag that needs a value came last.
    pub fn parse_flag(
        &mut self,
        flag: &str,
        rest: &mut dyn Iterator<Item = String>,
    ) -> Result<bool, String> {
        let mut value = || rest.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag {
            "--broker" => self.uri = value()?,
            "--ca" => self.ca = Some(value()?.into()),
            "--cert" => self.cert = Some(value()?.into()),
            "--key" => self.key = Some(value()?.into()),
            "--alpn" => self.alpn = true,
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Connects with client ID `client_id` (clean session, 10 s connect and operation
    /// timeouts, automatic reconnects).
    ///
    /// # Errors
    /// `--cert` without `--key` or the reverse, or the connection failed.
    pub fn connect(&self, client_id: &str) -> Result<PahoTransport, Box<dyn Error>> {
        let mut builder = PahoTransport::builder(&self.uri, client_id)
            .connect_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(10));
        if let Some(ca) = &self.ca {
            builder = builder.ca_file(ca);
        }
        match (&self.cert, &self.key) {
            (Some(cert), Some(key)) => builder = builder.client_certificate(cert, key),
            (None, None) => {}
            _ => return Err("--cert and --key go together".into()),
        }
        if self.alpn {
            builder = builder.alpn_protocols(&[AWS_IOT_ALPN]);
        }
        Ok(builder.build()?)
    }
}

/// The flags of a program that runs one thing's device side: the connection flags,
/// `--thing`, `--client-id` and `--work-scale`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceArgs {
    /// The connection flags.
    pub broker: BrokerArgs,
    /// The thing (`--thing`): `None` until given. The programs require it and take it out
    /// once the flags are parsed, then pass it to [`connect`](Self::connect).
    pub thing: Option<String>,
    /// The MQTT client ID (`--client-id`); the thing name when not given.
    pub client_id: Option<String>,
    /// Real seconds per simulated second of work (`--work-scale`, 0–1000, default 0.01).
    pub work_scale: f64,
}

impl Default for DeviceArgs {
    fn default() -> Self {
        Self {
            broker: BrokerArgs::default(),
            thing: None,
            client_id: None,
            work_scale: 0.01,
        }
    }
}

impl DeviceArgs {
    /// Help line of `--work-scale`; each program places it among its own flags.
    pub const WORK_SCALE_USAGE: &str =
        "  --work-scale F   real seconds per simulated second of work (default 0.01)";

    /// The usage text of `program`: its synopsis, the connection flags, `--client-id`, then
    /// `own` (the help lines of the program's own flags, with [`Self::WORK_SCALE_USAGE`]).
    pub fn usage(program: &str, own: &str) -> String {
        format!(
            "usage: {program} --thing NAME [flags]\n{USAGE}\n  --client-id ID   MQTT client ID \
             (default: the thing name)\n{own}"
        )
    }

    /// Takes `flag` (and its value, from `rest`) if it is a connection flag or one of
    /// `--thing`, `--client-id` and `--work-scale`; returns whether it was.
    ///
    /// # Errors
    /// A flag that needs a value came last, or the value of `--work-scale` is not a number
    /// between 0 and 1000.
    pub fn parse_flag(
        &mut self,
        flag: &str,
        rest: &mut dyn Iterator<Item = String>,
    ) -> Result<bool, String> {
        if self.broker.parse_flag(flag, rest)? {
            return Ok(true);
        }
        let mut value = || rest.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag {
            "--thing" => self.thing = Some(value()?),
            "--client-id" => self.client_id = Some(value()?),
            "--work-scale" => {
                self.work_scale = value()?.parse().map_err(|e| format!("--work-scale: {e}"))?;
                if !(0.0..=1000.0).contains(&self.work_scale) {
                    return Err("--work-scale must be between 0 and 1000".into());
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The MQTT client ID of `thing`: `--client-id` if given, else the thing name.
    pub fn client_id<'a>(&'a self, thing: &'a str) -> &'a str {
        self.client_id.as_deref().unwrap_or(thing)
    }

    /// Connects (see [`BrokerArgs::connect`]) with [`client_id`](Self::client_id) and opens
    /// the Jobs of `thing`.
    ///
    /// # Errors
    /// The connection failed, or the client or the thing's Jobs could not be set up.
    pub fn connect(&self, thing: &str) -> Result<Jobs, Box<dyn Error>> {
        let client = Client::new(self.broker.connect(self.client_id(thing))?)?;
        Ok(Jobs::new(&client, thing)?)
    }
}

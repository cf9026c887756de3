//! The command-line flags shared by the programs that use a real broker ([`BrokerArgs`]) and by
//! those that run one thing's device side ([`DeviceArgs`]), parsed with clap, and the
//! [`PahoTransport`] and [`Jobs`] they describe.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use jobs_core::{Client, Jobs, ThingName};
use jobs_paho::{AWS_IOT_ALPN, ConnectRetry, PahoTransport, PahoTransportBuilder};

/// The broker used when `--broker` is not given.
pub const DEFAULT_BROKER: &str = "tcp://127.0.0.1:1883";

/// Where and how to connect.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct BrokerArgs {
    /// Broker to connect to: tcp://host:port, or ssl://host:port for TLS (AWS IoT Core:
    /// ssl://ENDPOINT:8883, or :443 with --alpn).
    #[arg(long = "broker", value_name = "URI", default_value = DEFAULT_BROKER,
          value_parser = parse_uri)]
    pub uri: String,
    /// CA certificate(s) to verify the broker with (PEM; default: the system trust store).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM, unencrypted), with --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Send the ALPN protocol x-amzn-mqtt-ca (AWS IoT Core with certificates on port 443).
    #[arg(long)]
    pub alpn: bool,
    /// Keep retrying the first connect, with backoff, for up to this many seconds (0: fail
    /// at once).
    #[arg(long, value_name = "SECONDS", default_value = "0")]
    pub connect_retry: u64,
}

/// Checks a server URI as the transport will, before anything connects.
fn parse_uri(uri: &str) -> Result<String, String> {
    PahoTransport::builder(uri, "check")
        .check()
        .map(|()| uri.to_owned())
        .map_err(|error| error.to_string())
}

impl Default for BrokerArgs {
    fn default() -> Self {
        Self {
            uri: DEFAULT_BROKER.to_owned(),
            ca: None,
            cert: None,
            key: None,
            alpn: false,
            connect_retry: 0,
        }
    }
}

impl BrokerArgs {
    /// The transport builder for client ID `client_id` (clean session, 10 s connect and
    /// operation timeouts, automatic reconnects, `--connect-retry`).
    pub fn builder(&self, client_id: &str) -> PahoTransportBuilder {
        let mut builder = PahoTransport::builder(&self.uri, client_id)
            .connect_timeout(Duration::from_secs(10))
            .operation_timeout(Duration::from_secs(10));
        if self.connect_retry > 0 {
            builder = builder.connect_retry(ConnectRetry::for_up_to(Duration::from_secs(
                self.connect_retry,
            )));
        }
        if let Some(ca) = &self.ca {
            builder = builder.ca_file(ca);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            builder = builder.client_certificate(cert, key);
        }
        if self.alpn {
            builder = builder.alpn_protocols(&[AWS_IOT_ALPN]);
        }
        builder
    }

    /// Connects with client ID `client_id` (see [`builder`](Self::builder)).
    ///
    /// # Errors
    /// The connection failed; the error names the URI, the file or the cause.
    pub fn connect(&self, client_id: &str) -> Result<PahoTransport, Box<dyn Error>> {
        Ok(self.builder(client_id).build()?)
    }
}

/// Parses `--thing`: a valid thing name (1–128 of `[a-zA-Z0-9:_-]`).
fn parse_thing(value: &str) -> Result<ThingName, String> {
    ThingName::new(value).map_err(|error| error.to_string())
}

/// Parses `--work-scale`: a number from 0 to 1000.
fn parse_work_scale(value: &str) -> Result<f64, String> {
    let scale: f64 = value
        .parse()
        .map_err(|_| format!("not a number: {value:?}"))?;
    if (0.0..=1000.0).contains(&scale) {
        Ok(scale)
    } else {
        Err(format!("must be from 0 to 1000, not {value}"))
    }
}

/// The flags of a program that runs one thing's device side: the connection flags,
/// `--thing`, `--client-id` and `--work-scale`.
#[derive(Debug, Clone, PartialEq, Args)]
pub struct DeviceArgs {
    /// The connection.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// The thing; also the MQTT client ID unless --client-id (AWS IoT policies often require
    /// that).
    #[arg(long, value_name = "NAME", value_parser = parse_thing)]
    pub thing: ThingName,
    /// MQTT client ID [default: the thing name].
    #[arg(long, value_name = "ID")]
    pub client_id: Option<String>,
    /// Real seconds slept per simulated second of work (0 for none).
    #[arg(long, value_name = "F", default_value = "0.01", value_parser = parse_work_scale)]
    pub work_scale: f64,
}

impl DeviceArgs {
    /// The MQTT client ID: `--client-id` if given, else the thing name.
    pub fn client_id(&self) -> &str {
        self.client_id
            .as_deref()
            .unwrap_or_else(|| self.thing.as_str())
    }

    /// Connects (see [`BrokerArgs::connect`]) with [`client_id`](Self::client_id) and opens
    /// the Jobs of the thing.
    ///
    /// # Errors
    /// The connection failed, or the client or the thing's Jobs could not be set up.
    pub fn connect(&self) -> Result<Jobs, Box<dyn Error>> {
        let client = Client::new(self.broker.connect(self.client_id())?)?;
        Ok(Jobs::new(&client, self.thing.as_str())?)
    }
}

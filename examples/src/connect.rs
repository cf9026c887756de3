//! The connection flags shared by the programs that use a real broker, and the
//! [`PahoTransport`] they describe.

use std::error::Error;
use std::path::PathBuf;
use std::time::Duration;

use jobs_paho::{AWS_IOT_ALPN, PahoTransport};

/// The broker used when `--broker` is not given.
pub const DEFAULT_BROKER: &str = "tcp://127.0.0.1:1883";

/// Help text for the flags [`BrokerArgs`] understands.
pub const USAGE: &str = "\
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

//! The command line of `jobs-service` (parsed by clap) and its logger (env_logger).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args as ClapArgs, Parser};
use jobs_paho::{AWS_IOT_ALPN, ConnectError, ConnectRetry, PahoTransport};

/// jobs-service: a local stand-in for AWS IoT Jobs on any MQTT broker.
///
/// Answers the Jobs device API over MQTT ($aws/things/THING/jobs/...) and serves the AWS IoT
/// API for jobs over HTTP (--http), so the AWS CLI and boto3 work against it unchanged. It
/// runs in the background like any server (stop it with Ctrl-C or a signal); --console reads
/// requests from standard input instead.
#[derive(Debug, Clone, Parser)]
#[command(name = "jobs-service", version)]
pub struct Args {
    /// The broker connection.
    #[command(flatten)]
    pub broker: BrokerArgs,
    /// MQTT client ID of the emulator; the control connection is ID-control.
    #[arg(long, value_name = "ID", default_value = "jobs-service")]
    pub client_id: String,
    /// Jobs to create at start (a JSON jobs file; see examples/README.md).
    #[arg(long, value_name = "FILE")]
    pub jobs: Option<PathBuf>,
    /// Serve the AWS IoT API over HTTP on this address, such as 127.0.0.1:8080 (port 0: any
    /// free port; the line "http: listening on ..." names it).
    #[arg(long, value_name = "ADDRESS")]
    pub http: Option<SocketAddr>,
    /// Serve objects from this directory (DIR/BUCKET/KEY; created if missing) as the targets
    /// of the pre-signed URLs that replace ${aws:iot:s3-presigned-url:...} placeholders in job
    /// documents; PUT /jobs-service/files/BUCKET/KEY uploads one. Needs --http.
    #[arg(long, value_name = "DIR", requires = "http")]
    pub files: Option<PathBuf>,
    /// Run the service's clock N times faster than real time (a 1-minute step timer fires
    /// after 60/N seconds).
    #[arg(long, value_name = "N", default_value = "1")]
    pub time_scale: NonZeroU32,
    /// Read control requests (JSON, one per line) from standard input and print the replies;
    /// "quit" or the end of input stops the service.
    #[arg(long)]
    pub console: bool,
    /// Run behind mosquitto with the jobs-mosquitto-plugin (AWS IoT's implicit replies): take
    /// the requests from the plugin's relay and answer each requester alone. The plugin's
    /// service client ID must be this --client-id.
    #[arg(long)]
    pub relay: bool,
}

/// The broker flags.
#[derive(Debug, Clone, ClapArgs)]
pub struct BrokerArgs {
    /// Broker to connect to: tcp://host:port, or ssl://host:port for TLS.
    #[arg(long = "broker", value_name = "URI", default_value = "tcp://127.0.0.1:1883",
          value_parser = parse_uri)]
    pub uri: String,
    /// CA certificate(s) to verify the broker with (PEM; default: the system store).
    #[arg(long, value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// Client certificate (PEM), with --key.
    #[arg(long, value_name = "FILE", requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client private key (PEM), with --cert.
    #[arg(long, value_name = "FILE", requires = "cert")]
    pub key: Option<PathBuf>,
    /// Send the ALPN protocol x-amzn-mqtt-ca (AWS IoT Core with certificates on port 443).
    #[arg(long)]
    pub alpn: bool,
    /// Keep retrying the first connect for up to this many seconds (0: fail at once).
    #[arg(long, value_name = "SECONDS", default_value = "0")]
    pub connect_retry: u64,
}

/// Checks a server URI as the transport will.
fn parse_uri(uri: &str) -> Result<String, String> {
    PahoTransport::builder(uri, "check")
        .check()
        .map(|()| uri.to_owned())
        .map_err(|error| error.to_string())
}

impl BrokerArgs {
    /// Connects as `client_id` (clean session, 10 s timeouts, automatic reconnects).
    ///
    /// # Errors
    /// The [`ConnectError`] of the first connect (with the file or URI at fault).
    pub fn connect(&self, client_id: &str) -> Result<PahoTransport, ConnectError> {
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
        builder.build()
    }
}

/// The filters the program's logger uses for `RUST_LOG` (`rust_log`, empty when unset):
/// `warn` by default; module filters as `env_logger` reads them (`jobs_paho=debug,info`).
/// Paho's C trace (`paho_mqtt_c`) and its Rust wrapper (`paho_mqtt`, whose warnings print a
/// pointer) stay at `error` unless `RUST_LOG` names them, so `RUST_LOG=debug` shows this
/// program's and the libraries' lines, not the C library's.
pub fn log_filters(rust_log: &str) -> String {
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

/// Installs the logger on standard error, filtered by [`log_filters`] of `RUST_LOG`.
pub fn init_logger() {
    let rust_log = std::env::var("RUST_LOG").unwrap_or_default();
    let _ = env_logger::Builder::new()
        .parse_filters(&log_filters(&rust_log))
        .try_init();
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;
    use log::{Level, Log, Metadata};

    use super::*;

    fn enabled(rust_log: &str, target: &str, level: Level) -> bool {
        let logger = env_logger::Builder::new()
            .parse_filters(&log_filters(rust_log))
            .build();
        logger.enabled(&Metadata::builder().target(target).level(level).build())
    }

    #[test]
    fn rust_log_takes_module_filters_and_keeps_the_c_trace_quiet_unless_named() {
        assert!(enabled("paho_mqtt_c=debug", "paho_mqtt_c", Level::Debug));
        assert!(!enabled("paho_mqtt_c=debug", "jobs_paho", Level::Info));
        assert!(enabled("debug", "jobs_paho", Level::Debug));
        assert!(!enabled("debug", "paho_mqtt_c", Level::Debug));
        assert!(!enabled("debug", "paho_mqtt", Level::Warn));
        assert!(enabled("", "jobs_core", Level::Warn));
        assert!(!enabled("", "jobs_core", Level::Info));
        assert!(enabled("info,jobs_paho=debug", "jobs_paho", Level::Debug));
    }

    #[test]
    fn the_command_line_is_consistent_and_values_are_typed() {
        Args::command().debug_assert();
        let args = Args::try_parse_from([
            "jobs-service",
            "--broker=tcp://localhost:1884",
            "--http=127.0.0.1:0",
            "--time-scale",
            "600",
        ])
        .unwrap();
        assert_eq!(args.broker.uri, "tcp://localhost:1884");
        assert_eq!(args.time_scale.get(), 600);
        assert!(!args.console);
        assert!(!args.relay);
        assert!(
            Args::try_parse_from(["jobs-service", "--relay"])
                .unwrap()
                .relay
        );
        for bad in [
            ["jobs-service", "--time-scale=0"],
            ["jobs-service", "--http=localhost"],
            ["jobs-service", "--broker=http://h:1"],
            ["jobs-service", "--cert=x.pem"],
            ["jobs-service", "--files=/tmp/x"],
        ] {
            assert!(Args::try_parse_from(bad).is_err(), "{bad:?}");
        }
    }
}

//! [`PahoTransportBuilder`]: options, their validation and their translation into Paho options.

use std::path::{Path, PathBuf};
use std::time::Duration;

use jobs_core::BrokerLimits;
use paho_mqtt as paho;

use crate::diagnose::TlsCheck;
use crate::error::{ConfigError, ConnectError};
use crate::pem;
use crate::retry::ConnectRetry;
use crate::transport::PahoTransport;

/// The ALPN protocol AWS IoT Core requires for X.509 client certificates on port 443.
pub const AWS_IOT_ALPN: &str = "x-amzn-mqtt-ca";

/// The MQTT protocol version to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MqttVersion {
    /// MQTT 3.1.1.
    #[default]
    V3_1_1,
    /// MQTT 5.
    V5,
}

/// The session the broker keeps for the client ID between connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Session {
    /// Start with a fresh session on every (re)connect (MQTT 3.1.1 clean session, MQTT 5 clean
    /// start with a session expiry of 0). The simple, correct choice for a request/response
    /// client: `jobs-core` re-subscribes after every reconnect.
    #[default]
    Clean,
    /// Ask the broker to keep the session (subscriptions, queued QoS 1 messages) across
    /// connections. With MQTT 5 the session expires `expiry` after the connection closes
    /// (AWS IoT Core caps it at one hour by default); with MQTT 3.1.1 `expiry` is ignored and
    /// the broker decides.
    Persistent {
        /// The MQTT 5 session expiry interval.
        expiry: Duration,
    },
}

/// Configures and connects a [`PahoTransport`]; see [`PahoTransport::builder`].
#[derive(Debug, Clone)]
#[must_use]
pub struct PahoTransportBuilder {
    pub(crate) server_uri: String,
    pub(crate) client_id: String,
    keep_alive: Duration,
    session: Session,
    version: MqttVersion,
    user_name: Option<String>,
    password: Option<Vec<u8>>,
    ca_file: Option<PathBuf>,
    client_cert: Option<(PathBuf, PathBuf)>,
    alpn: Vec<String>,
    verify_host_name: bool,
    tls_requested: bool,
    connect_timeout: Duration,
    pub(crate) operation_timeout: Duration,
    reconnect: (Duration, Duration),
    pub(crate) pre_sink_buffer: usize,
    retry: Option<ConnectRetry>,
    limits: Option<BrokerLimits>,
}

/// The default MQTT keep-alive interval.
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(60);
/// The default bound on the first connect.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The default bound on every subscribe, unsubscribe and publish.
pub const DEFAULT_OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// The default automatic reconnect backoff: from 1 s, doubling up to 60 s.
pub const DEFAULT_RECONNECT_BACKOFF: (Duration, Duration) =
    (Duration::from_secs(1), Duration::from_secs(60));
/// How many messages arriving before [`MqttTransport::set_sink`](jobs_core::MqttTransport::set_sink)
/// are kept, by default.
pub const DEFAULT_PRE_SINK_BUFFER: usize = 256;

impl PahoTransportBuilder {
    pub(crate) fn new(server_uri: &str, client_id: &str) -> Self {
        Self {
            server_uri: server_uri.to_owned(),
            client_id: client_id.to_owned(),
            keep_alive: DEFAULT_KEEP_ALIVE,
            session: Session::Clean,
            version: MqttVersion::V3_1_1,
            user_name: None,
            password: None,
            ca_file: None,
            client_cert: None,
            alpn: Vec::new(),
            verify_host_name: true,
            tls_requested: false,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            operation_timeout: DEFAULT_OPERATION_TIMEOUT,
            reconnect: DEFAULT_RECONNECT_BACKOFF,
            pre_sink_buffer: DEFAULT_PRE_SINK_BUFFER,
            retry: None,
            limits: None,
        }
    }

    /// The MQTT keep-alive interval, a whole number of seconds from 1 to 65535 (MQTT sends it in
    /// seconds; AWS IoT Core treats values below 30 s as 30 s and allows at most 1200 s). A dead
    /// link is noticed after about 1.5 × this interval. Defaults to 60 s.
    pub fn keep_alive(mut self, interval: Duration) -> Self {
        self.keep_alive = interval;
        self
    }

    /// The session the broker keeps between connections. Defaults to [`Session::Clean`].
    pub fn session(mut self, session: Session) -> Self {
        self.session = session;
        self
    }

    /// The MQTT protocol version. Defaults to [`MqttVersion::V3_1_1`].
    pub fn mqtt_version(mut self, version: MqttVersion) -> Self {
        self.version = version;
        self
    }

    /// A user name for CONNECT (AWS IoT Core ignores it for certificate authentication).
    /// Defaults to none.
    pub fn user_name(mut self, user_name: &str) -> Self {
        self.user_name = Some(user_name.to_owned());
        self
    }

    /// A password for CONNECT; needs a [`user_name`](Self::user_name). Defaults to none.
    pub fn password(mut self, password: &[u8]) -> Self {
        self.password = Some(password.to_vec());
        self
    }

    /// Trust only the CA certificates in this PEM file to authenticate the broker (for AWS IoT
    /// Core: Amazon Root CA 1). Implies TLS. Defaults to the operating system's trust store
    /// when the URI is `ssl://`, `mqtts://` or `tls://`.
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self.tls_requested = true;
        self
    }

    /// Authenticate with this client certificate (PEM file, may hold the chain) and private
    /// key (PEM file, unencrypted): mutual TLS, as AWS IoT Core requires on 8883 and on 443
    /// with ALPN. Implies TLS. Defaults to no client certificate.
    pub fn client_certificate(
        mut self,
        certificate: impl Into<PathBuf>,
        private_key: impl Into<PathBuf>,
    ) -> Self {
        self.client_cert = Some((certificate.into(), private_key.into()));
        self.tls_requested = true;
        self
    }

    /// The ALPN protocols offered in the TLS handshake, for example [`AWS_IOT_ALPN`] for AWS
    /// IoT Core on port 443. Implies TLS. Defaults to none.
    pub fn alpn_protocols(mut self, protocols: &[&str]) -> Self {
        self.alpn = protocols.iter().map(|p| (*p).to_owned()).collect();
        self.tls_requested = true;
        self
    }

    /// **Dangerous:** accept a broker certificate whose names (SAN DNS or IP entries) do not
    /// match the host of the server URI. The chain is still verified against the trust store,
    /// but any certificate from that CA is accepted for any host, which allows a
    /// man-in-the-middle holding one. For tests against brokers with ad-hoc certificates only.
    /// Defaults to verifying the host name.
    pub fn danger_disable_hostname_verification(mut self) -> Self {
        self.verify_host_name = false;
        self
    }

    /// The bound on each attempt of the first connect in [`build`](Self::build) (TCP, TLS and
    /// CONNACK): any non-zero duration (Paho counts whole seconds, so it is given this rounded
    /// up, and `build` ends the attempt at this bound itself). Defaults to 10 s.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// The bound on each subscribe, unsubscribe and publish: how long it waits for the SUBACK,
    /// UNSUBACK or PUBACK before failing with
    /// [`TransportError::Timeout`](jobs_core::TransportError::Timeout). Keep it below the
    /// `jobs-core` call timeout. Defaults to 10 s.
    pub fn operation_timeout(mut self, timeout: Duration) -> Self {
        self.operation_timeout = timeout;
        self
    }

    /// The automatic reconnect backoff after a lost connection: the first attempt after `min`,
    /// doubling up to `max`, both whole numbers of seconds from 1 to 65535 (Paho counts them
    /// in seconds). Defaults to 1 s and 60 s.
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect = (min, max);
        self
    }

    /// How many inbound messages arriving before the sink is installed are kept (and handed to
    /// the sink, in order, once it is); later ones are dropped with a warning. Defaults to 256.
    pub fn pre_sink_buffer(mut self, messages: usize) -> Self {
        self.pre_sink_buffer = messages;
        self
    }

    /// Retries the first connect in [`build`](Self::build) with backoff, as the AWS SDKs do,
    /// while it fails for a reason that may pass (see [`ConnectError::is_transient`]): the
    /// broker cannot be reached, closes the connection, times out, or says it is unavailable.
    /// Each failed attempt is logged at warn with its cause. Defaults to no retry: `build`
    /// fails at the first failure.
    pub fn connect_retry(mut self, retry: ConnectRetry) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Checks every option, including the certificate and key files (readable, PEM, the key
    /// belongs to the certificate), without creating or connecting anything: for programs that
    /// check their configuration before they start.
    ///
    /// # Errors
    /// The [`ConfigError`] [`build`](Self::build) would return.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.plan().map(drop)
    }

    /// Validates the options, creates the client, installs its callbacks and connects (bounded
    /// by the connect timeout, and retried if [`connect_retry`](Self::connect_retry) says so).
    /// When an attempt fails without Paho saying why (refused, unreachable, TLS), `build`
    /// looks itself before it returns (DNS, TCP and a TLS handshake through OpenSSL), within
    /// one more connect timeout.
    ///
    /// # Errors
    /// [`ConnectError::Config`] for an invalid option (nothing was created); otherwise the
    /// first connect failed, and the error names the URI and the cause:
    /// [`ConnectError::Dns`], [`ConnectError::Tcp`] (refused, unreachable),
    /// [`ConnectError::Tls`] (with the check that failed), [`ConnectError::Closed`],
    /// [`ConnectError::Refused`] (with the CONNACK code and its meaning) or
    /// [`ConnectError::Timeout`].
    pub fn build(self) -> Result<PahoTransport, ConnectError> {
        match self.retry {
            None => {
                let plan = self.plan()?;
                PahoTransport::connect(self, plan)
            }
            Some(retry) => crate::retry::connect(&self, retry, |builder| {
                let plan = builder.plan()?;
                PahoTransport::connect(builder.clone(), plan)
            }),
        }
    }

    /// The watch over this connection's connects and losses.
    pub(crate) fn watch(&self) -> crate::watch::ConnectionWatch {
        crate::watch::ConnectionWatch::new(
            &self.server_uri,
            &self.client_id,
            self.session == Session::Clean,
        )
    }

    /// The broker's limits per connection that the transport reports to `jobs-core`
    /// ([`MqttTransport::broker_limits`](jobs_core::MqttTransport::broker_limits)), from which a
    /// `Client` takes its subscription budget and publish pacing. Defaults to
    /// [`BrokerLimits::AWS_IOT`] when the server's host name ends in `.amazonaws.com` (AWS IoT
    /// Core's endpoints, as [`PahoTransport::aws_iot`](crate::PahoTransport::aws_iot) builds
    /// them), [`BrokerLimits::NONE`] otherwise.
    pub fn broker_limits(mut self, limits: BrokerLimits) -> Self {
        self.limits = Some(limits);
        self
    }

    /// The limits the transport reports: set, or derived from the host name.
    pub(crate) fn limits(&self) -> BrokerLimits {
        self.limits
            .unwrap_or_else(|| match parse_uri(&self.server_uri) {
                Ok((_, host, _)) if host.to_ascii_lowercase().ends_with(".amazonaws.com") => {
                    BrokerLimits::AWS_IOT
                }
                _ => BrokerLimits::NONE,
            })
    }

    /// The server URI.
    pub(crate) fn server_uri(&self) -> &str {
        &self.server_uri
    }

    /// Checks every option and produces the Paho options.
    pub(crate) fn plan(&self) -> Result<Plan, ConfigError> {
        let (tls, host, port) = parse_uri(&self.server_uri)?;
        if !tls && self.tls_requested {
            return Err(ConfigError::TlsOnPlainUri);
        }
        if self.client_id.is_empty() || self.client_id.len() > 128 || self.client_id.contains('\0')
        {
            return Err(ConfigError::ClientId {
                client_id: self.client_id.clone(),
            });
        }
        let keep_alive = whole_seconds(self.keep_alive, "keep-alive")?;
        let (paho_connect_timeout, wait) = connect_bounds(self.connect_timeout)?;
        let min = whole_seconds(self.reconnect.0, "reconnect backoff minimum")?;
        let max = whole_seconds(self.reconnect.1, "reconnect backoff maximum")?;
        if max < min {
            return Err(ConfigError::ReconnectBackoff);
        }
        if self.operation_timeout.is_zero() {
            return Err(ConfigError::ZeroTimeout {
                setting: "operation timeout",
            });
        }
        if self.password.is_some() && self.user_name.is_none() {
            return Err(ConfigError::PasswordWithoutUserName);
        }
        if self.user_name.as_deref().is_some_and(|u| u.contains('\0')) {
            return Err(ConfigError::UserName);
        }
        if let Some(bad) = self
            .alpn
            .iter()
            .find(|p| p.is_empty() || p.len() > 255 || p.contains('\0'))
        {
            return Err(ConfigError::AlpnProtocol {
                protocol: bad.clone(),
            });
        }

        let create = match self.version {
            MqttVersion::V3_1_1 => paho::CreateOptionsBuilder::new_v3(),
            MqttVersion::V5 => paho::CreateOptionsBuilder::new(),
        }
        .server_uri(self.server_uri.as_str())
        .client_id(self.client_id.as_str())
        .persistence(None)
        // Offline publishes must fail at once with `Disconnected`, never queue.
        .send_while_disconnected(false)
        .finalize();

        let mut connect = match self.version {
            MqttVersion::V3_1_1 => paho::ConnectOptionsBuilder::new_v3(),
            MqttVersion::V5 => paho::ConnectOptionsBuilder::new_v5(),
        };
        connect
            .keep_alive_interval(keep_alive)
            .connect_timeout(paho_connect_timeout)
            .automatic_reconnect(min, max);
        match (self.version, self.session) {
            (MqttVersion::V3_1_1, Session::Clean) => {
                connect.clean_session(true);
            }
            (MqttVersion::V3_1_1, Session::Persistent { .. }) => {
                connect.clean_session(false);
            }
            (MqttVersion::V5, Session::Clean) => {
                connect.clean_start(true);
            }
            (MqttVersion::V5, Session::Persistent { expiry }) => {
                let secs = u32::try_from(expiry.as_secs())
                    .ok()
                    .filter(|_| expiry.subsec_nanos() == 0)
                    .ok_or(ConfigError::WholeSeconds {
                        setting: "session expiry",
                        value: expiry,
                    })?;
                let mut props = paho::Properties::new();
                props
                    .push_u32(paho::PropertyCode::SessionExpiryInterval, secs)
                    .map_err(|e| ConfigError::Create(Box::new(e)))?;
                connect.clean_start(false).properties(props);
            }
        }
        if let Some(user_name) = &self.user_name {
            connect.user_name(user_name.as_str());
        }
        if let Some(password) = &self.password {
            connect.password(password.clone());
        }
        if tls {
            connect.ssl_options(self.ssl_options()?);
        }
        Ok(Plan {
            create,
            connect: connect.finalize(),
            connect_timeout: wait,
            tls: Target {
                uri: self.server_uri.clone(),
                host,
                port,
                connect_timeout: self.connect_timeout,
                tls: tls.then(|| TlsCheck {
                    ca_file: self.ca_file.clone(),
                    client_cert: self.client_cert.clone(),
                    alpn: self.alpn.clone(),
                    verify_host_name: self.verify_host_name,
                }),
            },
        })
    }

    fn ssl_options(&self) -> Result<paho::SslOptions, ConfigError> {
        let mut ssl = paho::SslOptionsBuilder::new();
        ssl.enable_server_cert_auth(true)
            .verify(self.verify_host_name);
        if let Some(ca) = &self.ca_file {
            pem::check_ca_file(ca)?;
            ssl.trust_store(ca)
                .map_err(|e| paho_file_error(pem::CA_FILE, ca, e))?;
        }
        if let Some((cert, key)) = &self.client_cert {
            pem::check_client_certificate(cert, key)?;
            ssl.key_store(cert)
                .map_err(|e| paho_file_error(pem::CERTIFICATE, cert, e))?;
            ssl.private_key(key)
                .map_err(|e| paho_file_error(pem::PRIVATE_KEY, key, e))?;
        }
        if !self.alpn.is_empty() {
            let protocols: Vec<&str> = self.alpn.iter().map(String::as_str).collect();
            ssl.alpn_protos(&protocols);
        }
        Ok(ssl.finalize())
    }
}

/// The validated Paho options.
pub(crate) struct Plan {
    pub(crate) create: paho::CreateOptions,
    pub(crate) connect: paho::ConnectOptions,
    /// How long `build` waits for one connect attempt.
    pub(crate) connect_timeout: Duration,
    /// Where it connects, to diagnose a failure.
    pub(crate) tls: Target,
}

/// Where a transport connects and how, to say why a connect failed.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    pub(crate) uri: String,
    pub(crate) host: String,
    pub(crate) port: u16,
    /// The connect timeout as configured.
    pub(crate) connect_timeout: Duration,
    /// The TLS settings, on a TLS URI.
    pub(crate) tls: Option<TlsCheck>,
}

/// How long Paho's own connect timeout may run past ours, when it is a whole number of
/// seconds: Paho decides first, so its specific error is what the caller sees.
const CONNECT_MARGIN: Duration = Duration::from_secs(2);

/// Paho's connect timeout (whole seconds, rounded up) and how long `build` waits.
fn connect_bounds(timeout: Duration) -> Result<(Duration, Duration), ConfigError> {
    if timeout.is_zero() {
        return Err(ConfigError::ZeroTimeout {
            setting: "connect timeout",
        });
    }
    let whole = timeout.subsec_nanos() == 0;
    let seconds = timeout
        .as_secs()
        .saturating_add(u64::from(!whole))
        .min(65_535);
    let paho = Duration::from_secs(seconds);
    let wait = if whole {
        timeout.saturating_add(CONNECT_MARGIN)
    } else {
        timeout
    };
    Ok((paho, wait))
}

/// The URI's scheme (TLS or not), host and port.
fn parse_uri(uri: &str) -> Result<(bool, String, u16), ConfigError> {
    let invalid = |problem| ConfigError::ServerUri {
        uri: uri.to_owned(),
        problem,
    };
    const SCHEMES: &str =
        "use tcp:// or mqtt:// (plain) or ssl://, mqtts:// or tls:// (TLS), then host:port";
    let (scheme, rest) = uri.split_once("://").ok_or_else(|| invalid(SCHEMES))?;
    let tls = match scheme {
        "tcp" | "mqtt" => false,
        "ssl" | "mqtts" | "tls" => true,
        _ => return Err(invalid(SCHEMES)),
    };
    let (host, port) = rest
        .rsplit_once(':')
        .ok_or_else(|| invalid("no port: use scheme://host:port, such as tcp://localhost:1883"))?;
    if host.is_empty() || host.contains(['/', '\0']) {
        return Err(invalid("no host name: use scheme://host:port"));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| invalid("the port is not a number from 0 to 65535"))?;
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((tls, host.to_owned(), port))
}

fn whole_seconds(value: Duration, setting: &'static str) -> Result<Duration, ConfigError> {
    let ok = value.subsec_nanos() == 0 && value.as_secs() >= 1 && value.as_secs() <= 65_535;
    if ok {
        Ok(value)
    } else {
        Err(ConfigError::WholeSeconds { setting, value })
    }
}

fn paho_file_error(role: &'static str, path: &Path, error: paho::Error) -> ConfigError {
    ConfigError::File {
        role,
        path: path.to_owned(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidInput, error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(builder: PahoTransportBuilder) -> ConfigError {
        match builder.plan() {
            Err(e) => e,
            Ok(_) => panic!("expected a config error"),
        }
    }

    #[test]
    fn plain_uri_with_default_options_is_valid() {
        assert!(
            PahoTransportBuilder::new("tcp://localhost:1883", "dev")
                .plan()
                .is_ok()
        );
    }

    #[test]
    fn uri_without_scheme_or_port_is_refused() {
        for uri in [
            "localhost:1883",
            "http://localhost:1883",
            "tcp://localhost",
            "tcp://:1883",
            "tcp://h:99999",
        ] {
            assert!(
                matches!(
                    err(PahoTransportBuilder::new(uri, "dev")),
                    ConfigError::ServerUri { .. }
                ),
                "{uri}"
            );
        }
    }

    #[test]
    fn empty_or_overlong_client_id_is_refused() {
        for id in [String::new(), "x".repeat(129), "a\0b".to_owned()] {
            assert!(matches!(
                err(PahoTransportBuilder::new("tcp://h:1", &id)),
                ConfigError::ClientId { .. }
            ));
        }
    }

    #[test]
    fn tls_options_on_a_plain_uri_are_refused() {
        let b = PahoTransportBuilder::new("tcp://h:1", "dev").alpn_protocols(&[AWS_IOT_ALPN]);
        assert!(matches!(err(b), ConfigError::TlsOnPlainUri));
    }

    #[test]
    fn fractional_or_zero_seconds_are_refused_not_rounded() {
        let b =
            PahoTransportBuilder::new("tcp://h:1", "dev").keep_alive(Duration::from_millis(1500));
        assert!(matches!(err(b), ConfigError::WholeSeconds { .. }));
        let b = PahoTransportBuilder::new("tcp://h:1", "dev").connect_timeout(Duration::ZERO);
        assert!(matches!(
            err(b),
            ConfigError::ZeroTimeout {
                setting: "connect timeout"
            }
        ));
        let b = PahoTransportBuilder::new("tcp://h:1", "dev")
            .reconnect_backoff(Duration::from_secs(5), Duration::from_secs(2));
        assert!(matches!(err(b), ConfigError::ReconnectBackoff));
        let b = PahoTransportBuilder::new("tcp://h:1", "dev").operation_timeout(Duration::ZERO);
        assert!(matches!(err(b), ConfigError::ZeroTimeout { .. }));
    }

    #[test]
    fn a_connect_timeout_below_a_second_is_accepted_and_bounds_the_wait_itself() {
        let plan = PahoTransportBuilder::new("tcp://h:1", "dev")
            .connect_timeout(Duration::from_millis(1500))
            .plan()
            .unwrap();
        assert_eq!(plan.connect_timeout, Duration::from_millis(1500));
        let plan = PahoTransportBuilder::new("tcp://h:1", "dev")
            .connect_timeout(Duration::from_millis(200))
            .plan()
            .unwrap();
        assert_eq!(plan.connect_timeout, Duration::from_millis(200));
        assert_eq!(
            connect_bounds(Duration::from_secs(3)).unwrap(),
            (Duration::from_secs(3), Duration::from_secs(5))
        );
        assert_eq!(
            connect_bounds(Duration::from_millis(1500)).unwrap().0,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn the_uri_error_says_which_schemes_are_accepted() {
        let text = err(PahoTransportBuilder::new("http://localhost:1883", "dev")).to_string();
        assert!(text.contains("tcp://") && text.contains("ssl://"), "{text}");
        let text = err(PahoTransportBuilder::new("tcp://localhost", "dev")).to_string();
        assert!(text.contains("no port"), "{text}");
    }

    #[test]
    fn password_without_user_name_is_refused() {
        let b = PahoTransportBuilder::new("tcp://h:1", "dev").password(b"secret");
        assert!(matches!(err(b), ConfigError::PasswordWithoutUserName));
    }

    #[test]
    fn missing_certificate_file_is_refused_at_build_time() {
        let b = PahoTransportBuilder::new("ssl://h:8883", "dev").ca_file("/nonexistent/ca.pem");
        match err(b) {
            ConfigError::File { path, source, .. } => {
                assert_eq!(path, PathBuf::from("/nonexistent/ca.pem"));
                assert_eq!(source.kind(), std::io::ErrorKind::NotFound);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn aws_iot_shortcuts_use_8883_or_443_with_alpn() {
        let b =
            crate::PahoTransport::aws_iot("x-ats.iot.eu-west-1.amazonaws.com", "d", "c", "e", "k");
        assert_eq!(b.server_uri, "ssl://x-ats.iot.eu-west-1.amazonaws.com:8883");
        assert_eq!(b.limits(), BrokerLimits::AWS_IOT);
        let local = PahoTransport::builder("tcp://localhost:1883", "d");
        assert_eq!(local.limits(), BrokerLimits::NONE);
        assert_eq!(
            local.broker_limits(BrokerLimits::AWS_IOT).limits(),
            BrokerLimits::AWS_IOT
        );
        assert!(b.alpn.is_empty());
        assert!(b.verify_host_name);
        let b = crate::PahoTransport::aws_iot_443(
            "x-ats.iot.eu-west-1.amazonaws.com",
            "d",
            "c",
            "e",
            "k",
        );
        assert_eq!(b.server_uri, "ssl://x-ats.iot.eu-west-1.amazonaws.com:443");
        assert_eq!(b.alpn, vec![AWS_IOT_ALPN.to_owned()]);
        assert_eq!(b.client_cert, Some(("e".into(), "k".into())));
    }

    #[test]
    fn bad_alpn_protocol_is_refused() {
        let b = PahoTransportBuilder::new("ssl://h:443", "dev").alpn_protocols(&[""]);
        assert!(matches!(err(b), ConfigError::AlpnProtocol { .. }));
    }
}

//! [`ConfigError`] (refused by [`PahoTransportBuilder::build`](crate::PahoTransportBuilder::build)
//! before anything touches the network) and [`ConnectError`] (the first connection failed), plus
//! the mapping of Paho errors onto [`TransportError`].

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::PathBuf;

use jobs_core::TransportError;

/// A configuration value the builder refused; nothing was created or connected.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConfigError {
    /// The server URI is not `scheme://host:port` with a scheme Paho supports for this crate:
    /// `tcp`, `mqtt` (plain) or `ssl`, `mqtts`, `tls` (TLS).
    ServerUri {
        /// The URI as given.
        uri: String,
    },
    /// The client ID is empty, longer than 128 bytes (AWS IoT Core's limit) or contains a NUL.
    ClientId {
        /// The client ID as given.
        client_id: String,
    },
    /// TLS options were set for a plain (`tcp://`, `mqtt://`) server URI.
    TlsOnPlainUri,
    /// A duration that Paho counts in whole seconds (keep-alive, connect timeout, reconnect
    /// backoff) is zero, not a whole number of seconds, or too large; Paho would silently
    /// round it.
    WholeSeconds {
        /// Which setting.
        setting: &'static str,
    },
    /// The operation timeout is zero.
    ZeroOperationTimeout,
    /// The reconnect backoff's maximum is below its minimum.
    ReconnectBackoff,
    /// A password was set without a user name (MQTT 3.1.1 does not allow it).
    PasswordWithoutUserName,
    /// The user name contains a NUL character.
    UserName,
    /// An ALPN protocol name is empty, longer than 255 bytes or contains a NUL.
    AlpnProtocol {
        /// The protocol name as given.
        protocol: String,
    },
    /// A certificate or key file cannot be used: its path is not UTF-8 (Paho needs UTF-8
    /// paths) or the file cannot be read.
    File {
        /// The path as given.
        path: PathBuf,
        /// Why it cannot be used (`InvalidInput` for a non-UTF-8 path).
        source: io::Error,
    },
    /// Paho refused to create the client (for example an unsupported URI); see the source.
    Create(Box<dyn StdError + Send + Sync>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerUri { uri } => write!(f, "invalid server uri {uri:?}"),
            Self::ClientId { client_id } => write!(
                f,
                "invalid client id {client_id:?}: need 1 to 128 bytes without nul"
            ),
            Self::TlsOnPlainUri => f.write_str("tls options set for a plain tcp:// or mqtt:// uri"),
            Self::WholeSeconds { setting } => {
                write!(f, "{setting} must be a whole, non-zero number of seconds")
            }
            Self::ZeroOperationTimeout => f.write_str("operation timeout must not be zero"),
            Self::ReconnectBackoff => f.write_str("reconnect backoff maximum is below its minimum"),
            Self::PasswordWithoutUserName => f.write_str("password set without a user name"),
            Self::UserName => f.write_str("user name contains a nul character"),
            Self::AlpnProtocol { protocol } => write!(
                f,
                "invalid alpn protocol {protocol:?}: need 1 to 255 bytes without nul"
            ),
            Self::File { path, .. } => write!(f, "cannot use file {}", path.display()),
            Self::Create(_) => f.write_str("paho refused to create the client"),
        }
    }
}

impl StdError for ConfigError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::File { source, .. } => Some(source),
            Self::Create(source) => Some(source.as_ref()),
            _ => None,
        }
    }
}

/// Why [`PahoTransportBuilder::build`](crate::PahoTransportBuilder::build) failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration was refused before anything was connected.
    Config(ConfigError),
    /// The TLS handshake failed: the server certificate is not trusted by the CA file, its
    /// names do not match the host (with host-name verification on), a certificate or key
    /// could not be loaded, or (with TLS 1.3, timing-dependent; else [`Closed`](Self::Closed))
    /// the broker refused the client certificate or its absence.
    Tls(Box<dyn StdError + Send + Sync>),
    /// The broker accepted TCP (and TLS, if used) but then closed the connection without a
    /// CONNACK — what mosquitto and AWS IoT do to a TLS client without an acceptable client
    /// certificate — or the TCP connection itself failed (nothing listening, unreachable;
    /// on a TLS URI Paho reports that as a TLS failure, so it is [`Tls`](Self::Tls) there).
    Closed(Box<dyn StdError + Send + Sync>),
    /// The broker answered CONNECT with a refusal; `code` is the CONNACK return code
    /// (MQTT 3.1.1: 1–5) or reason code (MQTT 5: 0x80 and above).
    Refused {
        /// The CONNACK code.
        code: u8,
    },
    /// No answer within the connect timeout.
    Timeout,
    /// Any other failure; the source says what happened.
    Backend(Box<dyn StdError + Send + Sync>),
}

impl ConnectError {
    /// The CONNACK refusal code, if the broker refused the connection.
    pub fn refused_code(&self) -> Option<u8> {
        match self {
            Self::Refused { code } => Some(*code),
            _ => None,
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(_) => f.write_str("invalid transport configuration"),
            Self::Tls(_) => f.write_str("tls handshake with the broker failed"),
            Self::Closed(_) => f.write_str("connection to the broker failed or was closed"),
            Self::Refused { code } => write!(f, "broker refused the connection with code {code}"),
            Self::Timeout => f.write_str("broker did not answer connect in time"),
            Self::Backend(_) => f.write_str("connect failed"),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Config(source) => Some(source),
            Self::Tls(source) | Self::Closed(source) | Self::Backend(source) => {
                Some(source.as_ref())
            }
            Self::Refused { .. } | Self::Timeout => None,
        }
    }
}

impl From<ConfigError> for ConnectError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

/// Maps a failed connect onto [`ConnectError`], by variant.
pub(crate) fn connect_error(error: paho_mqtt::Error, tls: bool) -> ConnectError {
    use paho_mqtt::Error as E;
    match error {
        // Paho reports a failed TCP connect (nothing listening) with the same code as a failed
        // TLS handshake; only a TLS URI makes it a TLS failure.
        E::TcpTlsConnectFailure if !tls => ConnectError::Closed(Box::new(error)),
        E::TcpTlsConnectFailure | E::SslNotSupported | E::MissingSslOptions => {
            ConnectError::Tls(Box::new(error))
        }
        E::TcpConnectCompletionFailure | E::SocketError(_) | E::Disconnected => {
            ConnectError::Closed(Box::new(error))
        }
        // Both are `#[repr(u8)]` enums: the cast reads the wire byte back, losslessly.
        E::ConnectReturn(code) => ConnectError::Refused { code: code as u8 },
        E::ReasonCode(code, _) if code.is_err() => ConnectError::Refused { code: code as u8 },
        E::Timeout | E::TcpConnectTimeout => ConnectError::Timeout,
        other => ConnectError::Backend(Box::new(other)),
    }
}

/// Maps a failed subscribe, unsubscribe or publish onto [`TransportError`], by variant.
pub(crate) fn transport_error(error: paho_mqtt::Error) -> TransportError {
    use paho_mqtt::Error as E;
    match error {
        E::Disconnected => TransportError::NotConnected,
        E::OperationIncomplete => TransportError::ConnectionLost,
        E::Timeout => TransportError::Timeout,
        // try_publish reports its return code with the message it could not send.
        E::Publish(rc, _) => transport_error(E::from_return_code(rc)),
        other => TransportError::Backend(Box::new(other)),
    }
}

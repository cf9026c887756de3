//! [`ConfigError`] (refused by [`PahoTransportBuilder::build`](crate::PahoTransportBuilder::build)
//! before anything touches the network) and [`ConnectError`] (the first connection failed), plus
//! the mapping of Paho errors onto [`TransportError`].
//!
//! Both errors say what to fix: the URI, the file, the cause. Their `Debug` is written for
//! people too (the message and its causes), because that is what `main` prints when it returns
//! an error; `{:#?}` shows the structure.

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use jobs_core::TransportError;

use crate::builder::Target;

/// A configuration value the builder refused; nothing was created or connected.
#[non_exhaustive]
pub enum ConfigError {
    /// The server URI is not `scheme://host:port` with a scheme Paho supports for this crate:
    /// `tcp`, `mqtt` (plain) or `ssl`, `mqtts`, `tls` (TLS).
    ServerUri {
        /// The URI as given.
        uri: String,
        /// What is wrong with it, for a person.
        problem: &'static str,
    },
    /// The client ID is empty, longer than 128 bytes (AWS IoT Core's limit) or contains a NUL.
    ClientId {
        /// The client ID as given.
        client_id: String,
    },
    /// TLS options were set for a plain (`tcp://`, `mqtt://`) server URI.
    TlsOnPlainUri,
    /// A duration that Paho counts in whole seconds (keep-alive, reconnect backoff, session
    /// expiry) is zero, not a whole number of seconds, or too large; Paho would silently round
    /// it. The connect timeout is exempt: it takes any non-zero duration.
    WholeSeconds {
        /// Which setting.
        setting: &'static str,
        /// The value given.
        value: Duration,
    },
    /// The operation timeout or the connect timeout is zero.
    ZeroTimeout {
        /// Which setting.
        setting: &'static str,
    },
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
    /// A certificate or key file cannot be read: its path is not UTF-8 (Paho needs UTF-8
    /// paths), it does not exist, it is a directory, or it is not readable.
    File {
        /// What the file is for, such as `CA file`.
        role: &'static str,
        /// The path as given.
        path: PathBuf,
        /// Why it cannot be read (`InvalidInput` for a non-UTF-8 path).
        source: io::Error,
    },
    /// A certificate or key file was read but does not hold what it should: no PEM
    /// certificate, no unencrypted PEM private key, or a key that does not belong to the
    /// certificate.
    Pem {
        /// What the file is for, such as `client certificate`.
        role: &'static str,
        /// The path as given.
        path: PathBuf,
        /// What is wrong, for a person.
        problem: String,
    },
    /// Paho refused to create the client (for example an unsupported URI); see the source.
    Create(Box<dyn StdError + Send + Sync>),
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerUri { uri, problem } => write!(f, "invalid server uri {uri:?}: {problem}"),
            Self::ClientId { client_id } => write!(
                f,
                "invalid client id {client_id:?}: need 1 to 128 bytes without nul (with AWS IoT \
                 the client id is usually the thing name)"
            ),
            Self::TlsOnPlainUri => f.write_str(
                "tls options (ca file, client certificate, alpn) set for a plain tcp:// or \
                 mqtt:// uri; use ssl://host:port",
            ),
            Self::WholeSeconds { setting, value } => write!(
                f,
                "{setting} must be a whole number of seconds from 1 to 65535 (paho counts it in \
                 seconds), not {value:?}"
            ),
            Self::ZeroTimeout { setting } => write!(f, "{setting} must not be zero"),
            Self::ReconnectBackoff => f.write_str("reconnect backoff maximum is below its minimum"),
            Self::PasswordWithoutUserName => f.write_str("password set without a user name"),
            Self::UserName => f.write_str("user name contains a nul character"),
            Self::AlpnProtocol { protocol } => write!(
                f,
                "invalid alpn protocol {protocol:?}: need 1 to 255 bytes without nul"
            ),
            Self::File { role, path, .. } => write!(f, "cannot read {role} {}", path.display()),
            Self::Pem {
                role,
                path,
                problem,
            } => write!(f, "{role} {} {problem}", path.display()),
            Self::Create(_) => f.write_str("paho refused to create the client"),
        }
    }
}

impl fmt::Debug for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if f.alternate() {
            return self.fmt_structure(f);
        }
        write_chain(f, self)
    }
}

impl ConfigError {
    fn fmt_structure(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::ServerUri { uri, problem } => f
                .debug_struct("ServerUri")
                .field("uri", uri)
                .field("problem", problem)
                .finish(),
            Self::ClientId { client_id } => f
                .debug_struct("ClientId")
                .field("client_id", client_id)
                .finish(),
            Self::TlsOnPlainUri => f.write_str("TlsOnPlainUri"),
            Self::WholeSeconds { setting, value } => f
                .debug_struct("WholeSeconds")
                .field("setting", setting)
                .field("value", value)
                .finish(),
            Self::ZeroTimeout { setting } => f
                .debug_struct("ZeroTimeout")
                .field("setting", setting)
                .finish(),
            Self::ReconnectBackoff => f.write_str("ReconnectBackoff"),
            Self::PasswordWithoutUserName => f.write_str("PasswordWithoutUserName"),
            Self::UserName => f.write_str("UserName"),
            Self::AlpnProtocol { protocol } => f
                .debug_struct("AlpnProtocol")
                .field("protocol", protocol)
                .finish(),
            Self::File { role, path, source } => f
                .debug_struct("File")
                .field("role", role)
                .field("path", path)
                .field("source", source)
                .finish(),
            Self::Pem {
                role,
                path,
                problem,
            } => f
                .debug_struct("Pem")
                .field("role", role)
                .field("path", path)
                .field("problem", problem)
                .finish(),
            Self::Create(source) => f.debug_tuple("Create").field(source).finish(),
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

/// Why a TLS handshake failed, as far as a diagnostic handshake of our own could tell (Paho
/// itself reports every TLS failure with one code).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TlsFailure {
    /// The broker's certificate chain does not verify against the CA file (or, without one,
    /// the system trust store).
    Untrusted {
        /// The CA file used; `None` for the system trust store.
        ca_file: Option<PathBuf>,
        /// OpenSSL's verification result, such as `unable to get local issuer certificate`.
        reason: String,
    },
    /// The broker's certificate does not name the URI's host (host-name verification is on).
    HostName {
        /// The host of the URI.
        host: String,
    },
    /// The broker refused the client certificate, or requires one and none was given.
    ClientCertificate {
        /// The client certificate offered; `None` when none was.
        certificate: Option<PathBuf>,
    },
    /// Any other handshake failure; `reason` is OpenSSL's (or Paho's) description.
    Handshake {
        /// What failed.
        reason: String,
    },
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Untrusted {
                ca_file: Some(ca),
                reason,
            } => write!(
                f,
                "the broker's certificate is not trusted by CA file {} ({reason})",
                ca.display()
            ),
            Self::Untrusted {
                ca_file: None,
                reason,
            } => write!(
                f,
                "the broker's certificate is not trusted by the system trust store ({reason}); \
                 give the CA file that signed it"
            ),
            Self::HostName { host } => write!(
                f,
                "the broker's certificate does not name host {host:?} (connect with a name the \
                 certificate has, or turn the check off for tests with \
                 danger_disable_hostname_verification)"
            ),
            Self::ClientCertificate {
                certificate: Some(certificate),
            } => write!(
                f,
                "the broker refused the client certificate {} (for AWS IoT: it must be \
                 registered and ACTIVE)",
                certificate.display()
            ),
            Self::ClientCertificate { certificate: None } => {
                f.write_str("the broker requires a client certificate and none was given")
            }
            Self::Handshake { reason } => write!(f, "{reason}"),
        }
    }
}

/// Why [`PahoTransportBuilder::build`](crate::PahoTransportBuilder::build) failed. Every
/// variant but `Config` names the server URI; the `Display` says what failed and, where it is
/// known, what usually fixes it.
#[non_exhaustive]
pub enum ConnectError {
    /// The configuration was refused before anything was connected.
    Config(ConfigError),
    /// The broker's host name did not resolve.
    Dns {
        /// The server URI.
        uri: String,
        /// The host name.
        host: String,
        /// The resolver's error.
        source: io::Error,
    },
    /// No TCP connection: refused (nothing listens on the port), unreachable, reset.
    Tcp {
        /// The server URI.
        uri: String,
        /// The address tried last.
        address: SocketAddr,
        /// The socket error (`ConnectionRefused`, …).
        source: io::Error,
    },
    /// The TLS handshake failed; [`TlsFailure`] says which check.
    Tls {
        /// The server URI.
        uri: String,
        /// What failed.
        failure: TlsFailure,
        /// Paho's error.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The broker accepted TCP (and TLS, if used) but then closed the connection without a
    /// CONNACK — what AWS IoT does when the policy does not allow `iot:Connect` for the
    /// client ID.
    Closed {
        /// The server URI.
        uri: String,
        /// Paho's error.
        source: Box<dyn StdError + Send + Sync>,
    },
    /// The broker answered CONNECT with a refusal; `code` is the CONNACK return code
    /// (MQTT 3.1.1: 1–5) or reason code (MQTT 5: 0x80 and above).
    Refused {
        /// The server URI.
        uri: String,
        /// The CONNACK code.
        code: u8,
    },
    /// No answer within the connect timeout (and the connect retries, if any).
    Timeout {
        /// The server URI.
        uri: String,
        /// How long it waited.
        waited: Duration,
    },
    /// Any other failure; the source says what happened.
    Backend {
        /// The server URI.
        uri: String,
        /// Paho's error.
        source: Box<dyn StdError + Send + Sync>,
    },
}

impl ConnectError {
    /// The CONNACK refusal code, if the broker refused the connection.
    pub fn refused_code(&self) -> Option<u8> {
        match self {
            Self::Refused { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// The server URI, for every failure after the configuration was accepted.
    pub fn uri(&self) -> Option<&str> {
        match self {
            Self::Config(_) => None,
            Self::Dns { uri, .. }
            | Self::Tcp { uri, .. }
            | Self::Tls { uri, .. }
            | Self::Closed { uri, .. }
            | Self::Refused { uri, .. }
            | Self::Timeout { uri, .. }
            | Self::Backend { uri, .. } => Some(uri),
        }
    }

    /// Whether trying again later may succeed: the broker could not be reached, closed the
    /// connection, timed out, or said it is unavailable or busy. A configuration error, a
    /// TLS verification failure or an authentication refusal needs a fix instead.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Dns { .. }
            | Self::Tcp { .. }
            | Self::Closed { .. }
            | Self::Timeout { .. }
            | Self::Backend { .. } => true,
            // 3: server unavailable; 0x88 server unavailable, 0x89 server busy, 0x97 quota
            // exceeded, 0x9F connection rate exceeded.
            Self::Refused { code, .. } => matches!(code, 3 | 0x88 | 0x89 | 0x97 | 0x9F),
            Self::Config(_) | Self::Tls { .. } => false,
        }
    }
}

/// What a CONNACK refusal code means, and what usually causes it.
pub fn connack_meaning(code: u8) -> &'static str {
    match code {
        1 => "unacceptable protocol version (try the other MQTT version)",
        2 | 0x85 => "client identifier rejected",
        3 | 0x88 => "server unavailable",
        4 | 0x86 => "bad user name or password",
        5 | 0x87 => {
            "not authorized (for AWS IoT: usually the policy does not allow iot:Connect for \
             this client ID, or the certificate is not active or not attached to the policy)"
        }
        0x80 => "unspecified error",
        0x81 => "malformed packet",
        0x82 => "protocol error",
        0x83 => "implementation specific error",
        0x84 => "unsupported protocol version",
        0x89 => "server busy",
        0x8A => "banned",
        0x8C => "bad authentication method",
        0x95 => "packet too large",
        0x97 => "quota exceeded",
        0x99 => "payload format invalid",
        0x9A => "retain not supported",
        0x9B => "qos not supported",
        0x9C => "use another server",
        0x9D => "server moved",
        0x9F => "connection rate exceeded",
        _ => "unknown code",
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Config(_) => f.write_str("invalid transport configuration"),
            Self::Dns { uri, host, .. } => {
                write!(f, "cannot connect to {uri}: host {host:?} not found (DNS)")
            }
            Self::Tcp {
                uri,
                address,
                source,
            } if source.kind() == io::ErrorKind::ConnectionRefused => write!(
                f,
                "cannot connect to {uri}: connection refused by {address} (is the broker \
                 running and listening on that port?)"
            ),
            Self::Tcp { uri, address, .. } => {
                write!(f, "cannot connect to {uri}: no tcp connection to {address}")
            }
            Self::Tls { uri, failure, .. } => {
                write!(f, "tls handshake with {uri} failed: {failure}")
            }
            Self::Closed { uri, .. } => write!(
                f,
                "{uri} closed the connection without answering connect (AWS IoT does this when \
                 the policy does not allow iot:Connect for this client ID, or another client \
                 connects with the same client ID)"
            ),
            Self::Refused { uri, code } => write!(
                f,
                "{uri} refused the connection: connack code {code}, {}",
                connack_meaning(*code)
            ),
            Self::Timeout { uri, waited } => {
                write!(f, "cannot connect to {uri}: no answer within {waited:?}")
            }
            Self::Backend { uri, .. } => write!(f, "cannot connect to {uri}"),
        }
    }
}

impl fmt::Debug for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !f.alternate() {
            return write_chain(f, self);
        }
        match self {
            Self::Config(error) => f.debug_tuple("Config").field(error).finish(),
            Self::Dns { uri, host, source } => f
                .debug_struct("Dns")
                .field("uri", uri)
                .field("host", host)
                .field("source", source)
                .finish(),
            Self::Tcp {
                uri,
                address,
                source,
            } => f
                .debug_struct("Tcp")
                .field("uri", uri)
                .field("address", address)
                .field("source", source)
                .finish(),
            Self::Tls {
                uri,
                failure,
                source,
            } => f
                .debug_struct("Tls")
                .field("uri", uri)
                .field("failure", failure)
                .field("source", source)
                .finish(),
            Self::Closed { uri, source } | Self::Backend { uri, source } => f
                .debug_struct(if matches!(self, Self::Closed { .. }) {
                    "Closed"
                } else {
                    "Backend"
                })
                .field("uri", uri)
                .field("source", source)
                .finish(),
            Self::Refused { uri, code } => f
                .debug_struct("Refused")
                .field("uri", uri)
                .field("code", code)
                .finish(),
            Self::Timeout { uri, waited } => f
                .debug_struct("Timeout")
                .field("uri", uri)
                .field("waited", waited)
                .finish(),
        }
    }
}

impl StdError for ConnectError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            Self::Config(source) => Some(source),
            Self::Dns { source, .. } | Self::Tcp { source, .. } => Some(source),
            Self::Tls { source, .. }
            | Self::Closed { source, .. }
            | Self::Backend { source, .. } => Some(source.as_ref()),
            Self::Refused { .. } | Self::Timeout { .. } => None,
        }
    }
}

impl From<ConfigError> for ConnectError {
    fn from(error: ConfigError) -> Self {
        Self::Config(error)
    }
}

/// Writes `error` and its causes as `message: cause: cause`, for a readable `Debug`.
fn write_chain(f: &mut fmt::Formatter<'_>, error: &dyn StdError) -> fmt::Result {
    write!(f, "{error}")?;
    let mut source = error.source();
    while let Some(cause) = source {
        write!(f, ": {cause}")?;
        source = cause.source();
    }
    Ok(())
}

/// Maps a failed connect onto [`ConnectError`], by Paho's variant; a failure to reach the
/// broker is diagnosed (DNS, TCP, TLS) to say why.
pub(crate) fn connect_error(error: paho_mqtt::Error, target: &Target) -> ConnectError {
    use paho_mqtt::Error as E;
    let uri = target.uri.clone();
    match error {
        E::TcpTlsConnectFailure
        | E::TcpConnectCompletionFailure
        | E::SocketError(_)
        | E::Disconnected
        // Paho's answer to a host name that does not resolve.
        | E::Failure => crate::diagnose::diagnose(
            &uri,
            &target.host,
            target.port,
            target.tls.as_ref(),
            target.connect_timeout,
            error,
        ),
        // Both are `#[repr(u8)]` enums: the cast reads the wire byte back, losslessly.
        E::ConnectReturn(code) => ConnectError::Refused {
            uri,
            code: code as u8,
        },
        E::ReasonCode(code, _) if code.is_err() => ConnectError::Refused {
            uri,
            code: code as u8,
        },
        E::Timeout | E::TcpConnectTimeout => ConnectError::Timeout {
            uri,
            waited: target.connect_timeout,
        },
        other => ConnectError::Backend {
            uri,
            source: Box::new(other),
        },
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connack_codes_4_and_5_say_what_they_mean() {
        let error = ConnectError::Refused {
            uri: "ssl://x:8883".into(),
            code: 5,
        };
        let text = error.to_string();
        assert!(text.contains("not authorized"), "{text}");
        assert!(text.contains("policy"), "{text}");
        assert!(text.contains("ssl://x:8883"), "{text}");
        assert!(connack_meaning(4).contains("bad user name or password"));
        assert!(connack_meaning(0x86).contains("bad user name or password"));
    }

    #[test]
    fn debug_reads_as_the_message_and_its_causes_and_alternate_shows_the_structure() {
        let error = ConnectError::Tcp {
            uri: "tcp://127.0.0.1:1".into(),
            address: "127.0.0.1:1".parse().unwrap(),
            source: io::Error::from(io::ErrorKind::ConnectionRefused),
        };
        let debug = format!("{error:?}");
        assert!(
            debug.starts_with("cannot connect to tcp://127.0.0.1:1: connection refused"),
            "{debug}"
        );
        assert!(!debug.contains("Tcp {"), "{debug}");
        assert!(format!("{error:#?}").starts_with("Tcp {"));
    }

    #[test]
    fn only_reachability_and_unavailability_are_transient() {
        let refused = |code| ConnectError::Refused {
            uri: String::new(),
            code,
        };
        assert!(refused(3).is_transient());
        assert!(!refused(5).is_transient());
        assert!(!ConnectError::Config(ConfigError::TlsOnPlainUri).is_transient());
        assert!(
            ConnectError::Timeout {
                uri: String::new(),
                waited: Duration::ZERO
            }
            .is_transient()
        );
    }
}

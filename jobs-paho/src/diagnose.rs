//! Why a first connect failed. Paho C reports a refused port, an unreachable host and every
//! TLS failure with one code, and a host name that does not resolve as a "general failure"
//! (the details go to its trace log only). After such a failure we look ourselves, once:
//! resolve the host, open a TCP connection, and on a TLS URI run a TLS handshake with the same
//! files and checks through OpenSSL (the library Paho uses), then name what failed.

use std::io::{self, Read as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use openssl::ssl::{HandshakeError, SslConnector, SslFiletype, SslMethod, SslVerifyMode};
use openssl::x509::X509VerifyResult;

use crate::error::{ConnectError, TlsFailure};

/// The TLS settings to reproduce.
#[derive(Debug, Clone)]
pub(crate) struct TlsCheck {
    pub(crate) ca_file: Option<PathBuf>,
    pub(crate) client_cert: Option<(PathBuf, PathBuf)>,
    pub(crate) alpn: Vec<String>,
    pub(crate) verify_host_name: bool,
}

/// OpenSSL's `X509_V_ERR_HOSTNAME_MISMATCH` and `X509_V_ERR_IP_ADDRESS_MISMATCH`.
const HOST_MISMATCH: [i32; 2] = [62, 64];
/// OpenSSL reports a TLS alert received from the peer as reason 1000 + the alert number.
const ALERT_OFFSET: i32 = 1000;
/// Alerts a server sends about the client's certificate: bad_certificate (42) to
/// access_denied (49), and certificate_required (116).
fn is_client_certificate_alert(reason: i32) -> bool {
    matches!(reason - ALERT_OFFSET, 42..=49 | 116)
}

/// Diagnoses a failed connect to `uri` (`host`:`port`; TLS when `tls` is set), within
/// `budget`. `paho` is Paho's error, kept as the source.
pub(crate) fn diagnose(
    uri: &str,
    host: &str,
    port: u16,
    tls: Option<&TlsCheck>,
    budget: Duration,
    paho: paho_mqtt::Error,
) -> ConnectError {
    let deadline = Instant::now() + budget;
    let addresses = match resolve(host, port, budget) {
        Ok(addresses) => addresses,
        Err(source) => {
            return ConnectError::Dns {
                uri: uri.to_owned(),
                host: host.to_owned(),
                source,
            };
        }
    };
    let mut last = None;
    let mut stream = None;
    for address in &addresses {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match TcpStream::connect_timeout(address, left) {
            Ok(connected) => {
                stream = Some(connected);
                break;
            }
            Err(error) => last = Some((*address, error)),
        }
    }
    let Some(stream) = stream else {
        return match last {
            Some((address, source)) if source.kind() != io::ErrorKind::TimedOut => {
                ConnectError::Tcp {
                    uri: uri.to_owned(),
                    address,
                    source,
                }
            }
            _ => ConnectError::Timeout {
                uri: uri.to_owned(),
                waited: budget,
            },
        };
    };
    let Some(tls) = tls else {
        return ConnectError::Closed {
            uri: uri.to_owned(),
            source: Box::new(paho),
        };
    };
    let left = deadline.saturating_duration_since(Instant::now());
    match handshake(stream, host, tls, left.max(Duration::from_millis(100))) {
        Some(failure) => ConnectError::Tls {
            uri: uri.to_owned(),
            failure,
            source: Box::new(paho),
        },
        None => ConnectError::Closed {
            uri: uri.to_owned(),
            source: Box::new(paho),
        },
    }
}

/// Resolves on a thread of its own, so that a hanging resolver cannot stretch `build`.
fn resolve(host: &str, port: u16, budget: Duration) -> io::Result<Vec<SocketAddr>> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let target = (host.to_owned(), port);
    std::thread::Builder::new()
        .name("jobs-paho-dns".into())
        .spawn(move || {
            let _ = tx.send(target.to_socket_addrs().map(Vec::from_iter));
        })?;
    match rx.recv_timeout(budget) {
        Ok(Ok(addresses)) if !addresses.is_empty() => Ok(addresses),
        Ok(Ok(_)) => Err(io::Error::new(io::ErrorKind::NotFound, "no address")),
        Ok(Err(error)) => Err(error),
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "the resolver did not answer in time",
        )),
    }
}

/// Runs the handshake Paho would, and says what failed; `None` when it succeeded and the
/// broker kept the connection open (TLS is then not the problem).
fn handshake(
    stream: TcpStream,
    host: &str,
    tls: &TlsCheck,
    timeout: Duration,
) -> Option<TlsFailure> {
    let other = |reason: String| Some(TlsFailure::Handshake { reason });
    if stream.set_read_timeout(Some(timeout)).is_err()
        || stream.set_write_timeout(Some(timeout)).is_err()
    {
        return other("cannot set socket timeouts".into());
    }
    let connector = match connector(tls) {
        Ok(connector) => connector,
        Err(error) => return other(error.to_string()),
    };
    let config = match connector.configure() {
        Ok(config) => config.verify_hostname(tls.verify_host_name),
        Err(error) => return other(error.to_string()),
    };
    let certificate = tls.client_cert.as_ref().map(|(cert, _)| cert.clone());
    match config.connect(host, stream) {
        Ok(mut stream) => {
            // TLS 1.3: the broker checks the client certificate after the handshake and
            // answers with an alert; give it the chance.
            let mut byte = [0_u8; 1];
            match stream.read(&mut byte) {
                Err(error) => {
                    let alert = error
                        .get_ref()
                        .and_then(|e| e.downcast_ref::<openssl::ssl::Error>())
                        .and_then(openssl::ssl::Error::ssl_error)
                        .is_some_and(|stack| {
                            stack
                                .errors()
                                .iter()
                                .any(|e| is_client_certificate_alert(e.reason_code()))
                        });
                    alert.then_some(TlsFailure::ClientCertificate { certificate })
                }
                // Data, end of stream or a clean close: TLS itself passed.
                Ok(_read) => None,
            }
        }
        Err(HandshakeError::Failure(mid)) => {
            let verify = mid.ssl().verify_result();
            if verify != X509VerifyResult::OK {
                if HOST_MISMATCH.contains(&verify.as_raw()) {
                    return Some(TlsFailure::HostName {
                        host: host.to_owned(),
                    });
                }
                return Some(TlsFailure::Untrusted {
                    ca_file: tls.ca_file.clone(),
                    reason: verify.error_string().to_owned(),
                });
            }
            let error = mid.error();
            let client_alert = error.ssl_error().is_some_and(|stack| {
                stack
                    .errors()
                    .iter()
                    .any(|e| is_client_certificate_alert(e.reason_code()))
            });
            if client_alert {
                return Some(TlsFailure::ClientCertificate { certificate });
            }
            other(error.to_string())
        }
        Err(HandshakeError::SetupFailure(error)) => other(error.to_string()),
        Err(HandshakeError::WouldBlock(_)) => other("the handshake timed out".into()),
    }
}

fn connector(tls: &TlsCheck) -> Result<SslConnector, openssl::error::ErrorStack> {
    let mut builder = SslConnector::builder(SslMethod::tls_client())?;
    builder.set_verify(SslVerifyMode::PEER);
    match &tls.ca_file {
        Some(ca) => builder.set_ca_file(ca)?,
        None => builder.set_default_verify_paths()?,
    }
    if let Some((cert, key)) = &tls.client_cert {
        builder.set_certificate_chain_file(cert)?;
        builder.set_private_key_file(key, SslFiletype::PEM)?;
    }
    if !tls.alpn.is_empty() {
        let mut wire = Vec::new();
        for protocol in &tls.alpn {
            // Checked to be 1–255 bytes by the builder.
            let Ok(length) = u8::try_from(protocol.len()) else {
                continue;
            };
            wire.push(length);
            wire.extend_from_slice(protocol.as_bytes());
        }
        builder.set_alpn_protos(&wire)?;
    }
    Ok(builder.build())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alerts_about_the_client_certificate_are_recognised() {
        assert!(is_client_certificate_alert(1042));
        assert!(is_client_certificate_alert(1048));
        assert!(is_client_certificate_alert(1116));
        assert!(!is_client_certificate_alert(1040));
        assert!(!is_client_certificate_alert(134));
    }

    #[test]
    fn a_closed_port_is_named_as_refused_with_its_address() {
        // Bind, read the port, release it: nothing listens there now.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let uri = format!("tcp://127.0.0.1:{port}");
        let error = diagnose(
            &uri,
            "127.0.0.1",
            port,
            None,
            Duration::from_secs(5),
            paho_mqtt::Error::TcpTlsConnectFailure,
        );
        match &error {
            ConnectError::Tcp {
                address, source, ..
            } => {
                assert_eq!(address.port(), port);
                assert_eq!(source.kind(), io::ErrorKind::ConnectionRefused);
            }
            other => panic!("unexpected {other:#?}"),
        }
        assert!(error.to_string().contains("connection refused"), "{error}");
    }
}

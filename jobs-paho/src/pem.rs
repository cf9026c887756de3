//! Checks of the certificate and key files at `build()`: each must be readable, at a UTF-8
//! path (Paho's requirement), and hold what it is for in PEM, so that a wrong file is named
//! before anything connects instead of failing the TLS handshake later.

use std::io;
use std::path::Path;

use openssl::pkey::{PKey, Private};
use openssl::x509::X509;

use crate::error::ConfigError;

/// The role of the CA file in messages.
pub(crate) const CA_FILE: &str = "CA file";
/// The role of the client certificate file in messages.
pub(crate) const CERTIFICATE: &str = "client certificate";
/// The role of the private key file in messages.
pub(crate) const PRIVATE_KEY: &str = "private key";

/// Reads `path` (a UTF-8 path; directories are refused).
fn read(role: &'static str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    let file_error = |source| ConfigError::File {
        role,
        path: path.to_owned(),
        source,
    };
    if path.to_str().is_none() {
        return Err(file_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        )));
    }
    if path.is_dir() {
        return Err(file_error(io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a directory, not a file",
        )));
    }
    std::fs::read(path).map_err(file_error)
}

fn pem_error(role: &'static str, path: &Path, problem: impl Into<String>) -> ConfigError {
    ConfigError::Pem {
        role,
        path: path.to_owned(),
        problem: problem.into(),
    }
}

/// Certificates in PEM (`-----BEGIN CERTIFICATE-----`), at least one.
fn certificates(role: &'static str, path: &Path) -> Result<Vec<X509>, ConfigError> {
    let bytes = read(role, path)?;
    let none = || {
        pem_error(
            role,
            path,
            "holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)",
        )
    };
    match X509::stack_from_pem(&bytes) {
        Ok(certificates) if !certificates.is_empty() => Ok(certificates),
        Ok(_) => Err(none()),
        Err(_) if !contains(&bytes, b"-----BEGIN CERTIFICATE-----") => Err(none()),
        Err(error) => Err(pem_error(
            role,
            path,
            format!("holds a PEM certificate that does not parse ({error})"),
        )),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Checks the CA file: at least one PEM certificate.
pub(crate) fn check_ca_file(path: &Path) -> Result<(), ConfigError> {
    certificates(CA_FILE, path).map(drop)
}

/// Checks the client certificate (PEM, may hold the chain) and its unencrypted PEM private
/// key, and that the key belongs to the certificate.
pub(crate) fn check_client_certificate(cert: &Path, key: &Path) -> Result<(), ConfigError> {
    let certificates = certificates(CERTIFICATE, cert)?;
    let key_bytes = read(PRIVATE_KEY, key)?;
    let private: PKey<Private> = match PKey::private_key_from_pem(&key_bytes) {
        Ok(private) => private,
        Err(_) if contains(&key_bytes, b"ENCRYPTED") => {
            return Err(pem_error(
                PRIVATE_KEY,
                key,
                "is encrypted; Paho needs an unencrypted PEM private key",
            ));
        }
        Err(_) => {
            return Err(pem_error(
                PRIVATE_KEY,
                key,
                "holds no PEM private key (expected a -----BEGIN PRIVATE KEY----- or \
                 -----BEGIN RSA/EC PRIVATE KEY----- block)",
            ));
        }
    };
    let matches = certificates
        .first()
        .and_then(|leaf| leaf.public_key().ok())
        .is_some_and(|public| public.public_eq(&private));
    if !matches {
        return Err(pem_error(
            PRIVATE_KEY,
            key,
            format!("does not belong to the certificate in {}", cert.display()),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp(name: &str, contents: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("jobs-paho-pem-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, contents).unwrap();
        path
    }

    #[test]
    fn a_ca_file_that_is_not_pem_is_named_with_what_is_wrong() {
        let path = temp("not-pem.crt", b"hello\n");
        match check_ca_file(&path) {
            Err(ConfigError::Pem { role, path: p, .. }) => {
                assert_eq!((role, p), (CA_FILE, path.clone()));
            }
            other => panic!("unexpected {other:#?}"),
        }
        let text = check_ca_file(&path).unwrap_err().to_string();
        assert!(text.starts_with("CA file "), "{text}");
        assert!(text.contains("no PEM certificate"), "{text}");
    }

    #[test]
    fn a_directory_given_as_ca_file_is_refused_as_a_directory() {
        let dir = std::env::temp_dir();
        match check_ca_file(&dir) {
            Err(error @ ConfigError::File { .. }) => {
                let chain = format!("{error:?}");
                assert!(chain.contains("is a directory"), "{chain}");
            }
            other => panic!("unexpected {other:#?}"),
        }
    }

    #[test]
    fn a_missing_key_file_is_named() {
        let key = std::path::Path::new("/nonexistent/device.key");
        let cert = temp("no-cert.crt", b"");
        // The certificate is checked first and holds nothing.
        assert!(matches!(
            check_client_certificate(&cert, key),
            Err(ConfigError::Pem {
                role: CERTIFICATE,
                ..
            })
        ));
    }
}

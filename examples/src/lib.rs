//! Shared code of the example programs: the device loop (used by the offline `quickstart` and
//! by `device`), the logger, output that survives a closed pipe, and (with feature `paho`) the
//! connection flags of the programs that use a real broker.

pub mod device;
pub mod logger;
pub mod output;

#[cfg(feature = "paho")]
pub mod connect;

#[cfg(feature = "rumqttc")]
pub mod rumqttc_transport;

#[cfg(feature = "tcp")]
pub mod tcp_transport;

use std::error::Error;

/// Returns the parsed command line, or prints the usage error and exits with status 2.
pub fn args_or_exit<T>(parsed: Result<T, String>) -> T {
    parsed.unwrap_or_else(|message| {
        eprintln!("{message}");
        std::process::exit(2);
    })
}

/// The error and its chain of causes on one line: `error: cause: cause`.
pub fn error_chain(error: &dyn Error) -> String {
    let mut message = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        message.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    message
}

/// Runs a program's body and, if it fails, prints the error and its chain of causes to
/// standard error and exits with status 1.
pub fn exit_on_error(name: &str, body: impl FnOnce() -> Result<(), Box<dyn Error>>) {
    if let Err(error) = body() {
        eprintln!("{name}: {}", error_chain(error.as_ref()));
        std::process::exit(1);
    }
}

/// The workspace README's examples, compiled here: this crate sees every other one (with
/// feature `paho`, which `./test.sh` turns on), so no library crate carries their dependencies.
#[cfg(all(doctest, feature = "paho"))]
#[doc = include_str!("../../README.md")]
struct ReadmeDoctests;

/// `PORTING.md`'s example: the conformance suite over the rumqttc port on mosquitto.
#[cfg(all(doctest, feature = "rumqttc"))]
#[doc = include_str!("../../PORTING.md")]
struct PortingDoctests;

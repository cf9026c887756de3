//! Shared code of the example programs: the device loop (used by the offline `quickstart` and
//! by `device`), the `jobs-service` jobs file and control commands, a tiny logger, and (with
//! feature `paho`) the connection flags of the programs that use a real broker.

pub mod device;
pub mod logger;
pub mod service;

#[cfg(feature = "paho")]
pub mod connect;

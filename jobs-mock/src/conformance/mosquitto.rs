//! [`MosquittoHarness`]: the suite over a real broker, a [`LocalBroker`].

use std::fmt;
use std::io;

use jobs_core::MqttTransport;

use super::{Capability, Harness, HarnessError};
use crate::local_broker::{LocalBroker, TestCertificates};

/// How a `MosquittoHarness` connects a transport: the broker and a unique client ID in, a
/// connected transport out.
type Connect = Box<dyn FnMut(&LocalBroker, &str) -> Result<Box<dyn MqttTransport>, HarnessError>>;

/// A [`Harness`] over a private mosquitto ([`LocalBroker`]), for any transport: the caller
/// says how to connect one. The broker is frozen with SIGSTOP and thawed with SIGCONT.
/// Transports must reconnect by themselves, quickly: give them a short reconnect backoff (at
/// most a second or two).
///
/// - [`start`](Self::start): connections are dropped by killing the broker (SIGKILL, by pid)
///   and restored by restarting it on the same port with fresh sessions; it keeps none, so
///   [`Capability::ResumeSession`] is missing.
/// - [`start_persistent`](Self::start_persistent), for transports that connect with a
///   persistent session (MQTT 3.1.1 clean session off): connections are dropped by stopping
///   the broker gracefully (it saves the sessions), and restored by restarting it, with the
///   saved sessions or, to restore without a session, after discarding them.
pub struct MosquittoHarness {
    broker: LocalBroker,
    connect: Connect,
    session_flag: bool,
    sessions: bool,
}

impl fmt::Debug for MosquittoHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MosquittoHarness")
            .field("broker", &self.broker)
            .field("session_flag", &self.session_flag)
            .finish_non_exhaustive()
    }
}

impl MosquittoHarness {
    /// Starts a broker; `connect` builds each transport under test (and each peer).
    ///
    /// # Errors
    /// When mosquitto cannot be started (see [`LocalBroker::start`]).
    pub fn start(
        connect: impl FnMut(&LocalBroker, &str) -> Result<Box<dyn MqttTransport>, HarnessError>
        + 'static,
    ) -> io::Result<Self> {
        Ok(Self {
            broker: LocalBroker::start()?,
            connect: Box::new(connect),
            session_flag: false,
            sessions: false,
        })
    }

    /// Starts a broker with a mutual-TLS listener too ([`LocalBroker::start_with_tls`]), for
    /// checking a transport over TLS: `connect` connects to
    /// [`tls_port`](LocalBroker::tls_port) with the device certificate of `certificates`.
    ///
    /// # Errors
    /// When mosquitto cannot be started.
    pub fn start_with_tls(
        certificates: &TestCertificates,
        connect: impl FnMut(&LocalBroker, &str) -> Result<Box<dyn MqttTransport>, HarnessError>
        + 'static,
    ) -> io::Result<Self> {
        Ok(Self {
            broker: LocalBroker::start_with_tls(certificates)?,
            connect: Box::new(connect),
            session_flag: false,
            sessions: false,
        })
    }

    /// Starts a broker that keeps sessions across restarts ([`LocalBroker::start_persistent`]);
    /// `connect` must connect with a persistent session.
    ///
    /// # Errors
    /// When mosquitto cannot be started.
    pub fn start_persistent(
        connect: impl FnMut(&LocalBroker, &str) -> Result<Box<dyn MqttTransport>, HarnessError>
        + 'static,
    ) -> io::Result<Self> {
        Ok(Self {
            broker: LocalBroker::start_persistent()?,
            connect: Box::new(connect),
            session_flag: false,
            sessions: true,
        })
    }

    /// Declares that the transport reports the CONNACK's session flag on reconnects
    /// ([`Capability::SessionFlag`]): `session_present: None` then breaks the rules. Defaults
    /// to `false`.
    #[must_use]
    pub fn session_flag(mut self, reported: bool) -> Self {
        self.session_flag = reported;
        self
    }

    /// The broker.
    pub fn broker(&self) -> &LocalBroker {
        &self.broker
    }
}

impl Harness for MosquittoHarness {
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        (self.connect)(&self.broker, client_id)
    }

    fn supports(&self, capability: Capability) -> bool {
        match capability {
            Capability::DropConnection | Capability::Freeze => true,
            Capability::ResumeSession => self.sessions,
            Capability::SessionFlag => self.session_flag,
            _ => false,
        }
    }

    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        if self.sessions {
            self.broker.stop()?;
        } else {
            self.broker.kill();
        }
        Ok(())
    }

    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        match (self.sessions, session_present) {
            (false, true) => {
                return Err("mosquitto without persistence cannot resume sessions".into());
            }
            (true, false) => self.broker.forget_sessions()?,
            _ => {}
        }
        Ok(self.broker.restart()?)
    }

    fn freeze(&mut self) -> Result<(), HarnessError> {
        Ok(self.broker.pause()?)
    }

    fn thaw(&mut self) -> Result<(), HarnessError> {
        Ok(self.broker.resume()?)
    }
}

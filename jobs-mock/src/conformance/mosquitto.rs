//! [`MosquittoHarness`]: the suite over a real broker, a [`LocalBroker`].

use std::fmt;
use std::io;
use std::time::Duration;

use jobs_core::MqttTransport;

use super::observe::Observations;
use super::wire::peer::Peer;
use super::wire::proxy::Proxy;
use super::{Capability, Harness, HarnessError};
use crate::local_broker::{LocalBroker, TestCertificates};

/// The keep-alive of the harness's peers.
const PEER_KEEP_ALIVE: Duration = Duration::from_secs(10);

/// How a `MosquittoHarness` connects a transport under test: where to connect and a unique
/// client ID in, a connected transport out.
type Connect =
    Box<dyn FnMut(&Endpoint, &str) -> Result<Box<dyn MqttTransport>, HarnessError> + Send>;

/// Where a transport under test connects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    host: String,
    port: u16,
    tls: bool,
}

impl Endpoint {
    /// The host name (`localhost` for TLS, the name in [`TestCertificates`]' broker
    /// certificate; `127.0.0.1` otherwise).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the listener requires TLS (with a client certificate).
    pub fn tls(&self) -> bool {
        self.tls
    }

    /// `tcp://host:port` or `ssl://host:port`.
    pub fn uri(&self) -> String {
        let scheme = if self.tls { "ssl" } else { "tcp" };
        format!("{scheme}://{}:{}", self.host, self.port)
    }
}

/// A [`Harness`] over a private mosquitto ([`LocalBroker`]), for any transport: the caller
/// says how to connect one to an [`Endpoint`]. Transports must reconnect by themselves,
/// quickly: give them a short reconnect backoff (at most a second or two), and a short
/// keep-alive (2 s) for [`Rule::KeepAliveWhileIdle`](super::Rule::KeepAliveWhileIdle).
///
/// Over plain TCP ([`start`](Self::start), [`start_persistent`](Self::start_persistent)) the
/// transports under test connect through a proxy of the harness, which records what each sends
/// ([`Capability::Observe`]), can hold back PUBACKs ([`Capability::HoldAcks`]), and drops
/// connections (closing them, and refusing new ones until restored). Peers are the harness's
/// own small MQTT client, connected to the broker directly: they survive the outages and share
/// no code with the transport under test. The broker is frozen with SIGSTOP and thawed with
/// SIGCONT, refuses [`LocalBroker::refused_filter`] when mosquitto's dynamic-security plugin is
/// installed ([`Capability::RefuseFilter`], [`start`](Self::start) only: transports must then
/// connect without a user name), closes idle clients after 1.5 × their keep-alive
/// ([`Capability::KeepAlive`]) and delivers at most 20 unacknowledged QoS 1 messages
/// ([`Capability::InflightWindow`]).
///
/// - [`start`](Self::start): no sessions kept; [`Capability::ResumeSession`] is missing.
/// - [`start_persistent`](Self::start_persistent), for transports that connect with a
///   persistent session (MQTT 3.1.1 clean session off): a restore without session restarts
///   the broker without its saved sessions.
/// - [`start_with_tls`](Self::start_with_tls): transports connect to the TLS listener
///   directly (no proxy can read TLS): connections are dropped by killing the broker (by
///   pid) and restored by restarting it, and the capabilities that need the proxy are missing.
pub struct MosquittoHarness {
    broker: LocalBroker,
    /// `None` over TLS.
    proxy: Option<Proxy>,
    observations: Observations,
    connect: Connect,
    session_flag: bool,
    sessions: bool,
}

impl fmt::Debug for MosquittoHarness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MosquittoHarness")
            .field("broker", &self.broker)
            .field("proxy", &self.proxy.as_ref().map(Proxy::port))
            .field("session_flag", &self.session_flag)
            .finish_non_exhaustive()
    }
}

impl MosquittoHarness {
    /// Starts a broker; `connect` builds each transport under test.
    ///
    /// # Errors
    /// When mosquitto cannot be started (see [`LocalBroker::start`]) or the proxy cannot
    /// listen.
    pub fn start(
        connect: impl FnMut(&Endpoint, &str) -> Result<Box<dyn MqttTransport>, HarnessError>
        + Send
        + 'static,
    ) -> io::Result<Self> {
        Self::with_proxy(LocalBroker::start_refusing()?, Box::new(connect), false)
    }

    /// Starts a broker with a mutual-TLS listener too ([`LocalBroker::start_with_tls`]), for
    /// checking a transport over TLS: `connect` connects to the TLS [`Endpoint`] with the
    /// device certificate of `certificates`.
    ///
    /// # Errors
    /// When mosquitto cannot be started.
    pub fn start_with_tls(
        certificates: &TestCertificates,
        connect: impl FnMut(&Endpoint, &str) -> Result<Box<dyn MqttTransport>, HarnessError>
        + Send
        + 'static,
    ) -> io::Result<Self> {
        Ok(Self {
            broker: LocalBroker::start_with_tls(certificates)?,
            proxy: None,
            observations: Observations::new(),
            connect: Box::new(connect),
            session_flag: false,
            sessions: false,
        })
    }

    /// Starts a broker that keeps sessions across restarts ([`LocalBroker::start_persistent`]);
    /// `connect` must connect with a persistent session.
    ///
    /// # Errors
    /// When mosquitto cannot be started or the proxy cannot listen.
    pub fn start_persistent(
        connect: impl FnMut(&Endpoint, &str) -> Result<Box<dyn MqttTransport>, HarnessError>
        + Send
        + 'static,
    ) -> io::Result<Self> {
        Self::with_proxy(LocalBroker::start_persistent()?, Box::new(connect), true)
    }

    fn with_proxy(broker: LocalBroker, connect: Connect, sessions: bool) -> io::Result<Self> {
        let observations = Observations::new();
        let proxy = Proxy::start(broker.port(), observations.clone())?;
        Ok(Self {
            broker,
            proxy: Some(proxy),
            observations,
            connect,
            session_flag: false,
            sessions,
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

    /// Where transports under test connect: the proxy, or the TLS listener.
    pub fn endpoint(&self) -> Endpoint {
        match (&self.proxy, self.broker.tls_port()) {
            (Some(proxy), _) => Endpoint {
                host: "127.0.0.1".into(),
                port: proxy.port(),
                tls: false,
            },
            (None, Some(port)) => Endpoint {
                host: "localhost".into(),
                port,
                tls: true,
            },
            (None, None) => Endpoint {
                host: "127.0.0.1".into(),
                port: self.broker.port(),
                tls: false,
            },
        }
    }
}

impl Harness for MosquittoHarness {
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        let endpoint = self.endpoint();
        let connected = (self.connect)(&endpoint, client_id);
        // A broker that died explains a failed connect better than the transport can.
        if connected.is_err() {
            self.broker.check_running()?;
        }
        connected
    }

    fn peer(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        Ok(Box::new(Peer::connect(
            ("127.0.0.1", self.broker.port()),
            client_id,
            PEER_KEEP_ALIVE,
        )?))
    }

    fn supports(&self, capability: Capability) -> bool {
        let proxied = self.proxy.is_some();
        match capability {
            Capability::DropConnection | Capability::Freeze | Capability::InflightWindow => true,
            Capability::ResumeSession => self.sessions,
            Capability::SessionFlag => self.session_flag,
            Capability::RefuseFilter => self.broker.refused_filter().is_some(),
            Capability::Observe | Capability::HoldAcks | Capability::KeepAlive => proxied,
        }
    }

    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        match &self.proxy {
            Some(proxy) => proxy.set_down(true),
            None if self.sessions => self.broker.stop()?,
            None => self.broker.kill(),
        }
        Ok(())
    }

    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        match (self.sessions, session_present) {
            (false, true) => {
                return Err("mosquitto without persistence cannot resume sessions".into());
            }
            (true, false) => {
                // The running broker still has the sessions: restart it without them.
                self.broker.kill();
                self.broker.forget_sessions()?;
                self.broker.restart()?;
            }
            _ if self.proxy.is_none() => self.broker.restart()?,
            _ => {}
        }
        if let Some(proxy) = &self.proxy {
            proxy.set_down(false);
        }
        Ok(self.broker.check_running()?)
    }

    fn freeze(&mut self) -> Result<(), HarnessError> {
        Ok(self.broker.pause()?)
    }

    fn thaw(&mut self) -> Result<(), HarnessError> {
        Ok(self.broker.resume()?)
    }

    fn refused_filter(&self) -> Option<String> {
        self.broker.refused_filter().map(str::to_owned)
    }

    fn observations(&self) -> Option<Observations> {
        self.proxy.as_ref().map(|_| self.observations.clone())
    }

    fn hold_acks(&mut self, topic: &str) -> Result<(), HarnessError> {
        let proxy = self.proxy.as_ref().ok_or("no proxy over TLS")?;
        proxy.hold_acks(topic);
        Ok(())
    }

    fn release_acks(&mut self) -> Result<(), HarnessError> {
        let proxy = self.proxy.as_ref().ok_or("no proxy over TLS")?;
        proxy.release_acks();
        Ok(())
    }
}

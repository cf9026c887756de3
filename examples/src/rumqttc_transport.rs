//! A second [`MqttTransport`], in pure Rust over [rumqttc]: the worked example of a port
//! (`PORTING.md` walks through it rule by rule).
//!
//! rumqttc's blocking [`Client`] puts requests on a queue; its [`Connection`] iterator does the
//! I/O and yields what happened. This port runs the iterator on a thread of its own (the
//! **delivery thread**: it calls the sink) and turns rumqttc's "queued" into the contract's
//! "acknowledged": each call leaves a waiter, the delivery thread gives it its packet id when
//! rumqttc reports the packet sent, and completes it on the PUBACK / SUBACK / UNSUBACK.
//!
//! TLS is rustls with the **ring** crypto provider: rustls's default, aws-lc-rs, needs CMake
//! (and more) to build; ring needs only a C compiler, which this workspace's build already
//! requires. A pure-Rust provider exists (rustls-rustcrypto) but is not audited.
//!
//! [rumqttc]: https://docs.rs/rumqttc

use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use parking_lot::Mutex;
use rumqttc::{
    Client, ClientError, Connection, ConnectionError, Event, MqttOptions, Outgoing, Packet,
    SubscribeFilter, SubscribeReasonCode, TlsConfiguration, Transport,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// How to connect a [`RumqttcTransport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Broker host name (also the TLS server name) or IP address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client ID; unique per connection.
    pub client_id: String,
    /// TLS configuration (see [`tls_config`]); `None` for plain TCP.
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Keep-alive interval. Defaults to 30 s.
    pub keep_alive: Duration,
    /// Bound on the first connect. Defaults to 10 s.
    pub connect_timeout: Duration,
    /// Reconnect backoff, first and longest wait. Defaults to 100 ms and 5 s.
    pub reconnect_backoff: (Duration, Duration),
    /// Start a fresh session on every connect (MQTT 3.1.1 clean session). Defaults to `true`:
    /// the client re-subscribes after each reconnect anyway.
    pub clean_session: bool,
}

impl Settings {
    /// Plain TCP to `host:port` as `client_id`, with the defaults above.
    pub fn new(host: &str, port: u16, client_id: &str) -> Self {
        Self {
            host: host.to_owned(),
            port,
            client_id: client_id.to_owned(),
            tls: None,
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            clean_session: true,
        }
    }

    /// Uses TLS with `config`.
    #[must_use]
    pub fn tls(mut self, config: Arc<rustls::ClientConfig>) -> Self {
        self.tls = Some(config);
        self
    }

    /// Sets the reconnect backoff (first and longest wait).
    #[must_use]
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_backoff = (min, max);
        self
    }
}

/// Why [`RumqttcTransport::connect`] or [`tls_config`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// A certificate or key file could not be read or used.
    Tls(Box<dyn std::error::Error + Send + Sync>),
    /// The first connect failed (TCP, TLS handshake, or CONNACK refusal); the source is
    /// rumqttc's error.
    Connection(Box<dyn std::error::Error + Send + Sync>),
    /// No CONNACK within [`Settings::connect_timeout`].
    Timeout,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tls(_) => "invalid TLS configuration",
            Self::Connection(_) => "connecting failed",
            Self::Timeout => "no CONNACK in time",
        })
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Tls(e) => Some(e.as_ref()),
            Self::Connection(e) => Some(e.as_ref()),
            Self::Timeout => None,
        }
    }
}

/// A rustls client configuration (ring provider) trusting the PEM certificates in `ca_file`,
/// presenting `client` (certificate chain and key PEM files) if given, offering `alpn` (AWS
/// IoT on port 443: `x-amzn-mqtt-ca`).
///
/// # Errors
/// [`ConnectError::Tls`] when a file cannot be read or parsed, or rustls refuses it.
pub fn tls_config(
    ca_file: &Path,
    client: Option<(&Path, &Path)>,
    alpn: &[&str],
) -> Result<Arc<rustls::ClientConfig>, ConnectError> {
    let tls = |e: &dyn fmt::Display, what: &Path| {
        ConnectError::Tls(format!("{}: {e}", what.display()).into())
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca_file).map_err(|e| tls(&e, ca_file))? {
        roots
            .add(cert.map_err(|e| tls(&e, ca_file))?)
            .map_err(|e| tls(&e, ca_file))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ConnectError::Tls(e.into()))?
        .with_root_certificates(roots);
    let mut config = match client {
        None => builder.with_no_client_auth(),
        Some((cert_file, key_file)) => {
            let chain = CertificateDer::pem_file_iter(cert_file)
                .map_err(|e| tls(&e, cert_file))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| tls(&e, cert_file))?;
            let key = PrivateKeyDer::from_pem_file(key_file).map_err(|e| tls(&e, key_file))?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| ConnectError::Tls(e.into()))?
        }
    };
    config.alpn_protocols = alpn.iter().map(|p| p.as_bytes().to_vec()).collect();
    Ok(Arc::new(config))
}

/// What a waiting call receives from the delivery thread.
type Reply = Result<Vec<SubscribeOutcome>, TransportError>;

/// The three request kinds; each has its own queue, since rumqttc reports each kind's
/// packets in the order they were queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Publish,
    Subscribe,
    Unsubscribe,
}

/// State shared by the callers and the delivery thread. Never locked while the sink runs.
#[derive(Default)]
struct State {
    connected: bool,
    closed: bool,
    sink: Option<Arc<dyn MessageSink>>,
    /// Queued in rumqttc, not yet sent: waiters in queue order, per kind.
    queued: HashMap<Kind, VecDeque<Sender<Reply>>>,
    /// Sent, waiting for the acknowledgement: by packet id, per kind.
    sent: HashMap<(Kind, u16), Sender<Reply>>,
}

impl State {
    /// Fails every waiting call (the link dropped: outcome unknown).
    fn fail_all(&mut self) {
        for (_, waiter) in self.sent.drain() {
            let _ = waiter.try_send(Err(TransportError::ConnectionLost));
        }
        for waiter in self.queued.drain().flat_map(|(_, q)| q) {
            let _ = waiter.try_send(Err(TransportError::ConnectionLost));
        }
    }
}

/// [`MqttTransport`] over rumqttc, TCP or TLS, MQTT 3.1.1, clean or persistent session.
///
/// Reconnects by itself with backoff and reports each reconnect with the CONNACK's
/// `session_present`. Messages arriving before [`set_sink`](MqttTransport::set_sink) are
/// dropped (with a clean session nothing is subscribed before the client installs its sink).
/// Dropping it disconnects and joins the delivery thread; while a connect is under way that
/// takes at most [`Settings::connect_timeout`].
pub struct RumqttcTransport {
    client: Client,
    state: Arc<Mutex<State>>,
    stop: Sender<()>,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for RumqttcTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RumqttcTransport")
            .field("connected", &self.state.lock().connected)
            .finish_non_exhaustive()
    }
}

impl RumqttcTransport {
    /// Connects and returns once the broker accepted the connection (CONNACK).
    ///
    /// # Errors
    /// [`ConnectError`] when the first connect fails or times out.
    pub fn connect(settings: Settings) -> Result<Self, ConnectError> {
        let mut options = MqttOptions::new(&settings.client_id, &settings.host, settings.port);
        options
            .set_keep_alive(settings.keep_alive)
            .set_clean_session(settings.clean_session)
            // Job documents can be large; rumqttc's default is 10 KiB.
            .set_max_packet_size(256 * 1024, 256 * 1024);
        if let Some(config) = &settings.tls {
            options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                Arc::clone(config),
            )));
        }
        let (client, mut connection) = Client::new(options, 256);
        let mut network = connection.eventloop.network_options();
        network.set_connection_timeout(settings.connect_timeout.as_secs().max(1));
        // Off by default in rumqttc: each request/reply would then wait ~40 ms for a delayed ACK.
        network.set_tcp_nodelay(true);
        connection.eventloop.set_network_options(network);

        let state = Arc::new(Mutex::new(State::default()));
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let (first_tx, first_rx) = crossbeam_channel::bounded(1);
        let worker = {
            let state = Arc::clone(&state);
            let backoff = settings.reconnect_backoff;
            thread::Builder::new()
                .name("rumqttc-transport".into())
                .spawn(move || run(connection, &state, &stopped, &first_tx, backoff))
                .map_err(|e| ConnectError::Connection(e.into()))?
        };
        let transport = Self {
            client,
            state,
            stop,
            worker: Some(worker),
        };
        match first_rx.recv_timeout(settings.connect_timeout + Duration::from_secs(1)) {
            Ok(Ok(())) => Ok(transport),
            Ok(Err(error)) => Err(ConnectError::Connection(error.into())),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Queues a request (under the state lock, so the waiter queue and rumqttc's queue keep
    /// one order) and waits for its acknowledgement until `deadline`.
    fn request(
        &self,
        kind: Kind,
        count: usize,
        deadline: Instant,
        send: impl FnOnce(&Client) -> Result<(), ClientError>,
    ) -> Result<Vec<Reply>, TransportError> {
        // Rule expired_deadline_sends_nothing: nothing is sent once the deadline has passed.
        if Instant::now() >= deadline {
            return Err(TransportError::Timeout);
        }
        let mut waiters = Vec::with_capacity(count);
        {
            let mut state = self.state.lock();
            // Rule offline_fails_fast: never queue for a later connection.
            if !state.connected || state.closed {
                return Err(TransportError::NotConnected);
            }
            send(&self.client).map_err(TransportError::backend)?;
            let queue = state.queued.entry(kind).or_default();
            for _ in 0..count {
                let (tx, rx) = crossbeam_channel::bounded(1);
                queue.push_back(tx);
                waiters.push(rx);
            }
        }
        // Rules *_acknowledged and deadline_honoured: wait for the acknowledgement, no longer
        // than the caller allows.
        waiters
            .iter()
            .map(
                |waiter: &Receiver<Reply>| match waiter.recv_deadline(deadline) {
                    Ok(reply) => Ok(reply),
                    Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                        Err(TransportError::Timeout)
                    }
                    Err(_) => Err(TransportError::ConnectionLost),
                },
            )
            .collect()
    }
}

impl MqttTransport for RumqttcTransport {
    // Rule one_sink: a second one is refused and the first stays.
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut state = self.state.lock();
        if state.sink.is_some() {
            return Err(TransportError::SinkInstalled);
        }
        state.sink = Some(sink);
        Ok(())
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let request = filters
            .iter()
            .map(|f| SubscribeFilter::new((*f).to_owned(), qos_of(qos)));
        let mut replies = self.request(Kind::Subscribe, 1, deadline, |c| {
            c.try_subscribe_many(request)
        })?;
        replies.pop().unwrap_or(Err(TransportError::ConnectionLost))
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        // rumqttc sends one UNSUBSCRIBE per filter; all are queued at once, then awaited.
        let replies = self.request(Kind::Unsubscribe, filters.len(), deadline, |c| {
            filters
                .iter()
                .try_for_each(|f| c.try_unsubscribe((*f).to_owned()))
        })?;
        replies.into_iter().try_for_each(|r| r.map(drop))
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        let mut replies = self.request(Kind::Publish, 1, deadline, |c| {
            c.try_publish(topic, qos_of(qos), false, payload)
        })?;
        replies
            .pop()
            .unwrap_or(Err(TransportError::ConnectionLost))
            .map(drop)
    }
}

// Rule drop_ends_delivery: stop the thread, then drop the sink.
impl Drop for RumqttcTransport {
    fn drop(&mut self) {
        self.state.lock().closed = true;
        let _ = self.client.try_disconnect();
        let _ = self.stop.try_send(());
        // The last handle may be dropped by the sink, on the delivery thread itself: that
        // thread sees `closed` and ends by itself; joining it from itself would deadlock.
        if let Some(worker) = self.worker.take()
            && worker.thread().id() != thread::current().id()
        {
            let _ = worker.join();
        }
        let sink = self.state.lock().sink.take();
        drop(sink);
    }
}

/// The delivery thread: drives rumqttc's connection and completes the waiting calls.
fn run(
    mut connection: Connection,
    state: &Mutex<State>,
    stopped: &Receiver<()>,
    first: &Sender<Result<(), ConnectionError>>,
    (min, max): (Duration, Duration),
) {
    let mut backoff = min;
    let mut first_connect = true;
    // `recv` blocks in rumqttc's I/O; the DISCONNECT queued by `Drop` wakes it.
    while let Ok(event) = connection.recv() {
        if state.lock().closed {
            break;
        }
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                backoff = min;
                state.lock().connected = true;
                if first_connect {
                    // The first connect is `connect`'s; the sink (if any) hears reconnects only.
                    first_connect = false;
                    let _ = first.send(Ok(()));
                } else {
                    // Rules reconnect_*: report the CONNACK's session flag as it came.
                    notify(state, |sink| {
                        sink.connection(ConnectionEvent::Connected {
                            session_present: Some(ack.session_present),
                        });
                    });
                }
            }
            Ok(Event::Incoming(Packet::Publish(message))) => {
                // Rules messages_in_order and woken_caller_can_publish: the sink
                // runs here, in arrival order, with the state unlocked.
                notify(state, |sink| sink.message(&message.topic, &message.payload));
            }
            Ok(Event::Incoming(Packet::PubAck(ack))) => {
                complete(state, Kind::Publish, ack.pkid, Ok(Vec::new()));
            }
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                let outcomes = ack.return_codes.iter().map(outcome_of).collect();
                complete(state, Kind::Subscribe, ack.pkid, Ok(outcomes));
            }
            Ok(Event::Incoming(Packet::UnsubAck(ack))) => {
                complete(state, Kind::Unsubscribe, ack.pkid, Ok(Vec::new()));
            }
            Ok(Event::Outgoing(Outgoing::Publish(pkid))) => sent(state, Kind::Publish, pkid),
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => sent(state, Kind::Subscribe, pkid),
            Ok(Event::Outgoing(Outgoing::Unsubscribe(pkid))) => {
                sent(state, Kind::Unsubscribe, pkid);
            }
            Ok(_) => {}
            Err(error) => {
                if first_connect {
                    let _ = first.send(Err(error));
                    break;
                }
                let was_connected = {
                    let mut state = state.lock();
                    let was = std::mem::replace(&mut state.connected, false);
                    state.fail_all();
                    // Requests still in rumqttc's queue belong to failed calls: drop them, so
                    // they are never sent after a reconnect (nor matched to newer calls).
                    connection.eventloop.clean();
                    connection.eventloop.pending.clear();
                    was
                };
                // Rule connection_lost_reported.
                if was_connected {
                    log::info!("connection lost: {error}");
                    notify(state, |sink| {
                        sink.connection(ConnectionEvent::ConnectionLost)
                    });
                }
                // Backoff; `Drop` interrupts it.
                if stopped.recv_timeout(backoff).is_ok() {
                    break;
                }
                backoff = (backoff * 2).min(max);
            }
        }
    }
    let mut state = state.lock();
    state.connected = false;
    state.fail_all();
}

/// Calls the sink, if installed, without holding the state lock; a panic is logged.
fn notify(state: &Mutex<State>, call: impl FnOnce(&dyn MessageSink)) {
    let sink = state.lock().sink.clone();
    if let Some(sink) = sink
        && catch_unwind(AssertUnwindSafe(|| call(sink.as_ref()))).is_err()
    {
        log::error!("the message sink panicked");
    }
}

/// rumqttc sent the oldest queued request of `kind` with packet id `pkid` (0 for QoS 0: done).
fn sent(state: &Mutex<State>, kind: Kind, pkid: u16) {
    let mut state = state.lock();
    let Some(waiter) = state.queued.get_mut(&kind).and_then(VecDeque::pop_front) else {
        return;
    };
    if pkid == 0 {
        let _ = waiter.try_send(Ok(Vec::new()));
    } else {
        state.sent.insert((kind, pkid), waiter);
    }
}

fn complete(state: &Mutex<State>, kind: Kind, pkid: u16, reply: Reply) {
    if let Some(waiter) = state.lock().sent.remove(&(kind, pkid)) {
        let _ = waiter.try_send(reply);
    }
}

fn qos_of(qos: QoS) -> rumqttc::QoS {
    match qos {
        QoS::AtMostOnce => rumqttc::QoS::AtMostOnce,
        QoS::AtLeastOnce => rumqttc::QoS::AtLeastOnce,
    }
}

fn outcome_of(code: &SubscribeReasonCode) -> SubscribeOutcome {
    match code {
        SubscribeReasonCode::Success(rumqttc::QoS::AtMostOnce) => {
            SubscribeOutcome::Granted(QoS::AtMostOnce)
        }
        SubscribeReasonCode::Success(_) => SubscribeOutcome::Granted(QoS::AtLeastOnce),
        SubscribeReasonCode::Failure => SubscribeOutcome::Refused,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A waiter queued for `kind`, as `request` queues it.
    fn queue(state: &Mutex<State>, kind: Kind) -> Receiver<Reply> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        state.lock().queued.entry(kind).or_default().push_back(tx);
        rx
    }

    #[test]
    fn acknowledgements_reach_the_calls_in_the_order_their_packets_were_sent() {
        let state = Mutex::new(State::default());
        let (first, second) = (queue(&state, Kind::Publish), queue(&state, Kind::Publish));
        sent(&state, Kind::Publish, 7);
        sent(&state, Kind::Publish, 8);
        complete(&state, Kind::Publish, 8, Ok(Vec::new()));
        assert!(
            first.try_recv().is_err(),
            "the first call waits for PUBACK 7"
        );
        assert!(second.try_recv().is_ok_and(|r| r.is_ok()));
        complete(&state, Kind::Publish, 7, Ok(Vec::new()));
        assert!(first.try_recv().is_ok_and(|r| r.is_ok()));
    }

    #[test]
    fn a_qos_0_publish_completes_when_sent() {
        let state = Mutex::new(State::default());
        let waiter = queue(&state, Kind::Publish);
        sent(&state, Kind::Publish, 0);
        assert!(waiter.try_recv().is_ok_and(|r| r.is_ok()));
    }

    #[test]
    fn kinds_do_not_share_packet_ids_or_queues() {
        let state = Mutex::new(State::default());
        let subscribe = queue(&state, Kind::Subscribe);
        let publish = queue(&state, Kind::Publish);
        sent(&state, Kind::Subscribe, 1);
        sent(&state, Kind::Publish, 1);
        complete(
            &state,
            Kind::Subscribe,
            1,
            Ok(vec![SubscribeOutcome::Refused]),
        );
        assert!(matches!(
            subscribe.try_recv(),
            Ok(Ok(outcomes)) if outcomes == [SubscribeOutcome::Refused]
        ));
        assert!(publish.try_recv().is_err());
    }

    #[test]
    fn a_lost_connection_fails_every_waiting_call_with_connection_lost() {
        let state = Mutex::new(State::default());
        let (queued, in_flight) = (queue(&state, Kind::Publish), queue(&state, Kind::Subscribe));
        sent(&state, Kind::Subscribe, 3);
        state.lock().fail_all();
        assert!(matches!(
            queued.try_recv(),
            Ok(Err(TransportError::ConnectionLost))
        ));
        assert!(matches!(
            in_flight.try_recv(),
            Ok(Err(TransportError::ConnectionLost))
        ));
    }

    #[test]
    fn suback_codes_map_to_outcomes() {
        assert_eq!(
            outcome_of(&SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce)),
            SubscribeOutcome::Granted(QoS::AtLeastOnce)
        );
        assert_eq!(
            outcome_of(&SubscribeReasonCode::Success(rumqttc::QoS::AtMostOnce)),
            SubscribeOutcome::Granted(QoS::AtMostOnce)
        );
        assert_eq!(
            outcome_of(&SubscribeReasonCode::Failure),
            SubscribeOutcome::Refused
        );
    }
}

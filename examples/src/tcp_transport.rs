//! A third [`MqttTransport`], written the way `PORTING.md` describes: a packet-encoding crate
//! ([mqttbytes], MQTT 3.1.1 packets in and out of byte buffers) on a plain blocking
//! [`std::net::TcpStream`], with one thread per connection. It is the starting point most
//! porters have (a socket and a packet codec), so it does by hand what rumqttc does for the
//! other port: connecting and reconnecting, keep-alive, packet IDs, acknowledgements both ways.
//! Plain TCP only (TLS would wrap the stream; see the rumqttc port for rustls).
//!
//! - **Calls** (`publish`, `subscribe`, `unsubscribe`) run on the caller's thread: check the
//!   deadline, take a free packet ID and register a waiter, write the packet (under the
//!   writer lock, with the socket's write timeout set to what is left of the deadline), then
//!   wait for the waiter until the deadline.
//! - **The connection thread** connects (CONNECT, CONNACK), then reads packets into a buffer
//!   and decodes whole ones: PUBLISH goes to the sink (no lock held) and is acknowledged,
//!   PUBACK / SUBACK / UNSUBACK complete the waiter with that packet ID. Its reads time out
//!   every half keep-alive, to send PINGREQ when nothing was sent for a keep-alive period and
//!   to give up on a broker silent for 1.5 periods. When the link drops it fails every waiter,
//!   tells the sink, and reconnects with backoff.
//!
//! [mqttbytes]: https://docs.rs/mqttbytes

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::{Receiver, Sender};
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use mqttbytes::v4::{
    self, Connect, Packet, PingReq, PubAck, Publish, Subscribe, SubscribeFilter,
    SubscribeReasonCode, Unsubscribe,
};
use parking_lot::Mutex;

/// The largest packet accepted: AWS IoT Core's 128 KiB payload limit plus headers, with room.
const MAX_PACKET: usize = 256 * 1024;

/// How to connect a [`TcpTransport`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// Broker host name or IP address.
    pub host: String,
    /// Broker port.
    pub port: u16,
    /// MQTT client ID; unique per connection.
    pub client_id: String,
    /// Keep-alive interval, whole seconds (at least 1 s). Defaults to 30 s.
    pub keep_alive: Duration,
    /// Bound on each connect (TCP and CONNACK). Defaults to 10 s.
    pub connect_timeout: Duration,
    /// Reconnect backoff, first and longest wait. Defaults to 100 ms and 5 s.
    pub reconnect_backoff: (Duration, Duration),
    /// Start a fresh session on every connect (MQTT 3.1.1 clean session). Defaults to `true`.
    pub clean_session: bool,
}

impl Settings {
    /// `host:port` as `client_id`, with the defaults above.
    pub fn new(host: &str, port: u16, client_id: &str) -> Self {
        Self {
            host: host.to_owned(),
            port,
            client_id: client_id.to_owned(),
            keep_alive: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            reconnect_backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            clean_session: true,
        }
    }
}

/// Why [`TcpTransport::connect`] failed, or why a connection ended.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// TCP failed (connect, read or write), or timed out.
    Io(io::Error),
    /// The broker refused the connection (the CONNACK's return code).
    Refused(u8),
    /// The bytes from the broker are not MQTT 3.1.1.
    Protocol(PacketError),
    /// No CONNACK within [`Settings::connect_timeout`].
    Timeout,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(_) => f.write_str("connection failed"),
            Self::Refused(code) => write!(f, "the broker refused the connection (code {code})"),
            Self::Protocol(_) => f.write_str("the broker broke the protocol"),
            Self::Timeout => f.write_str("no CONNACK in time"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            Self::Protocol(e) => Some(e),
            Self::Refused(_) | Self::Timeout => None,
        }
    }
}

impl From<io::Error> for ConnectError {
    fn from(error: io::Error) -> Self {
        Self::Io(error)
    }
}

/// A packet that could not be encoded or decoded (mqttbytes' error, which implements no
/// `std::error::Error` of its own).
#[derive(Debug)]
pub struct PacketError(mqttbytes::Error);

impl fmt::Display for PacketError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MQTT packet: {}", self.0)
    }
}

impl std::error::Error for PacketError {}

/// What a request waits for: the SUBACK's outcomes, or nothing (PUBACK, UNSUBACK).
type Ack = Vec<SubscribeOutcome>;

/// The acknowledgement each request kind expects: an ACK of another kind for the same packet
/// ID is a broker bug, not this call's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Publish,
    Subscribe,
    Unsubscribe,
}

/// Shared by the callers and the connection thread. Never locked while the sink runs or
/// while writing.
#[derive(Default)]
struct State {
    sink: Option<Arc<dyn MessageSink>>,
    connected: bool,
    closed: bool,
    last_id: u16,
    /// Packet IDs in use on this connection: a waiting call, or `None` once the call gave
    /// up (its ID stays taken until its late acknowledgement, or the connection, ends, so
    /// that the late ack cannot complete a newer call that reused the ID).
    in_use: HashMap<u16, (Kind, Option<Sender<Ack>>)>,
}

impl State {
    /// A packet ID that is not 0 and not in use, round-robin.
    fn take_id(&mut self, kind: Kind, waiter: Sender<Ack>) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            if !self.in_use.contains_key(&self.last_id) {
                self.in_use.insert(self.last_id, (kind, Some(waiter)));
                return Some(self.last_id);
            }
        }
        None
    }

    /// The link dropped: every call fails (its waiter is dropped: `ConnectionLost`) and every
    /// ID is free again.
    fn lose_connection(&mut self) -> bool {
        self.in_use.clear();
        std::mem::replace(&mut self.connected, false)
    }
}

struct Shared {
    state: Mutex<State>,
    /// The current connection's stream, for writing; `None` while disconnected.
    writer: Mutex<Option<TcpStream>>,
    /// When a packet was last written, for keep-alive.
    last_write: Mutex<Instant>,
}

impl Shared {
    /// Writes one packet by `deadline`. A write that fails or times out part-way leaves a
    /// partial packet on the wire and the stream unusable: shut it down (the connection
    /// thread then sees the link drop).
    fn write(&self, bytes: &[u8], deadline: Instant) -> Result<(), TransportError> {
        let writer = self.writer.lock();
        let Some(stream) = writer.as_ref() else {
            return Err(TransportError::NotConnected);
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
        let written = stream
            .set_write_timeout(Some(left))
            .and_then(|()| (&*stream).write_all(bytes));
        match written {
            Ok(()) => {
                *self.last_write.lock() = Instant::now();
                Ok(())
            }
            Err(error) => {
                log::debug!("write failed, closing the connection: {error}");
                let _ = stream.shutdown(Shutdown::Both);
                Err(TransportError::ConnectionLost)
            }
        }
    }

    fn sink(&self) -> Option<Arc<dyn MessageSink>> {
        self.state.lock().sink.clone()
    }
}

/// [`MqttTransport`] over a `TcpStream` and mqttbytes. See the [module docs](self).
///
/// Reconnects by itself with backoff and reports each reconnect with the CONNACK's
/// `session_present`. Messages arriving before [`set_sink`](MqttTransport::set_sink) are
/// dropped. Dropping it disconnects and joins the connection thread (at most
/// [`Settings::connect_timeout`] while a connect is under way).
pub struct TcpTransport {
    shared: Arc<Shared>,
    stop: Sender<()>,
    worker: Option<JoinHandle<()>>,
}

impl fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TcpTransport")
            .field("connected", &self.shared.state.lock().connected)
            .finish_non_exhaustive()
    }
}

impl TcpTransport {
    /// Connects and returns once the broker accepted the connection (CONNACK).
    ///
    /// # Errors
    /// [`ConnectError`] when the first connect fails or times out.
    pub fn connect(settings: Settings) -> Result<Self, ConnectError> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            writer: Mutex::new(None),
            last_write: Mutex::new(Instant::now()),
        });
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let (first_tx, first_rx) = crossbeam_channel::bounded(1);
        let worker = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("tcp-transport".into())
                .spawn(move || run(&settings, &shared, &stopped, &first_tx))?
        };
        let transport = Self {
            shared,
            stop,
            worker: Some(worker),
        };
        match first_rx.recv() {
            Ok(Ok(())) => Ok(transport),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(ConnectError::Timeout),
        }
    }

    /// Sends a request and waits for its acknowledgement until `deadline`.
    fn request(
        &self,
        kind: Kind,
        deadline: Instant,
        packet: impl FnOnce(u16, &mut BytesMut) -> Result<usize, mqttbytes::Error>,
    ) -> Result<Ack, TransportError> {
        // Rule expired_deadline_sends_nothing.
        if Instant::now() >= deadline {
            return Err(TransportError::Timeout);
        }
        let (tx, waiter) = crossbeam_channel::bounded(1);
        let id = {
            let mut state = self.shared.state.lock();
            // Rule offline_fails_fast: never queue for a later connection.
            if !state.connected || state.closed {
                return Err(TransportError::NotConnected);
            }
            state
                .take_id(kind, tx)
                .ok_or_else(|| TransportError::backend("every packet ID is in use"))?
        };
        let mut bytes = BytesMut::new();
        if let Err(error) = packet(id, &mut bytes) {
            self.give_up(id);
            return Err(TransportError::backend(PacketError(error)));
        }
        if let Err(error) = self.shared.write(&bytes, deadline) {
            self.give_up(id);
            return Err(error);
        }
        // Rules *_acknowledged, deadline_honoured, link_drop_fails_calls_in_flight.
        match waiter.recv_deadline(deadline) {
            Ok(ack) => Ok(ack),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                self.give_up(id);
                Err(TransportError::Timeout)
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(TransportError::ConnectionLost)
            }
        }
    }

    /// The call stopped waiting: its ID stays taken until the late ack or the link ends.
    fn give_up(&self, id: u16) {
        if let Some((_, waiter)) = self.shared.state.lock().in_use.get_mut(&id) {
            *waiter = None;
        }
    }
}

fn qos_of(qos: QoS) -> mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
    }
}

impl MqttTransport for TcpTransport {
    // Rule one_sink.
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut state = self.shared.state.lock();
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
        // Rules subscribe_outcome_per_filter and qos_as_asked: every filter, at the QoS asked.
        let outcomes = self.request(Kind::Subscribe, deadline, |id, bytes| {
            let mut subscribe = Subscribe::new_many(
                filters
                    .iter()
                    .map(|f| SubscribeFilter::new((*f).to_owned(), qos_of(qos))),
            );
            subscribe.pkid = id;
            subscribe.write(bytes)
        })?;
        if outcomes.len() != filters.len() {
            return Err(TransportError::backend(format!(
                "SUBACK with {} return codes for {} filters",
                outcomes.len(),
                filters.len()
            )));
        }
        Ok(outcomes)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        self.request(Kind::Unsubscribe, deadline, |id, bytes| {
            let mut unsubscribe = Unsubscribe::new(String::new());
            unsubscribe.topics = filters.iter().map(|f| (*f).to_owned()).collect();
            unsubscribe.pkid = id;
            unsubscribe.write(bytes)
        })
        .map(drop)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        let encode = |id: u16, bytes: &mut BytesMut| {
            // Rule no_retain: `Publish::new` leaves RETAIN off.
            let mut publish = Publish::new(topic, qos_of(qos), payload);
            if qos == QoS::AtLeastOnce {
                publish.pkid = id;
            }
            publish.write(bytes)
        };
        match qos {
            QoS::AtLeastOnce => self.request(Kind::Publish, deadline, encode).map(drop),
            QoS::AtMostOnce => {
                // No acknowledgement, so no packet ID: done once written.
                if Instant::now() >= deadline {
                    return Err(TransportError::Timeout);
                }
                if !self.shared.state.lock().connected {
                    return Err(TransportError::NotConnected);
                }
                let mut bytes = BytesMut::new();
                encode(0, &mut bytes).map_err(|e| TransportError::backend(PacketError(e)))?;
                self.shared.write(&bytes, deadline)
            }
        }
    }
}

// Rule drop_ends_delivery.
impl Drop for TcpTransport {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
        let _ = self.stop.try_send(());
        if let Some(stream) = self.shared.writer.lock().as_ref() {
            let _ = (&*stream).write_all(&[0xe0, 0x00]); // DISCONNECT
            let _ = stream.shutdown(Shutdown::Both); // wakes the connection thread's read
        }
        // The last handle may be dropped by the sink, on the connection thread itself.
        if let Some(worker) = self.worker.take()
            && worker.thread().id() != thread::current().id()
        {
            let _ = worker.join();
        }
        let sink = self.shared.state.lock().sink.take();
        drop(sink);
    }
}

/// The connection thread: connects, reads until the link drops, reconnects.
fn run(
    settings: &Settings,
    shared: &Shared,
    stopped: &Receiver<()>,
    first: &Sender<Result<(), ConnectError>>,
) {
    let (min, max) = settings.reconnect_backoff;
    let mut backoff = min;
    let mut first_connect = true;
    loop {
        if shared.state.lock().closed {
            return;
        }
        match open(settings) {
            Ok((stream, session_present, buffer)) => {
                backoff = min;
                let reader = match stream.try_clone() {
                    Ok(reader) => reader,
                    Err(error) => {
                        log::warn!("cannot clone the stream: {error}");
                        continue;
                    }
                };
                *shared.writer.lock() = Some(stream);
                *shared.last_write.lock() = Instant::now();
                shared.state.lock().connected = true;
                if std::mem::take(&mut first_connect) {
                    let _ = first.send(Ok(()));
                } else if let Some(sink) = shared.sink() {
                    // Rules reconnect_*: the CONNACK's session flag, as it came.
                    call_sink(|| {
                        sink.connection(ConnectionEvent::Connected {
                            session_present: Some(session_present),
                        });
                    });
                }
                let ended = read_packets(settings, shared, reader, buffer);
                log::info!("connection lost: {ended}");
                if let Some(stream) = shared.writer.lock().take() {
                    let _ = stream.shutdown(Shutdown::Both);
                }
                // Rules link_drop_fails_calls_in_flight and connection_lost_reported.
                let (was_connected, closed) = {
                    let mut state = shared.state.lock();
                    (state.lose_connection(), state.closed)
                };
                if closed {
                    return;
                }
                if let (true, Some(sink)) = (was_connected, shared.sink()) {
                    call_sink(|| sink.connection(ConnectionEvent::ConnectionLost));
                }
            }
            Err(error) if first_connect => {
                let _ = first.send(Err(error));
                return;
            }
            Err(error) => log::debug!("reconnect failed: {error}"),
        }
        // Backoff; `Drop` interrupts it.
        if stopped.recv_timeout(backoff).is_ok() {
            return;
        }
        backoff = (backoff * 2).min(max);
    }
}

/// Opens a connection: TCP, CONNECT, CONNACK. Returns the stream, the CONNACK's session flag
/// and whatever arrived after the CONNACK.
fn open(settings: &Settings) -> Result<(TcpStream, bool, BytesMut), ConnectError> {
    let address = (settings.host.as_str(), settings.port)
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "no address for the host"))?;
    let deadline = Instant::now() + settings.connect_timeout;
    let stream = TcpStream::connect_timeout(&address, settings.connect_timeout)?;
    // Without it every request/reply round trip waits ~40 ms for a delayed ACK.
    stream.set_nodelay(true)?;
    let mut connect = Connect::new(settings.client_id.as_str());
    connect.keep_alive = u16::try_from(settings.keep_alive.as_secs().max(1)).unwrap_or(u16::MAX);
    connect.clean_session = settings.clean_session;
    let mut bytes = BytesMut::new();
    connect
        .write(&mut bytes)
        .map_err(|e| ConnectError::Protocol(PacketError(e)))?;
    stream.set_write_timeout(Some(settings.connect_timeout))?;
    (&stream).write_all(&bytes)?;
    let mut buffer = BytesMut::new();
    loop {
        match v4::read(&mut buffer, MAX_PACKET) {
            Ok(Packet::ConnAck(ack)) if ack.code == v4::ConnectReturnCode::Success => {
                return Ok((stream, ack.session_present, buffer));
            }
            Ok(Packet::ConnAck(ack)) => return Err(ConnectError::Refused(ack.code as u8)),
            Ok(other) => {
                return Err(ConnectError::Protocol(PacketError(
                    mqttbytes::Error::NotConnect(other_type(&other)),
                )));
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ConnectError::Timeout);
                }
                stream.set_read_timeout(Some(left))?;
                if fill(&stream, &mut buffer)? == 0 {
                    return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
                }
            }
            Err(error) => return Err(ConnectError::Protocol(PacketError(error))),
        }
    }
}

fn other_type(packet: &Packet) -> mqttbytes::PacketType {
    match packet {
        Packet::Publish(_) => mqttbytes::PacketType::Publish,
        Packet::SubAck(_) => mqttbytes::PacketType::SubAck,
        _ => mqttbytes::PacketType::PingResp,
    }
}

/// Reads what the socket has into `buffer`; `Ok(0)` at the end of the stream.
fn fill(mut stream: &TcpStream, buffer: &mut BytesMut) -> io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk)?;
    buffer.extend_from_slice(chunk.get(..n).unwrap_or_default());
    Ok(n)
}

/// Reads and handles packets until the link drops; returns why it ended.
///
/// Bytes are read into a buffer and only whole packets are decoded, so a read that times out
/// (the keep-alive tick) never leaves a packet half read.
fn read_packets(
    settings: &Settings,
    shared: &Shared,
    stream: TcpStream,
    mut buffer: BytesMut,
) -> String {
    let keep_alive = settings.keep_alive.max(Duration::from_secs(1));
    if let Err(error) = stream.set_read_timeout(Some(keep_alive / 2)) {
        return error.to_string();
    }
    let mut last_read = Instant::now();
    loop {
        match v4::read(&mut buffer, MAX_PACKET) {
            Ok(packet) => {
                last_read = Instant::now();
                handle(shared, packet);
                continue;
            }
            Err(mqttbytes::Error::InsufficientBytes(_)) => {}
            Err(error) => return format!("protocol error: {error}"),
        }
        match fill(&stream, &mut buffer) {
            Ok(0) => return "closed by the broker".into(),
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                // Rule keep_alive_while_idle: PINGREQ when nothing was sent for a period;
                // a broker silent for 1.5 periods (no PINGRESP) is gone.
                if last_read.elapsed() > keep_alive * 3 / 2 {
                    return "the broker stopped answering (keep-alive)".into();
                }
                if shared.last_write.lock().elapsed() >= keep_alive {
                    let mut ping = BytesMut::new();
                    let _ = PingReq.write(&mut ping);
                    let _ = shared.write(&ping, Instant::now() + keep_alive);
                }
            }
            Err(error) => return error.to_string(),
        }
    }
}

/// Handles one packet from the broker.
fn handle(shared: &Shared, packet: Packet) {
    match packet {
        Packet::Publish(publish) => {
            // Rules messages_in_order, woken_caller_can_publish, sink_panic_contained: the
            // sink runs here, in arrival order, with no lock held, under catch_unwind.
            if let Some(sink) = shared.sink() {
                call_sink(|| sink.message(&publish.topic, &publish.payload));
            }
            // Rule inbound_acknowledged: every QoS 1 message, or the broker stops sending.
            if publish.qos == mqttbytes::QoS::AtLeastOnce {
                let mut ack = BytesMut::new();
                if PubAck::new(publish.pkid).write(&mut ack).is_ok() {
                    let _ = shared.write(&ack, Instant::now() + Duration::from_secs(10));
                }
            }
        }
        // Rule acks_matched_by_packet_id: complete the call with this ID, of this kind.
        Packet::PubAck(ack) => complete(shared, Kind::Publish, ack.pkid, Vec::new()),
        Packet::SubAck(ack) => {
            let outcomes = ack
                .return_codes
                .iter()
                .map(|code| match code {
                    SubscribeReasonCode::Success(mqttbytes::QoS::AtMostOnce) => {
                        SubscribeOutcome::Granted(QoS::AtMostOnce)
                    }
                    SubscribeReasonCode::Success(_) => SubscribeOutcome::Granted(QoS::AtLeastOnce),
                    // Rule refused_filter_reported.
                    SubscribeReasonCode::Failure => SubscribeOutcome::Refused,
                })
                .collect();
            complete(shared, Kind::Subscribe, ack.pkid, outcomes);
        }
        Packet::UnsubAck(ack) => complete(shared, Kind::Unsubscribe, ack.pkid, Vec::new()),
        _ => {}
    }
}

fn complete(shared: &Shared, kind: Kind, id: u16, ack: Ack) {
    let mut state = shared.state.lock();
    match state.in_use.get(&id) {
        Some((expected, _)) if *expected == kind => {
            if let Some((_, Some(waiter))) = state.in_use.remove(&id) {
                let _ = waiter.try_send(ack);
            }
        }
        _ => log::debug!("an acknowledgement for packet ID {id} that nothing waits for"),
    }
}

/// Calls the sink; a panic is caught and logged so that delivery goes on.
fn call_sink(call: impl FnOnce()) {
    if catch_unwind(AssertUnwindSafe(call)).is_err() {
        log::error!("the message sink panicked");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packet_ids_are_never_zero_and_never_in_use() {
        let mut state = State {
            last_id: u16::MAX - 1,
            ..State::default()
        };
        let waiter = || crossbeam_channel::bounded(1).0;
        assert_eq!(state.take_id(Kind::Publish, waiter()), Some(u16::MAX));
        assert_eq!(state.take_id(Kind::Publish, waiter()), Some(1));
        state.in_use.insert(2, (Kind::Publish, None));
        assert_eq!(state.take_id(Kind::Publish, waiter()), Some(3));
    }

    #[test]
    fn a_late_ack_for_a_call_that_gave_up_completes_no_other_call() {
        let shared = Shared {
            state: Mutex::new(State::default()),
            writer: Mutex::new(None),
            last_write: Mutex::new(Instant::now()),
        };
        let (tx, _gave_up) = crossbeam_channel::bounded(1);
        let old = shared.state.lock().take_id(Kind::Publish, tx);
        let old = old.unwrap();
        if let Some((_, waiter)) = shared.state.lock().in_use.get_mut(&old) {
            *waiter = None; // the call timed out
        }
        let (tx, newer) = crossbeam_channel::bounded(1);
        let new = shared.state.lock().take_id(Kind::Publish, tx).unwrap();
        assert_ne!(new, old, "the given-up ID stays taken");
        complete(&shared, Kind::Publish, old, Vec::new());
        assert!(newer.try_recv().is_err());
        assert!(!shared.state.lock().in_use.contains_key(&old), "now free");
        complete(&shared, Kind::Subscribe, new, Vec::new());
        assert!(
            newer.try_recv().is_err(),
            "an ACK of another kind is not its answer"
        );
        complete(&shared, Kind::Publish, new, Vec::new());
        assert!(newer.try_recv().is_ok());
    }
}

//! [`Peer`]: the known-good client the real-broker harness publishes and listens with. It is
//! deliberately small and shares no code with any transport under test, so that a failure
//! always names the transport under test: an MQTT 3.1.1 client over a blocking `TcpStream`,
//! clean session, QoS 0 and 1, no reconnect (a peer lives for one check).

use std::collections::HashMap;
use std::io::{self, BufReader, Write as _};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use parking_lot::Mutex;

use super::codec::{Packet, read_frame};

/// How long connecting (TCP and CONNACK) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a waiting call receives: the SUBACK's codes, or nothing (PUBACK, UNSUBACK).
type Ack = Vec<u8>;

/// A small, known-good MQTT 3.1.1 client over a blocking `TcpStream` (clean session, QoS 0
/// and 1, no reconnect), sharing no code with any transport under test: the conformance
/// harness's peer, and a raw client for broker-level tests (the AWS-mode plugin's). It
/// implements [`MqttTransport`]: `subscribe` returns the SUBACK's codes (0x80 as
/// [`SubscribeOutcome::Refused`]), a QoS 1 `publish` returns once the PUBACK arrives or
/// `Timeout` at its deadline, and the sink gets `ConnectionLost` when the broker closes the
/// connection. Dropping it sends DISCONNECT and joins its two threads.
pub struct Peer {
    shared: Arc<Shared>,
    stop: Option<Sender<()>>,
    threads: Vec<JoinHandle<()>>,
}

struct Shared {
    /// The write side; locked only while writing one packet.
    writer: Mutex<TcpStream>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    sink: Option<Arc<dyn MessageSink>>,
    connected: bool,
    closed: bool,
    last_id: u16,
    /// Packet IDs in use: a waiting call, or `None` once it gave up (the ID stays taken until
    /// its late acknowledgement arrives, so that the ack cannot complete a newer call).
    waiting: HashMap<u16, Option<Sender<Ack>>>,
}

impl State {
    /// A packet ID that is not 0 and not in use.
    fn next_id(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.last_id = self.last_id.checked_add(1).unwrap_or(1);
            if !self.waiting.contains_key(&self.last_id) {
                return Some(self.last_id);
            }
        }
        None
    }
}

impl std::fmt::Debug for Peer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Peer")
            .field("connected", &self.shared.state.lock().connected)
            .finish()
    }
}

impl Peer {
    /// Connects to `address` as `client_id` with a clean session and `keep_alive` (it sends
    /// PINGREQ every half keep-alive).
    ///
    /// # Errors
    /// When the TCP connect or the CONNACK fails or takes longer than 10 s.
    pub fn connect(
        address: impl ToSocketAddrs,
        client_id: &str,
        keep_alive: Duration,
    ) -> io::Result<Self> {
        let address = address
            .to_socket_addrs()?
            .next()
            .ok_or_else(|| io::Error::other("no address"))?;
        let socket = TcpStream::connect_timeout(&address, CONNECT_TIMEOUT)?;
        socket.set_nodelay(true)?;
        let seconds = u16::try_from(keep_alive.as_secs().max(1)).unwrap_or(u16::MAX);
        (&socket).write_all(
            &Packet::Connect {
                client_id: client_id.to_owned(),
                keep_alive: seconds,
                clean_session: true,
            }
            .encode(),
        )?;
        socket.set_read_timeout(Some(CONNECT_TIMEOUT))?;
        let mut reader = BufReader::new(socket.try_clone()?);
        match Packet::decode(&read_frame(&mut reader)?)? {
            Packet::ConnAck { code: 0, .. } => {}
            other => return Err(io::Error::other(format!("connect refused: {other:?}"))),
        }
        socket.set_read_timeout(None)?;
        let shared = Arc::new(Shared {
            writer: Mutex::new(socket),
            state: Mutex::new(State {
                connected: true,
                ..State::default()
            }),
        });
        let (stop, stopped) = crossbeam_channel::bounded(1);
        let reader_thread = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("conformance-peer".into())
                .spawn(move || receive(&shared, reader))?
        };
        let pinger = {
            let shared = Arc::clone(&shared);
            let period = Duration::from_secs(u64::from(seconds)) / 2;
            thread::Builder::new()
                .name("conformance-peer-ping".into())
                .spawn(move || ping(&shared, &stopped, period))?
        };
        Ok(Self {
            shared,
            stop: Some(stop),
            threads: vec![reader_thread, pinger],
        })
    }

    /// Sends `packet` (with a waiter for `id`, if any) and waits for its acknowledgement.
    fn request(
        &self,
        deadline: Instant,
        packet: impl FnOnce(Option<u16>) -> Packet,
        acknowledged: bool,
    ) -> Result<Ack, TransportError> {
        if Instant::now() >= deadline {
            return Err(TransportError::Timeout);
        }
        let (id, waiter) = {
            let mut state = self.shared.state.lock();
            if !state.connected || state.closed {
                return Err(TransportError::NotConnected);
            }
            if acknowledged {
                let id = state
                    .next_id()
                    .ok_or_else(|| TransportError::backend("every packet ID is in use"))?;
                let (tx, rx) = crossbeam_channel::bounded(1);
                state.waiting.insert(id, Some(tx));
                (Some(id), Some(rx))
            } else {
                (None, None)
            }
        };
        if let Err(error) = self.shared.write(&packet(id).encode(), deadline) {
            if let Some(id) = id {
                self.shared.state.lock().waiting.remove(&id);
            }
            return Err(error);
        }
        let Some(waiter) = waiter else {
            return Ok(Vec::new());
        };
        match waiter.recv_deadline(deadline) {
            Ok(ack) => Ok(ack),
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                if let Some(id) = id
                    && let Some(slot) = self.shared.state.lock().waiting.get_mut(&id)
                {
                    *slot = None;
                }
                Err(TransportError::Timeout)
            }
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                Err(TransportError::ConnectionLost)
            }
        }
    }
}

impl Shared {
    /// Writes one packet, by `deadline`. A write that fails or times out part-way leaves the
    /// stream unusable: the connection is shut down (the reader then reports it lost).
    fn write(&self, bytes: &[u8], deadline: Instant) -> Result<(), TransportError> {
        let writer = self.writer.lock();
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TransportError::Timeout);
        }
        let written = writer
            .set_write_timeout(Some(left))
            .and_then(|()| (&*writer).write_all(bytes));
        match written {
            Ok(()) => Ok(()),
            Err(error) => {
                log::debug!("conformance peer: write failed: {error}");
                let _ = writer.shutdown(Shutdown::Both);
                Err(TransportError::ConnectionLost)
            }
        }
    }

    fn sink(&self) -> Option<Arc<dyn MessageSink>> {
        self.state.lock().sink.clone()
    }
}

/// The reader thread: hands messages to the sink, acknowledges them, completes waiting calls.
fn receive(shared: &Shared, mut reader: BufReader<TcpStream>) {
    loop {
        let packet = read_frame(&mut reader).and_then(|frame| Packet::decode(&frame));
        match packet {
            Ok(Packet::Publish {
                topic,
                payload,
                packet_id,
                ..
            }) => {
                if let Some(sink) = shared.sink()
                    && catch_unwind(AssertUnwindSafe(|| sink.message(&topic, &payload))).is_err()
                {
                    log::error!("conformance peer: the sink panicked");
                }
                if let Some(id) = packet_id {
                    let far = Instant::now() + CONNECT_TIMEOUT;
                    let _ = shared.write(&Packet::PubAck(id).encode(), far);
                }
            }
            Ok(Packet::PubAck(id) | Packet::UnsubAck(id)) => complete(shared, id, Vec::new()),
            Ok(Packet::SubAck { packet_id, codes }) => complete(shared, packet_id, codes),
            Ok(_) => {}
            Err(error) => {
                log::debug!("conformance peer: connection ended: {error}");
                break;
            }
        }
    }
    let (sink, closed) = {
        let mut state = shared.state.lock();
        state.connected = false;
        state.waiting.clear(); // the waiters see their channel close: ConnectionLost
        (state.sink.clone(), state.closed)
    };
    if let (Some(sink), false) = (sink, closed) {
        let _ = catch_unwind(AssertUnwindSafe(|| {
            sink.connection(ConnectionEvent::ConnectionLost);
        }));
    }
}

fn complete(shared: &Shared, id: u16, ack: Ack) {
    if let Some(Some(waiter)) = shared.state.lock().waiting.remove(&id) {
        let _ = waiter.try_send(ack);
    }
}

/// Sends PINGREQ every half keep-alive until stopped.
fn ping(shared: &Shared, stopped: &Receiver<()>, period: Duration) {
    while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stopped.recv_timeout(period) {
        if !shared.state.lock().connected {
            return;
        }
        let _ = shared.write(&Packet::PingReq.encode(), Instant::now() + period);
    }
}

fn wire_qos(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
    }
}

impl MqttTransport for Peer {
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
        let requested: Vec<(String, u8)> = filters
            .iter()
            .map(|f| ((*f).to_owned(), wire_qos(qos)))
            .collect();
        let codes = self.request(
            deadline,
            |id| Packet::Subscribe {
                packet_id: id.unwrap_or(1),
                filters: requested,
            },
            true,
        )?;
        if codes.len() != filters.len() {
            return Err(TransportError::backend(format!(
                "SUBACK with {} codes for {} filters",
                codes.len(),
                filters.len()
            )));
        }
        Ok(codes
            .into_iter()
            .map(|code| match code {
                0 => SubscribeOutcome::Granted(QoS::AtMostOnce),
                1 | 2 => SubscribeOutcome::Granted(QoS::AtLeastOnce),
                _ => SubscribeOutcome::Refused,
            })
            .collect())
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        let filters = filters.iter().map(|f| (*f).to_owned()).collect();
        self.request(
            deadline,
            |id| Packet::Unsubscribe {
                packet_id: id.unwrap_or(1),
                filters,
            },
            true,
        )
        .map(drop)
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        self.request(
            deadline,
            |id| Packet::Publish {
                topic: topic.to_owned(),
                payload: payload.to_vec(),
                qos: wire_qos(qos),
                retain: false,
                dup: false,
                packet_id: id,
            },
            qos == QoS::AtLeastOnce,
        )
        .map(drop)
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.shared.state.lock().closed = true;
        drop(self.stop.take());
        let _ = self.shared.write(
            &Packet::Disconnect.encode(),
            Instant::now() + CONNECT_TIMEOUT,
        );
        let _ = self.shared.writer.lock().shutdown(Shutdown::Both);
        for thread in self.threads.drain(..) {
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
        let sink = self.shared.state.lock().sink.take();
        drop(sink);
    }
}

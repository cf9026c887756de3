//! A transport written as a porter would, on a `TcpStream` with a packet-encoding crate, with
//! one mistake planted at a time: the mistakes only a real broker shows (keep-alive, the
//! in-flight window, RETAIN) and some it shows at its own pace (acknowledgement order, a
//! subscribe that does not wait). No reconnect: the rules it is checked against need none.

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use crossbeam_channel::Sender;
use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use mqttbytes::v4::{
    self, Connect, Packet, PingReq, PubAck, Publish, Subscribe, SubscribeFilter,
    SubscribeReasonCode, Unsubscribe,
};
use parking_lot::Mutex;

/// The planted mistake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mistake {
    /// None: the transport as it should be.
    None,
    /// Never sends PINGREQ.
    NoPingreq,
    /// Never acknowledges an inbound QoS 1 message.
    NoInboundAck,
    /// Sets RETAIN on everything it publishes.
    Retain,
    /// A PUBACK completes the oldest waiting call, not the one with its packet ID.
    AcksInOrder,
    /// `subscribe` returns once the SUBSCRIBE is written, without waiting for the SUBACK.
    SubscribeWithoutSuback,
}

const KEEP_ALIVE: Duration = Duration::from_secs(2);

type Ack = Vec<SubscribeOutcome>;

#[derive(Default)]
struct State {
    sink: Option<Arc<dyn MessageSink>>,
    connected: bool,
    last_id: u16,
    /// Waiting calls by packet ID (ordered: `Mistake::AcksInOrder` takes the first).
    waiting: BTreeMap<u16, Sender<Ack>>,
}

struct Shared {
    state: Mutex<State>,
    writer: Mutex<TcpStream>,
    mistake: Mistake,
}

impl Shared {
    fn write(&self, bytes: &[u8]) -> Result<(), TransportError> {
        let writer = self.writer.lock();
        (&*writer).write_all(bytes).map_err(|_| {
            let _ = writer.shutdown(Shutdown::Both);
            TransportError::ConnectionLost
        })
    }
}

pub(crate) struct FlawedTcp {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    stop: Option<Sender<()>>,
}

impl FlawedTcp {
    pub(crate) fn connect(
        host: &str,
        port: u16,
        client_id: &str,
        mistake: Mistake,
    ) -> std::io::Result<Self> {
        let stream = TcpStream::connect((host, port))?;
        stream.set_nodelay(true)?;
        let mut connect = Connect::new(client_id);
        connect.keep_alive = 2;
        let mut bytes = BytesMut::new();
        connect
            .write(&mut bytes)
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        (&stream).write_all(&bytes)?;
        let mut buffer = BytesMut::new();
        loop {
            match v4::read(&mut buffer, 1 << 20) {
                Ok(Packet::ConnAck(_)) => break,
                Ok(other) => return Err(std::io::Error::other(format!("{other:?}"))),
                Err(mqttbytes::Error::InsufficientBytes(_)) => fill(&stream, &mut buffer)?,
                Err(error) => return Err(std::io::Error::other(error.to_string())),
            }
        }
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                connected: true,
                ..State::default()
            }),
            writer: Mutex::new(stream.try_clone()?),
            mistake,
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(1);
        let reader = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || receive(&shared, &stream, buffer))
        };
        let pinger = {
            let shared = Arc::clone(&shared);
            thread::spawn(move || {
                while stopped.recv_timeout(KEEP_ALIVE / 2).is_err() {
                    if shared.mistake != Mistake::NoPingreq {
                        let mut ping = BytesMut::new();
                        let _ = PingReq.write(&mut ping);
                        let _ = shared.write(&ping);
                    }
                    if !shared.state.lock().connected {
                        return;
                    }
                }
            })
        };
        Ok(Self {
            shared,
            threads: vec![reader, pinger],
            stop: Some(stop),
        })
    }

    fn request(
        &self,
        deadline: Instant,
        wait: bool,
        encode: impl FnOnce(u16, &mut BytesMut) -> Result<usize, mqttbytes::Error>,
    ) -> Result<Ack, TransportError> {
        if Instant::now() >= deadline {
            return Err(TransportError::Timeout);
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let id = {
            let mut state = self.shared.state.lock();
            if !state.connected {
                return Err(TransportError::NotConnected);
            }
            state.last_id = state.last_id.checked_add(1).unwrap_or(1);
            let id = state.last_id;
            state.waiting.insert(id, tx);
            id
        };
        let mut bytes = BytesMut::new();
        encode(id, &mut bytes).map_err(|e| TransportError::backend(e.to_string()))?;
        self.shared.write(&bytes)?;
        if !wait {
            return Ok(Vec::new());
        }
        let result = rx.recv_deadline(deadline).map_err(|e| match e {
            crossbeam_channel::RecvTimeoutError::Timeout => TransportError::Timeout,
            crossbeam_channel::RecvTimeoutError::Disconnected => TransportError::ConnectionLost,
        });
        self.shared.state.lock().waiting.remove(&id);
        result
    }
}

fn fill(mut stream: &TcpStream, buffer: &mut BytesMut) -> std::io::Result<()> {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk)? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        n => {
            buffer.extend_from_slice(&chunk[..n]);
            Ok(())
        }
    }
}

fn receive(shared: &Shared, stream: &TcpStream, mut buffer: BytesMut) {
    loop {
        let packet = match v4::read(&mut buffer, 1 << 20) {
            Ok(packet) => packet,
            Err(mqttbytes::Error::InsufficientBytes(_)) => {
                if fill(stream, &mut buffer).is_err() {
                    break;
                }
                continue;
            }
            Err(_) => break,
        };
        match packet {
            Packet::Publish(publish) => {
                let sink = shared.state.lock().sink.clone();
                if let Some(sink) = sink {
                    sink.message(&publish.topic, &publish.payload);
                }
                if publish.qos == mqttbytes::QoS::AtLeastOnce
                    && shared.mistake != Mistake::NoInboundAck
                {
                    let mut ack = BytesMut::new();
                    let _ = PubAck::new(publish.pkid).write(&mut ack);
                    let _ = shared.write(&ack);
                }
            }
            Packet::PubAck(ack) => {
                let mut state = shared.state.lock();
                let id = match shared.mistake {
                    Mistake::AcksInOrder => state.waiting.keys().next().copied(),
                    _ => Some(ack.pkid),
                };
                if let Some(waiter) = id.and_then(|id| state.waiting.remove(&id)) {
                    let _ = waiter.send(Vec::new());
                }
            }
            Packet::SubAck(ack) => {
                let outcomes = ack
                    .return_codes
                    .iter()
                    .map(|code| match code {
                        SubscribeReasonCode::Success(mqttbytes::QoS::AtMostOnce) => {
                            SubscribeOutcome::Granted(QoS::AtMostOnce)
                        }
                        SubscribeReasonCode::Success(_) => {
                            SubscribeOutcome::Granted(QoS::AtLeastOnce)
                        }
                        SubscribeReasonCode::Failure => SubscribeOutcome::Refused,
                    })
                    .collect();
                if let Some(waiter) = shared.state.lock().waiting.remove(&ack.pkid) {
                    let _ = waiter.send(outcomes);
                }
            }
            Packet::UnsubAck(ack) => {
                if let Some(waiter) = shared.state.lock().waiting.remove(&ack.pkid) {
                    let _ = waiter.send(Vec::new());
                }
            }
            _ => {}
        }
    }
    let sink = {
        let mut state = shared.state.lock();
        state.connected = false;
        state.waiting.clear();
        state.sink.clone()
    };
    if let Some(sink) = sink {
        sink.connection(ConnectionEvent::ConnectionLost);
    }
}

fn qos_of(qos: QoS) -> mqttbytes::QoS {
    match qos {
        QoS::AtMostOnce => mqttbytes::QoS::AtMostOnce,
        QoS::AtLeastOnce => mqttbytes::QoS::AtLeastOnce,
    }
}

impl MqttTransport for FlawedTcp {
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
        let wait = self.shared.mistake != Mistake::SubscribeWithoutSuback;
        let outcomes = self.request(deadline, wait, |id, bytes| {
            let mut subscribe = Subscribe::new_many(
                filters
                    .iter()
                    .map(|f| SubscribeFilter::new((*f).to_owned(), qos_of(qos))),
            );
            subscribe.pkid = id;
            subscribe.write(bytes)
        })?;
        if !wait {
            return Ok(vec![SubscribeOutcome::Granted(qos); filters.len()]);
        }
        Ok(outcomes)
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        self.request(deadline, true, |id, bytes| {
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
        let retain = self.shared.mistake == Mistake::Retain;
        self.request(deadline, qos == QoS::AtLeastOnce, |id, bytes| {
            let mut publish = Publish::new(topic, qos_of(qos), payload);
            publish.retain = retain;
            if qos == QoS::AtLeastOnce {
                publish.pkid = id;
            }
            publish.write(bytes)
        })
        .map(drop)
    }
}

impl Drop for FlawedTcp {
    fn drop(&mut self) {
        drop(self.stop.take());
        let _ = self.shared.writer.lock().shutdown(Shutdown::Both);
        for thread in self.threads.drain(..) {
            if thread.thread().id() != thread::current().id() {
                let _ = thread.join();
            }
        }
        self.shared.state.lock().sink = None;
    }
}

//! [`Proxy`]: a TCP proxy in front of the broker that the transports under test connect
//! through. It forwards every packet unchanged and in order, records what each client sent
//! ([`Observations`]), and can hold back the broker's PUBACKs for one topic until released, so
//! that acknowledgements arrive out of order.

use std::collections::HashSet;
use std::io::{self, BufReader, Write as _};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use parking_lot::Mutex;

use super::codec::{Frame, Packet, read_frame};
use crate::conformance::observe::{Observations, Seen};

/// How long the proxy waits for the broker to accept a connection.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The proxy; it stops (and closes every connection through it) when dropped.
pub(crate) struct Proxy {
    port: u16,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    upstream: u16,
    observations: Observations,
    closed: AtomicBool,
    /// Set while connections are dropped: new ones are closed at once.
    down: AtomicBool,
    links: Mutex<Vec<Arc<Link>>>,
    hold: Mutex<Hold>,
}

/// Held acknowledgements: the topic whose PUBACKs are held, and those held so far.
#[derive(Default)]
struct Hold {
    topic: Option<String>,
    stash: Vec<(Arc<Link>, Vec<u8>)>,
}

/// One client's connection through the proxy.
struct Link {
    client: TcpStream,
    broker: TcpStream,
    /// Written by the broker-to-client pump and by [`Proxy::release_acks`].
    to_client: Mutex<TcpStream>,
    /// Packet IDs of the client's QoS 1 publishes on the held topic.
    held_ids: Mutex<HashSet<u16>>,
    dead: AtomicBool,
}

impl Link {
    fn close(&self) {
        self.dead.store(true, Ordering::Relaxed);
        let _ = self.client.shutdown(Shutdown::Both);
        let _ = self.broker.shutdown(Shutdown::Both);
    }
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to the broker on `upstream`.
    ///
    /// # Errors
    /// When it cannot listen.
    pub(crate) fn start(upstream: u16, observations: Observations) -> io::Result<Self> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            upstream,
            observations,
            closed: AtomicBool::new(false),
            down: AtomicBool::new(false),
            links: Mutex::new(Vec::new()),
            hold: Mutex::new(Hold::default()),
        });
        let acceptor = {
            let shared = Arc::clone(&shared);
            thread::Builder::new()
                .name("conformance-proxy".into())
                .spawn(move || accept(&shared, &listener))?
        };
        Ok(Self {
            port,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The port transports connect to.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// From now on, holds the broker's PUBACK for every QoS 1 publish on `topic`.
    pub(crate) fn hold_acks(&self, topic: &str) {
        self.shared.hold.lock().topic = Some(topic.to_owned());
    }

    /// Stops holding, and forwards the held PUBACKs.
    pub(crate) fn release_acks(&self) {
        let stash = {
            let mut hold = self.shared.hold.lock();
            hold.topic = None;
            std::mem::take(&mut hold.stash)
        };
        for (link, bytes) in stash {
            if link.to_client.lock().write_all(&bytes).is_err() {
                link.close();
            }
        }
    }

    /// With `true`, closes every connection through the proxy (the clients see the link
    /// drop) and closes new ones at once, as if the broker were gone, until called with
    /// `false`.
    pub(crate) fn set_down(&self, down: bool) {
        self.shared.down.store(down, Ordering::SeqCst);
        if down {
            self.close_links();
        }
    }

    fn close_links(&self) {
        for link in self.shared.links.lock().drain(..) {
            link.close();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Relaxed);
        // Wakes the accepting thread, which then sees `closed`.
        let _ = TcpStream::connect_timeout(
            &SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)),
            UPSTREAM_TIMEOUT,
        );
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        self.close_links();
    }
}

fn accept(shared: &Arc<Shared>, listener: &TcpListener) {
    for client in listener.incoming() {
        if shared.closed.load(Ordering::Relaxed) {
            return;
        }
        let Ok(client) = client else { continue };
        if shared.down.load(Ordering::SeqCst) {
            continue;
        }
        let upstream = SocketAddr::from((Ipv4Addr::LOCALHOST, shared.upstream));
        // The broker is down (an outage): the client sees its connect fail and retries.
        let Ok(broker) = TcpStream::connect_timeout(&upstream, UPSTREAM_TIMEOUT) else {
            continue;
        };
        if let Err(error) = link(shared, client, broker) {
            log::debug!("conformance proxy: cannot link a connection: {error}");
        }
    }
}

fn link(shared: &Arc<Shared>, client: TcpStream, broker: TcpStream) -> io::Result<()> {
    client.set_nodelay(true)?;
    broker.set_nodelay(true)?;
    let link = Arc::new(Link {
        to_client: Mutex::new(client.try_clone()?),
        client: client.try_clone()?,
        broker: broker.try_clone()?,
        held_ids: Mutex::new(HashSet::new()),
        dead: AtomicBool::new(false),
    });
    {
        let mut links = shared.links.lock();
        links.retain(|l| !l.dead.load(Ordering::Relaxed));
        links.push(Arc::clone(&link));
    }
    let up = {
        let (shared, link) = (Arc::clone(shared), Arc::clone(&link));
        move || to_broker(&shared, &link, BufReader::new(client), broker)
    };
    let down = {
        let shared = Arc::clone(shared);
        let reader = BufReader::new(link.broker.try_clone()?);
        move || to_client(&shared, &link, reader)
    };
    thread::Builder::new()
        .name("conformance-proxy-up".into())
        .spawn(up)?;
    thread::Builder::new()
        .name("conformance-proxy-down".into())
        .spawn(down)?;
    Ok(())
}

/// Client to broker: records each packet, then forwards it.
fn to_broker(
    shared: &Shared,
    link: &Link,
    mut client: BufReader<TcpStream>,
    mut broker: TcpStream,
) {
    let mut client_id = String::new();
    while let Ok(frame) = read_frame(&mut client) {
        if let Ok(packet) = Packet::decode(&frame) {
            observe(shared, link, &mut client_id, packet);
        }
        if broker.write_all(&frame.to_bytes()).is_err() {
            break;
        }
    }
    link.close();
}

fn observe(shared: &Shared, link: &Link, client_id: &mut String, packet: Packet) {
    let seen = match packet {
        Packet::Connect {
            client_id: id,
            keep_alive,
            ..
        } => {
            *client_id = id;
            Seen::Connect {
                keep_alive: Duration::from_secs(u64::from(keep_alive)),
            }
        }
        Packet::Publish {
            topic,
            payload,
            qos,
            retain,
            packet_id,
            ..
        } => {
            if let Some(id) = packet_id
                && shared.hold.lock().topic.as_deref() == Some(topic.as_str())
            {
                link.held_ids.lock().insert(id);
            }
            Seen::Publish {
                topic,
                payload,
                qos,
                retain,
            }
        }
        Packet::Subscribe { filters, .. } => Seen::Subscribe { filters },
        Packet::Unsubscribe { filters, .. } => Seen::Unsubscribe { filters },
        Packet::PubAck(_) => Seen::PubAck,
        Packet::PingReq => Seen::PingReq,
        Packet::Disconnect => Seen::Disconnect,
        _ => return,
    };
    shared.observations.record(client_id, seen);
}

/// Broker to client: forwards each packet, except held PUBACKs.
fn to_client(shared: &Shared, link: &Arc<Link>, mut broker: BufReader<TcpStream>) {
    while let Ok(frame) = read_frame(&mut broker) {
        if is_held(shared, link, &frame) {
            continue;
        }
        if link.to_client.lock().write_all(&frame.to_bytes()).is_err() {
            break;
        }
    }
    link.close();
}

/// Whether `frame` is a PUBACK to hold; if so it is stashed.
fn is_held(shared: &Shared, link: &Arc<Link>, frame: &Frame) -> bool {
    if frame.kind() != 4 {
        return false;
    }
    let Ok(Packet::PubAck(id)) = Packet::decode(frame) else {
        return false;
    };
    let mut hold = shared.hold.lock();
    if hold.topic.is_none() || !link.held_ids.lock().remove(&id) {
        return false;
    }
    hold.stash.push((Arc::clone(link), frame.to_bytes()));
    true
}

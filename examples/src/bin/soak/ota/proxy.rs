//! A cutting TCP proxy in front of `jobs-service`'s object store: the file server's outages.
//!
//! Every download goes through it. It forwards each connection to the file server at a bounded
//! rate (so that a multi-megabyte transfer lasts seconds and can be interrupted in the middle),
//! and on the chaos schedule's command it
//! - **cuts** every connection under way (both sockets shut down mid-transfer),
//! - goes **down**: cuts them, and closes every new connection at once until it is up again
//!   (the server gone),
//! - **stalls**: forwards nothing, keeping the connections open (a server or network that
//!   hangs), until it is up again;
//!
//! and it cuts some connections on its own (the first one always) after a random number of
//! bytes. It counts what it
//! saw: connections, requests, requests with a `Range` (a download resuming), cuts by cause.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex};

use crate::dice::Dice;

/// The longest a stalled pump waits before looking at its connection again.
const STALL_POLL: Duration = Duration::from_millis(50);

/// A connection idle this long starts a new pacing window.
const IDLE: Duration = Duration::from_millis(200);

/// How the proxy forwards at the moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    Up,
    /// New connections are closed at once.
    Down,
    /// Nothing is forwarded; connections stay open.
    Stalled,
}

/// What the proxy counted.
#[derive(Debug, Default)]
pub(crate) struct ProxyCounts {
    pub(crate) connections: AtomicUsize,
    /// Connections closed at once because the proxy was down.
    pub(crate) refused: AtomicUsize,
    /// HTTP requests seen (`GET `), and those asking for a `Range`.
    pub(crate) requests: AtomicUsize,
    pub(crate) ranged: AtomicUsize,
    /// Connections cut by a scheduled cut or outage (those open at the time), and responses
    /// cut on the proxy's own after a random number of bytes.
    pub(crate) cut_scheduled: AtomicUsize,
    pub(crate) cut_random: AtomicUsize,
    pub(crate) bytes: AtomicU64,
}

struct State {
    mode: Mode,
    /// The open connections (client side, server side), by number.
    open: Vec<(u64, TcpStream, TcpStream)>,
}

struct Inner {
    upstream: SocketAddr,
    /// Bytes per second per connection, from the server to the client.
    rate: u64,
    state: Mutex<State>,
    changed: Condvar,
    counts: ProxyCounts,
    /// Set when the soak is over: the accept loop ends.
    closing: AtomicBool,
    dice: Mutex<Dice>,
    /// Percent of connections cut on the proxy's own after a random number of bytes.
    random_cuts: u64,
    /// The largest random cut point, in bytes.
    size: u64,
}

/// The proxy; dropping it stops accepting and cuts every connection.
pub(crate) struct Proxy {
    inner: Arc<Inner>,
    address: SocketAddr,
}

impl Proxy {
    /// Listens on a free port of 127.0.0.1 and forwards to `upstream` at `rate` bytes/s per
    /// connection; `random_cuts` percent of the connections are cut after a random number of
    /// bytes up to `size`.
    ///
    /// # Errors
    /// When the port cannot be bound or the thread cannot start.
    pub(crate) fn start(
        upstream: SocketAddr,
        rate: u64,
        random_cuts: u64,
        size: u64,
        dice: Dice,
    ) -> io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let address = listener.local_addr()?;
        let inner = Arc::new(Inner {
            upstream,
            rate: rate.max(1),
            state: Mutex::new(State {
                mode: Mode::Up,
                open: Vec::new(),
            }),
            changed: Condvar::new(),
            counts: ProxyCounts::default(),
            closing: AtomicBool::new(false),
            dice: Mutex::new(dice),
            random_cuts,
            size,
        });
        let accepting = Arc::clone(&inner);
        thread::Builder::new()
            .name("soak-file-proxy".into())
            .spawn(move || accept(&listener, &accepting))?;
        Ok(Self { inner, address })
    }

    pub(crate) fn address(&self) -> SocketAddr {
        self.address
    }

    pub(crate) fn counts(&self) -> &ProxyCounts {
        &self.inner.counts
    }

    /// Cuts every connection under way.
    pub(crate) fn cut(&self) {
        let open = std::mem::take(&mut self.inner.state.lock().open);
        self.inner
            .counts
            .cut_scheduled
            .fetch_add(open.len(), Ordering::Relaxed);
        for (_, client, server) in open {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// Sets the mode; going down also cuts every connection.
    pub(crate) fn set(&self, mode: Mode) {
        self.inner.state.lock().mode = mode;
        self.inner.changed.notify_all();
        if mode == Mode::Down {
            self.cut();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.inner.closing.store(true, Ordering::Release);
        self.set(Mode::Down);
        // Wakes the accept loop, which then sees `closing`.
        let _ = TcpStream::connect_timeout(&self.address, Duration::from_secs(1));
    }
}

fn accept(listener: &TcpListener, inner: &Arc<Inner>) {
    let mut number = 0u64;
    for client in listener.incoming() {
        if inner.closing.load(Ordering::Acquire) {
            return;
        }
        let Ok(client) = client else { continue };
        inner.counts.connections.fetch_add(1, Ordering::Relaxed);
        if inner.state.lock().mode == Mode::Down {
            inner.counts.refused.fetch_add(1, Ordering::Relaxed);
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        number += 1;
        let inner = Arc::clone(inner);
        let spawned = thread::Builder::new()
            .name("soak-file-proxy-conn".into())
            .spawn(move || connection(number, client, &inner));
        if let Err(error) = spawned {
            log::error!("soak: the file proxy could not start a thread: {error}");
        }
    }
}

/// Forwards one connection until either side closes it or it is cut.
fn connection(number: u64, client: TcpStream, inner: &Arc<Inner>) {
    let Ok(server) = TcpStream::connect_timeout(&inner.upstream, Duration::from_secs(2)) else {
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client_read), Ok(server_write), Ok(client_keep), Ok(server_keep)) = (
        client.try_clone(),
        server.try_clone(),
        client.try_clone(),
        server.try_clone(),
    ) else {
        return;
    };
    inner
        .state
        .lock()
        .open
        .push((number, client_keep, server_keep));
    let cut_after = {
        let mut dice = inner.dice.lock();
        // The first connection always, early (before any crash on purpose, which waits for a
        // tenth of the file): every run sees a cut.
        if number == 1 {
            Some(dice.below(inner.size / 10 + 1))
        } else {
            dice.chance(inner.random_cuts)
                .then(|| dice.below(inner.size.max(1)))
        }
    };
    let requests = {
        let inner = Arc::clone(inner);
        thread::Builder::new()
            .name("soak-file-proxy-up".into())
            .spawn(move || requests(client_read, server_write, &inner))
    };
    responses(number, server, client, cut_after, inner);
    if let Ok(requests) = requests {
        let _ = requests.join();
    }
    inner.state.lock().open.retain(|(n, _, _)| *n != number);
}

/// Client to server: the requests, counted, at full speed.
fn requests(mut client: TcpStream, mut server: TcpStream, inner: &Inner) {
    let mut buffer = [0u8; 8192];
    loop {
        let read = match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        let chunk = buffer.get(..read).unwrap_or_default();
        let text = String::from_utf8_lossy(chunk).to_ascii_lowercase();
        inner
            .counts
            .requests
            .fetch_add(text.matches("get ").count(), Ordering::Relaxed);
        inner
            .counts
            .ranged
            .fetch_add(text.matches("\r\nrange: bytes=").count(), Ordering::Relaxed);
        if server.write_all(chunk).is_err() {
            break;
        }
    }
    let _ = server.shutdown(Shutdown::Write);
}

/// Server to client: the responses, at the proxy's rate, stalled or cut as the mode says.
fn responses(
    number: u64,
    mut server: TcpStream,
    mut client: TcpStream,
    cut_after: Option<u64>,
    inner: &Inner,
) {
    let mut buffer = [0u8; 16 * 1024];
    // The pace is kept from the start of a window, which restarts after an idle spell (a
    // connection kept alive between requests does not save up a burst).
    let mut window = Instant::now();
    let mut in_window = 0u64;
    let mut sent = 0u64;
    loop {
        let read = match server.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(read) => read,
        };
        // Stalled: hold the bytes until the proxy is up again (or the connection is cut).
        {
            let mut state = inner.state.lock();
            while state.mode == Mode::Stalled && state.open.iter().any(|(n, _, _)| *n == number) {
                inner.changed.wait_for(&mut state, STALL_POLL);
            }
            if !state.open.iter().any(|(n, _, _)| *n == number) {
                break;
            }
        }
        let chunk = buffer.get(..read).unwrap_or_default();
        if let Some(at) = cut_after
            && sent + chunk.len() as u64 > at
        {
            inner.counts.cut_random.fetch_add(1, Ordering::Relaxed);
            let keep = usize::try_from(at.saturating_sub(sent)).unwrap_or(0);
            let _ = client.write_all(chunk.get(..keep).unwrap_or_default());
            break;
        }
        if client.write_all(chunk).is_err() {
            break;
        }
        sent += chunk.len() as u64;
        inner
            .counts
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        // The rate: no faster than `rate` bytes per second over the window.
        if window.elapsed() > Duration::from_secs_f64(in_window as f64 / inner.rate as f64) + IDLE {
            window = Instant::now();
            in_window = 0;
        }
        in_window += chunk.len() as u64;
        let due = Duration::from_secs_f64(in_window as f64 / inner.rate as f64);
        if let Some(wait) = due.checked_sub(window.elapsed()) {
            thread::sleep(wait);
        }
    }
    let _ = client.shutdown(Shutdown::Both);
    let _ = server.shutdown(Shutdown::Both);
}

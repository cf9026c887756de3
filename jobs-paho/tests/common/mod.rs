//! Test support around [`jobs_paho::local_broker`]: unique names, temporary directories, a
//! broker with TLS, channel sinks, and a minimal Jobs responder over a second Paho connection.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test binary uses a different part of the harness"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test support: a failed setup step should fail the test loudly"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS};
use jobs_paho::PahoTransport;
use jobs_paho::local_broker::{LocalBroker, TestCertificates};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A process-unique suffix for client IDs and directories.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n}-{nanos:x}", std::process::id())
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let path = std::env::temp_dir().join(unique("jobs-paho-test"));
        fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A [`LocalBroker`] with a mutual-TLS listener and the certificates it was started with
/// (generated into a temporary directory that outlives the broker).
#[derive(Debug)]
pub struct TlsBroker {
    // Field order is drop order: the broker goes before its certificate files.
    pub broker: LocalBroker,
    pub certs: TestCertificates,
    _dir: TempDir,
}

impl TlsBroker {
    pub fn start() -> Self {
        let dir = TempDir::new();
        let certs = TestCertificates::generate(dir.path()).unwrap();
        let broker = LocalBroker::start_with_tls(&certs).unwrap();
        Self {
            broker,
            certs,
            _dir: dir,
        }
    }

    /// `ssl://<host>:<tls port>`.
    pub fn tls_uri(&self, host: &str) -> String {
        self.broker.tls_uri(host).unwrap()
    }
}

/// A plain [`LocalBroker`]; a failed start fails the test.
pub fn start_broker() -> LocalBroker {
    LocalBroker::start().unwrap()
}

/// A sink that forwards everything into channels the test can wait on.
#[derive(Debug)]
pub struct ChannelSink {
    pub messages: crossbeam_channel::Sender<(String, Vec<u8>)>,
    pub events: crossbeam_channel::Sender<ConnectionEvent>,
}

impl MessageSink for ChannelSink {
    fn message(&self, topic: &str, payload: &[u8]) {
        let _ = self.messages.send((topic.to_owned(), payload.to_vec()));
    }

    fn connection(&self, event: ConnectionEvent) {
        let _ = self.events.send(event);
    }
}

/// Installs a [`ChannelSink`] on `transport` and returns its receivers.
pub fn channel_sink(
    transport: &dyn MqttTransport,
) -> (
    crossbeam_channel::Receiver<(String, Vec<u8>)>,
    crossbeam_channel::Receiver<ConnectionEvent>,
) {
    let (mtx, mrx) = crossbeam_channel::unbounded();
    let (etx, erx) = crossbeam_channel::unbounded();
    transport
        .set_sink(Arc::new(ChannelSink {
            messages: mtx,
            events: etx,
        }))
        .unwrap();
    (mrx, erx)
}

/// A minimal Jobs service on its own Paho connection: answers every GetPendingJobExecutions
/// (`$aws/things/+/jobs/get`) with a fixed accepted list, echoing the clientToken. Replies are
/// published from the responder's own thread (never from Paho's callback thread).
#[derive(Debug)]
pub struct Responder {
    stop: Option<crossbeam_channel::Sender<()>>,
    handle: Option<thread::JoinHandle<()>>,
}

/// The job each responder's list contains.
pub const QUEUED_JOB: &str = "rotate-logs";

impl Responder {
    /// Connects to `uri` and subscribes before returning (so no request is missed).
    pub fn start(uri: &str) -> Self {
        let transport = PahoTransport::builder(uri, &unique("responder"))
            .operation_timeout(Duration::from_secs(5))
            .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
            .build()
            .unwrap();
        let (messages, events) = channel_sink(&transport);
        transport
            .subscribe(
                &["$aws/things/+/jobs/get"],
                QoS::AtLeastOnce,
                Instant::now() + Duration::from_secs(10),
            )
            .unwrap();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let handle = thread::spawn(move || {
            loop {
                crossbeam_channel::select! {
                    recv(stop_rx) -> _ => break,
                    recv(events) -> event => {
                        // Re-subscribe after a reconnect (clean session).
                        if let Ok(ConnectionEvent::Connected { .. }) = event {
                            let _ = transport.subscribe(&["$aws/things/+/jobs/get"], QoS::AtLeastOnce, Instant::now() + Duration::from_secs(10));
                        }
                    }
                    recv(messages) -> message => {
                        let Ok((topic, payload)) = message else { break };
                        let request: serde_json::Value =
                            serde_json::from_slice(&payload).unwrap_or_default();
                        let reply = serde_json::json!({
                            "inProgressJobs": [],
                            "queuedJobs": [{"jobId": QUEUED_JOB, "queuedAt": 1, "lastUpdatedAt": 1,
                                            "versionNumber": 1, "executionNumber": 1}],
                            "timestamp": 2,
                            "clientToken": request.get("clientToken").cloned().unwrap_or_default(),
                        });
                        let _ = transport.publish(
                            &format!("{topic}/accepted"),
                            reply.to_string().as_bytes(),
                            QoS::AtLeastOnce,
                            Instant::now() + Duration::from_secs(10),
                        );
                    }
                }
            }
        });
        Self {
            stop: Some(stop_tx),
            handle: Some(handle),
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        self.stop = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

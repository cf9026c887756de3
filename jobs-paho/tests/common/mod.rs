//! Test support: a private mosquitto on 127.0.0.1, throwaway certificates, and a minimal Jobs
//! responder over a second Paho connection.

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
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS};
use jobs_paho::PahoTransport;

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

/// Throwaway PKI (ECDSA P-256: fast to generate): a test CA, a broker certificate for `localhost` only (no IP SAN, so
/// `127.0.0.1` fails host-name verification), a device certificate, and an unrelated CA.
#[derive(Debug)]
pub struct Certs {
    pub ca: PathBuf,
    pub broker_cert: PathBuf,
    pub broker_key: PathBuf,
    pub device_cert: PathBuf,
    pub device_key: PathBuf,
    pub other_ca: PathBuf,
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect("openssl CLI is installed");
    assert!(
        out.status.success(),
        "openssl {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Certs {
    pub fn generate(dir: &Path) -> Self {
        let ca = |name: &str, cn: &str| {
            let subj = format!("/CN={cn}");
            let key = format!("{name}.key");
            let crt = format!("{name}.crt");
            openssl(
                dir,
                &[
                    "req",
                    "-x509",
                    "-newkey",
                    "ec",
                    "-pkeyopt",
                    "ec_paramgen_curve:prime256v1",
                    "-nodes",
                    "-sha256",
                    "-days",
                    "1",
                    "-subj",
                    &subj,
                    "-keyout",
                    &key,
                    "-out",
                    &crt,
                ],
            );
        };
        ca("ca", "jobs-test-ca");
        ca("other-ca", "jobs-other-ca");
        let leaf = |name: &str, cn: &str, exts: &[&str]| {
            let subj = format!("/CN={cn}");
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let mut args = vec![
                "req", "-new", "-newkey", "rsa:2048", "-nodes", "-subj", &subj,
            ];
            for ext in exts {
                args.extend(["-addext", ext]);
            }
            args.extend(["-keyout", &key, "-out", &csr]);
            openssl(dir, &args);
            openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-sha256",
                    "-days",
                    "1",
                    "-in",
                    &csr,
                    "-copy_extensions",
                    "copy",
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                ],
            );
        };
        leaf(
            "broker",
            "localhost",
            &[
                "subjectAltName=DNS:localhost",
                "extendedKeyUsage=serverAuth",
            ],
        );
        leaf("device", "test-device", &["extendedKeyUsage=clientAuth"]);
        Self {
            ca: dir.join("ca.crt"),
            broker_cert: dir.join("broker.crt"),
            broker_key: dir.join("broker.key"),
            device_cert: dir.join("device.crt"),
            device_key: dir.join("device.key"),
            other_ca: dir.join("other-ca.crt"),
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A mosquitto started for one test, killed by pid on drop.
#[derive(Debug)]
pub struct Broker {
    dir: TempDir,
    config: PathBuf,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub certs: Option<Certs>,
    child: Option<Child>,
}

const STARTUP: Duration = Duration::from_secs(10);

impl Broker {
    /// A broker with a plain listener.
    pub fn start() -> Self {
        Self::start_inner(false)
    }

    /// A broker with a plain listener and a mutual-TLS listener (`require_certificate true`).
    pub fn start_with_tls() -> Self {
        Self::start_inner(true)
    }

    fn start_inner(tls: bool) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let mut config = String::new();
        if running_as_root() {
            config.push_str("user root\n");
        }
        config.push_str(
            "per_listener_settings false\nallow_anonymous true\npersistence false\n\
             set_tcp_nodelay true\nlog_dest stdout\nlog_type all\n",
        );
        config.push_str(&format!("listener {port} 127.0.0.1\n"));
        let (certs, tls_port) = if tls {
            let certs = Certs::generate(dir.path());
            let tls_port = free_port();
            config.push_str(&format!(
                "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n\
                 require_certificate true\nuse_identity_as_username true\n",
                certs.ca.display(),
                certs.broker_cert.display(),
                certs.broker_key.display()
            ));
            (Some(certs), Some(tls_port))
        } else {
            (None, None)
        };
        let config_path = dir.path().join("mosquitto.conf");
        fs::write(&config_path, config).unwrap();
        let mut broker = Self {
            dir,
            config: config_path,
            port,
            tls_port,
            certs,
            child: None,
        };
        broker.spawn();
        broker
    }

    /// `tcp://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.port)
    }

    /// `ssl://<host>:<tls port>`.
    pub fn tls_uri(&self, host: &str) -> String {
        format!("ssl://{host}:{}", self.tls_port.unwrap())
    }

    pub fn certs(&self) -> &Certs {
        self.certs.as_ref().unwrap()
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("mosquitto.log")
    }

    /// Starts mosquitto (again) on the same ports and waits until every listener accepts.
    /// Retries a few times if it exits at once (a port still held by the previous process).
    fn spawn(&mut self) {
        let deadline = Instant::now() + STARTUP;
        'attempt: loop {
            let log = fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(self.log_path())
                .unwrap();
            let mut child = Command::new("mosquitto")
                .arg("-c")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .expect("mosquitto is installed");
            let ports: Vec<u16> = [Some(self.port), self.tls_port]
                .into_iter()
                .flatten()
                .collect();
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(
                        Instant::now() < deadline,
                        "mosquitto exited with {status}; log:\n{}",
                        fs::read_to_string(self.log_path()).unwrap_or_default()
                    );
                    continue 'attempt;
                }
                if ports
                    .iter()
                    .all(|p| TcpStream::connect(("127.0.0.1", *p)).is_ok())
                {
                    self.child = Some(child);
                    return;
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "mosquitto not ready within {STARTUP:?}; log:\n{}",
                        fs::read_to_string(self.log_path()).unwrap_or_default()
                    );
                }
                // A bounded readiness poll, not synchronisation by sleeping.
                thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// Kills the broker by pid (SIGKILL: an outage, no DISCONNECT) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the broker again on the same ports.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "kill the broker first");
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
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
    transport.set_sink(Arc::new(ChannelSink {
        messages: mtx,
        events: etx,
    }));
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
            .subscribe(&["$aws/things/+/jobs/get"], QoS::AtLeastOnce)
            .unwrap();
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let handle = thread::spawn(move || {
            loop {
                crossbeam_channel::select! {
                    recv(stop_rx) -> _ => break,
                    recv(events) -> event => {
                        // Re-subscribe after a reconnect (clean session).
                        if let Ok(ConnectionEvent::Connected { .. }) = event {
                            let _ = transport.subscribe(&["$aws/things/+/jobs/get"], QoS::AtLeastOnce);
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

//! What a failed first connect says, against real brokers (mosquitto started by the tests on
//! 127.0.0.1, stopped by its pid): each error names the URI and the cause; the opt-in retry
//! waits for a broker that comes up late; two clients with one client ID are called out.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test: a panic fails the test"
)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use common::{TempDir, unique};
use jobs_mock::local_broker::LocalBroker;
use jobs_paho::{ConfigError, ConnectError, ConnectRetry, PahoTransport};

const WAIT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|address| address.port())
        .unwrap()
}

#[test]
fn a_host_that_does_not_resolve_is_named_as_a_dns_failure() {
    let uri = "tcp://no-such-host.invalid:1883";
    let error = PahoTransport::builder(uri, &unique("dns"))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_err();
    match &error {
        ConnectError::Dns { uri: u, host, .. } => {
            assert_eq!((u.as_str(), host.as_str()), (uri, "no-such-host.invalid"));
        }
        other => panic!("unexpected {other:#?}"),
    }
    let text = error.to_string();
    assert!(
        text.contains(uri) && text.contains("not found (DNS)"),
        "{text}"
    );
}

#[test]
fn an_http_uri_is_refused_with_the_accepted_schemes_and_a_bad_client_id_is_named() {
    let error = PahoTransport::builder("http://127.0.0.1:1883", "d")
        .build()
        .unwrap_err();
    let text = format!("{error:?}");
    assert!(
        text.contains("\"http://127.0.0.1:1883\"") && text.contains("tcp:// or mqtt://"),
        "{text}"
    );
    let error = PahoTransport::builder("tcp://127.0.0.1:1883", "")
        .build()
        .unwrap_err();
    assert!(
        matches!(error, ConnectError::Config(ConfigError::ClientId { .. })),
        "{error:#?}"
    );
}

/// A mosquitto with a configuration of the test's own, killed by its pid on drop.
struct Mosquitto {
    child: Child,
    port: u16,
    _dir: TempDir,
}

impl Mosquitto {
    fn start(settings: &str) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let config = dir.path().join("mosquitto.conf");
        std::fs::write(
            &config,
            format!("listener {port} 127.0.0.1\nuser root\n{settings}\n"),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + WAIT;
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "mosquitto did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_connack_refusal_says_what_the_code_means() {
    let broker = Mosquitto::start("allow_anonymous false");
    let uri = format!("tcp://127.0.0.1:{}", broker.port);
    let error = PahoTransport::builder(&uri, &unique("anonymous"))
        .connect_timeout(Duration::from_secs(5))
        .build()
        .unwrap_err();
    assert_eq!(error.refused_code(), Some(5), "{error:#?}");
    let text = error.to_string();
    assert!(
        text.contains(&uri) && text.contains("not authorized") && text.contains("policy"),
        "{text}"
    );
}

#[test]
fn the_opt_in_retry_waits_for_a_broker_that_starts_late() {
    let mut broker = LocalBroker::start().unwrap();
    let uri = broker.uri();
    broker.stop().unwrap();
    let (tx, rx) = mpsc::channel();
    let client_id = unique("late");
    let connecting = std::thread::spawn(move || {
        let started = Instant::now();
        let result = PahoTransport::builder(&uri, &client_id)
            .connect_timeout(Duration::from_millis(500))
            .connect_retry(
                ConnectRetry::for_up_to(WAIT)
                    .backoff(Duration::from_millis(100), Duration::from_millis(400)),
            )
            .build();
        tx.send(()).unwrap();
        (result, started.elapsed())
    });
    // The first attempts fail (nothing listens) while the test waits; without a retry, build
    // would have returned by now.
    assert!(
        rx.recv_timeout(Duration::from_millis(800)).is_err(),
        "build returned while no broker was running"
    );
    broker.restart().unwrap();
    rx.recv_timeout(WAIT).unwrap();
    let (result, took) = connecting.join().unwrap();
    let transport = result.unwrap();
    assert!(transport.is_connected());
    assert!(took < WAIT, "{took:?}");
}

#[test]
fn without_the_retry_a_failure_that_needs_a_fix_is_not_retried() {
    let broker = Mosquitto::start("allow_anonymous false");
    let started = Instant::now();
    let error = PahoTransport::builder(
        &format!("tcp://127.0.0.1:{}", broker.port),
        &unique("fix-me"),
    )
    .connect_retry(ConnectRetry::for_up_to(WAIT))
    .build()
    .unwrap_err();
    assert_eq!(error.refused_code(), Some(5));
    assert!(started.elapsed() < WAIT / 2, "{:?}", started.elapsed());
}

/// Log records of `jobs_paho` at warn, for the test that waits for one.
struct Capture(Mutex<Option<Sender<String>>>);

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Warn && metadata.target().starts_with("jobs_paho")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata())
            && let Some(tx) = &*self.0.lock().unwrap()
        {
            let _ = tx.send(record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn warnings() -> Receiver<String> {
    static CAPTURE: OnceLock<Capture> = OnceLock::new();
    let capture = CAPTURE.get_or_init(|| Capture(Mutex::new(None)));
    let _ = log::set_logger(capture);
    log::set_max_level(log::LevelFilter::Warn);
    let (tx, rx) = mpsc::channel();
    *capture.0.lock().unwrap() = Some(tx);
    rx
}

#[test]
fn two_clients_with_one_client_id_are_called_out_by_a_warning() {
    let warnings = warnings();
    let broker = LocalBroker::start().unwrap();
    let client_id = unique("twin");
    let twin = || {
        PahoTransport::builder(&broker.uri(), &client_id)
            .reconnect_backoff(Duration::from_secs(1), Duration::from_secs(1))
            .build()
            .unwrap()
    };
    let _first = twin();
    let _second = twin();
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let warning = warnings
            .recv_timeout(left)
            .expect("a warning about the shared client id");
        // Other tests of this binary log warnings too (a connect retry names the same cause):
        // only this test's client ID counts.
        if warning.contains("same client ID") && warning.contains(&client_id) {
            break;
        }
    }
}

//! The public mosquitto harness itself: ports, pid, restart on the same port, clean-up on drop.

#![allow(clippy::unwrap_used, reason = "test helpers fail the test on bad data")]

use std::net::TcpStream;

use jobs_mock::local_broker::LocalBroker;

#[test]
fn a_local_broker_listens_until_killed_and_restarts_on_the_same_port() {
    let mut broker = LocalBroker::start().unwrap();
    let port = broker.port();
    assert_eq!(broker.uri(), format!("tcp://127.0.0.1:{port}"));
    assert!(broker.pid().is_some());
    assert_eq!(broker.tls_uri("localhost"), None);
    TcpStream::connect(("127.0.0.1", port)).unwrap();

    broker.kill();
    assert_eq!(broker.pid(), None);
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());

    broker.restart().unwrap();
    assert_eq!(broker.port(), port);
    TcpStream::connect(("127.0.0.1", port)).unwrap();
    assert!(broker.log().unwrap().contains("mosquitto"));
}

#[test]
fn dropping_a_local_broker_stops_the_process_and_removes_its_files() {
    let broker = LocalBroker::start().unwrap();
    let port = broker.port();
    let dir = broker.log_path().parent().unwrap().to_owned();
    assert!(dir.exists());

    drop(broker);

    assert!(!dir.exists());
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

#[test]
fn local_broker_and_test_certificates_can_move_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<LocalBroker>();
    assert_send_sync::<jobs_mock::local_broker::TestCertificates>();
}

/// The process state letter of `pid` (`T` = stopped), from `/proc`.
fn process_state(pid: u32) -> char {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after_name = stat.rsplit_once(')').unwrap().1;
    after_name.trim_start().chars().next().unwrap()
}

/// Whether `pid` reaches the `stopped` state (or leaves it) within 5 s; signals are delivered
/// asynchronously, so this spins (yielding) on `/proc`, bounded.
fn becomes_stopped(pid: u32, stopped: bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while std::time::Instant::now() < deadline {
        if (process_state(pid) == 'T') == stopped {
            return true;
        }
        std::thread::yield_now();
    }
    false
}

#[test]
fn a_paused_local_broker_is_stopped_until_resumed() {
    let broker = LocalBroker::start().unwrap();
    let pid = broker.pid().unwrap();
    broker.pause().unwrap();
    assert!(becomes_stopped(pid, true));
    broker.resume().unwrap();
    assert!(becomes_stopped(pid, false));
    TcpStream::connect(("127.0.0.1", broker.port())).unwrap();
}

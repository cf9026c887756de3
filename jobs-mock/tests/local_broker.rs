//! The public mosquitto harness itself: ports, pid, restart on the same port, clean-up on drop.

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

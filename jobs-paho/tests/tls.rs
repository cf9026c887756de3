//! TLS and mutual TLS against mosquitto with `require_certificate true` and throwaway
//! certificates (broker certificate for `localhost` only).

mod common;

use std::time::{Duration, Instant};

use common::{TlsBroker, channel_sink, unique};
use jobs_core::{MqttTransport, QoS};
use jobs_paho::{
    AWS_IOT_ALPN, ConfigError, ConnectError, PahoTransport, PahoTransportBuilder, TlsFailure,
};

const WAIT: Duration = Duration::from_secs(5);

fn tls_builder(broker: &TlsBroker, host: &str) -> PahoTransportBuilder {
    PahoTransport::builder(&broker.tls_uri(host), &unique("tls-device"))
        .connect_timeout(WAIT)
        .operation_timeout(WAIT)
}

#[test]
fn mutual_tls_with_the_right_ca_and_a_device_certificate_connects_and_round_trips() {
    let broker = TlsBroker::start();
    let certs = &broker.certs;
    let transport = tls_builder(&broker, "localhost")
        .ca_file(&certs.ca)
        .client_certificate(&certs.device_cert, &certs.device_key)
        // Mosquitto ignores ALPN; AWS IoT on 443 needs it.
        .alpn_protocols(&[AWS_IOT_ALPN])
        .build()
        .unwrap();
    let (messages, _events) = channel_sink(&transport);
    transport
        .subscribe(
            &["tls/echo"],
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();

    transport
        .publish(
            "tls/echo",
            b"over tls",
            QoS::AtLeastOnce,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();

    let (topic, payload) = messages.recv_timeout(WAIT).unwrap();
    assert_eq!(topic, "tls/echo");
    assert_eq!(payload, b"over tls");
    assert!(transport.is_connected());
}

#[test]
fn connect_without_a_client_certificate_is_refused() {
    let broker = TlsBroker::start();
    let result = tls_builder(&broker, "localhost")
        .ca_file(&broker.certs.ca)
        .build();

    // TLS 1.3: the client finishes its side of the handshake before the broker checks the
    // (missing) certificate, so the refusal alert lands during the handshake (Tls) or just
    // after it (Closed), depending on timing. Both are measured; both mean "refused".
    assert!(
        matches!(
            result,
            Err(ConnectError::Closed { .. }
                | ConnectError::Tls {
                    failure: TlsFailure::ClientCertificate { certificate: None },
                    ..
                })
        ),
        "{result:?}"
    );
}

#[test]
fn connect_with_a_ca_that_did_not_sign_the_broker_certificate_fails_the_handshake() {
    let broker = TlsBroker::start();
    let certs = &broker.certs;
    let result = tls_builder(&broker, "localhost")
        .ca_file(&certs.other_ca)
        .client_certificate(&certs.device_cert, &certs.device_key)
        .build();

    match &result {
        Err(ConnectError::Tls {
            failure: TlsFailure::Untrusted { ca_file, reason },
            ..
        }) => {
            assert_eq!(ca_file.as_deref(), Some(certs.other_ca.as_path()));
            assert!(!reason.is_empty());
        }
        other => panic!("unexpected {other:#?}"),
    }
    let text = result.unwrap_err().to_string();
    assert!(
        text.contains("not trusted by CA file") && text.contains(&broker.tls_uri("localhost")),
        "{text}"
    );
}

#[test]
fn connect_to_a_host_name_missing_from_the_broker_certificate_fails_the_handshake() {
    let broker = TlsBroker::start();
    let certs = &broker.certs;
    // The broker certificate names `localhost` only; 127.0.0.1 is the same broker.
    let result = tls_builder(&broker, "127.0.0.1")
        .ca_file(&certs.ca)
        .client_certificate(&certs.device_cert, &certs.device_key)
        .build();

    match &result {
        Err(ConnectError::Tls {
            failure: TlsFailure::HostName { host },
            ..
        }) => assert_eq!(host, "127.0.0.1"),
        other => panic!("unexpected {other:#?}"),
    }
}

#[test]
fn a_ca_file_that_is_a_directory_or_not_pem_is_named_at_build_before_connecting() {
    let broker = TlsBroker::start();
    let dir = std::env::temp_dir();
    let error = tls_builder(&broker, "localhost")
        .ca_file(&dir)
        .build()
        .unwrap_err();
    assert!(
        matches!(&error, ConnectError::Config(ConfigError::File { path, .. }) if path == &dir),
        "{error:#?}"
    );
    assert!(format!("{error:?}").contains("is a directory"), "{error:?}");

    // The device key is PEM, but not a certificate.
    let error = tls_builder(&broker, "localhost")
        .ca_file(&broker.certs.device_key)
        .build()
        .unwrap_err();
    let text = format!("{error:?}");
    assert!(
        text.contains(&format!("CA file {}", broker.certs.device_key.display()))
            && text.contains("no PEM certificate"),
        "{text}"
    );
}

#[test]
fn a_key_that_does_not_belong_to_the_certificate_is_named_at_build() {
    let broker = TlsBroker::start();
    let certs = &broker.certs;
    // The broker's key with the device's certificate.
    let error = tls_builder(&broker, "localhost")
        .ca_file(&certs.ca)
        .client_certificate(&certs.device_cert, &certs.broker_key)
        .build()
        .unwrap_err();
    let text = format!("{error:?}");
    assert!(
        text.contains("does not belong to the certificate"),
        "{text}"
    );
}

#[test]
fn disabling_hostname_verification_accepts_the_same_mismatched_name() {
    let broker = TlsBroker::start();
    let certs = &broker.certs;
    let transport = tls_builder(&broker, "127.0.0.1")
        .ca_file(&certs.ca)
        .client_certificate(&certs.device_cert, &certs.device_key)
        .danger_disable_hostname_verification()
        .build()
        .unwrap();

    assert!(transport.is_connected());
}

//! What the crate docs say of Paho C's callback mutex, shown on a real mosquitto: Paho holds
//! its process-wide mutex while its callback (and so the sink) runs, so a `publish` from
//! another thread waits until the sink returns, and goes out as soon as it has. The transport
//! contract allows the first (`jobs_core::MessageSink`) and requires the second
//! (`woken_caller_can_publish` in `jobs_mock::conformance`).

#![allow(clippy::unwrap_used, reason = "a failed setup step fails the test")]

mod common;

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{start_broker, unique};
use crossbeam_channel::{Receiver, Sender};
use jobs_core::{ConnectionEvent, MessageSink, MqttTransport, QoS};
use jobs_mock::local_broker::LocalBroker;
use jobs_paho::PahoTransport;

const WAIT: Duration = Duration::from_secs(5);

/// How long a publish must stay blocked while the sink runs for the test to call it waiting.
const HELD: Duration = Duration::from_millis(500);

fn transport(broker: &LocalBroker) -> PahoTransport {
    PahoTransport::builder(&broker.uri(), &unique("mutex"))
        .operation_timeout(WAIT)
        .build()
        .unwrap()
}

/// Says when it is entered, then runs until released (at most `WAIT`).
struct HeldSink {
    entered: Sender<()>,
    release: Receiver<()>,
}

impl MessageSink for HeldSink {
    fn message(&self, _topic: &str, _payload: &[u8]) {
        let _ = self.entered.send(());
        let _ = self.release.recv_timeout(WAIT);
    }

    fn connection(&self, _event: ConnectionEvent) {}
}

#[test]
fn a_publish_from_another_thread_waits_while_the_sink_runs_and_goes_out_once_it_returns() {
    let broker = start_broker();
    let receiver = transport(&broker);
    let (entered_tx, entered) = crossbeam_channel::unbounded();
    let (release, release_rx) = crossbeam_channel::bounded(1);
    receiver
        .set_sink(Arc::new(HeldSink {
            entered: entered_tx,
            release: release_rx,
        }))
        .unwrap();
    let topic = unique("mutex/in");
    receiver
        .subscribe(&[&topic], QoS::AtLeastOnce, Instant::now() + WAIT)
        .unwrap();
    let sender = transport(&broker);
    sender
        .publish(&topic, b"hold", QoS::AtMostOnce, Instant::now() + WAIT)
        .unwrap();
    entered
        .recv_timeout(WAIT)
        .expect("the message reaches the sink");

    thread::scope(|scope| {
        let (done_tx, done) = crossbeam_channel::bounded(1);
        let receiver = &receiver;
        scope.spawn(move || {
            let out = unique("mutex/out");
            let result = receiver.publish(&out, b"x", QoS::AtMostOnce, Instant::now() + WAIT);
            let _ = done_tx.send(result);
        });
        assert!(
            done.recv_timeout(HELD).is_err(),
            "the publish returned while the sink was running: Paho no longer holds its mutex during callbacks; update the jobs-paho docs"
        );
        release.send(()).unwrap();
        let result = done
            .recv_timeout(WAIT)
            .expect("the publish returns once the sink has");
        assert!(result.is_ok(), "{result:?}");
    });
}

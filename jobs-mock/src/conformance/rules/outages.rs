//! The rules about a broker that fails: frozen, gone, back with or without the session.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use jobs_core::{ConnectionEvent, MqttTransport, QoS, TransportError};

use super::{Check, Context, Seen};
use crate::conformance::Capability;
use crate::conformance::probe::Receivers;

/// One operation against a frozen broker, on a thread of its own.
type Operation = fn(&dyn MqttTransport, &str, Instant) -> Result<(), TransportError>;

pub(super) fn deadline_honoured(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, _receivers) = cx.transport()?;
    let operations: [(&str, Operation); 2] = [
        ("QoS 1 publish", |t, topic, deadline| {
            t.publish(topic, b"frozen", QoS::AtLeastOnce, deadline)
        }),
        ("subscribe", |t, topic, deadline| {
            t.subscribe(&[topic], QoS::AtLeastOnce, deadline).map(drop)
        }),
    ];
    for (name, operation) in operations {
        cx.harness
            .freeze()
            .map_err(|e| format!("the harness could not freeze the broker: {e}"))?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let (t, topic) = (Arc::clone(&transport), topic.clone());
        let deadline = Instant::now() + cx.config.frozen_deadline;
        let worker = thread::spawn(move || {
            let result = operation(t.as_ref(), &topic, deadline);
            let _ = tx.send((result, Instant::now()));
        });
        let returned = rx.recv_deadline(deadline + cx.config.slack);
        let thawed = cx.harness.thaw();
        let finished = returned.is_ok();
        let verdict = match returned {
            Ok((Err(TransportError::Timeout | TransportError::ConnectionLost), _)) => Ok(()),
            Ok((Ok(()), _)) => Err(format!(
                "{name} returned Ok while the broker was frozen: it did not wait for the acknowledgement"
            )),
            Ok((Err(e), _)) => Err(format!(
                "{name} against a frozen broker returned {e:?}; expected Timeout"
            )),
            Err(_) => Err(format!(
                "{name} against a frozen broker had not returned {:?} after its deadline",
                cx.config.slack
            )),
        };
        // Bounded: once thawed, a blocked operation finishes; one that does not is left behind.
        if finished || rx.recv_timeout(cx.config.timeout).is_ok() {
            let _ = worker.join();
        }
        thawed.map_err(|e| format!("the harness could not thaw the broker: {e}"))?;
        verdict?;
    }
    Ok(())
}

pub(super) fn connection_lost_reported(cx: &mut Context<'_>) -> Check {
    let (_transport, receivers) = cx.transport()?;
    let result = cx.drop_and_wait(&receivers);
    cx.restore(false)?;
    result
}

/// One operation attempted while disconnected.
type Attempt<'a> = Box<dyn Fn() -> Result<(), TransportError> + 'a>;

pub(super) fn offline_fails_fast(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    if let Err(error) = cx.drop_and_wait(&receivers) {
        cx.restore(false)?;
        return Err(error);
    }
    let result = (|| {
        let operations: [(&str, Attempt<'_>); 3] = [
            (
                "publish",
                Box::new(|| transport.publish(&topic, b"offline", QoS::AtLeastOnce, cx.deadline())),
            ),
            (
                "subscribe",
                Box::new(|| {
                    transport
                        .subscribe(&[&topic], QoS::AtLeastOnce, cx.deadline())
                        .map(drop)
                }),
            ),
            (
                "unsubscribe",
                Box::new(|| transport.unsubscribe(&[&topic], cx.deadline())),
            ),
        ];
        for (name, operation) in operations {
            let started = Instant::now();
            let result = operation();
            let took = started.elapsed();
            match result {
                Err(TransportError::NotConnected) if took <= cx.config.slack => {}
                Err(TransportError::NotConnected) => {
                    return Err(format!("{name} while disconnected took {took:?} to fail"));
                }
                other => {
                    return Err(format!(
                        "{name} while disconnected returned {other:?} after {took:?}; expected NotConnected at once"
                    ));
                }
            }
        }
        Ok(())
    })();
    cx.restore(false)?;
    result
}

pub(super) fn reconnect_without_session(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let session_present = reconnect(cx, &receivers, false)?;
    match session_present {
        Some(true) => {
            return Err("the reconnect was reported with session_present: Some(true), though the broker started a fresh session".into());
        }
        None if cx.harness.supports(Capability::SessionFlag) => {
            return Err("the reconnect was reported with session_present: None, though the transport declares it knows the flag".into());
        }
        _ => {}
    }
    cx.subscribe_granted(&transport, &[&topic])?;
    cx.publish("the transport", &transport, &topic, "after-reconnect")?;
    cx.expect_message(
        &receivers,
        &topic,
        "after-reconnect",
        "operations must work after a reconnect",
    )
}

pub(super) fn reconnect_with_session(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let session_present = reconnect(cx, &receivers, true)?;
    match session_present {
        Some(true) => {}
        None if !cx.harness.supports(Capability::SessionFlag) => {}
        other => {
            return Err(format!(
                "the broker resumed the session but the reconnect was reported with session_present: {other:?}; expected Some(true)"
            ));
        }
    }
    cx.publish("the transport", &transport, &topic, "in-resumed-session")?;
    cx.expect_message(
        &receivers,
        &topic,
        "in-resumed-session",
        "the resumed session keeps its subscriptions",
    )
}

/// Drops the connection, brings the broker back (resuming the session or not) and returns the
/// `session_present` of the `Connected` event the transport reported.
fn reconnect(
    cx: &mut Context<'_>,
    receivers: &Receivers,
    session: bool,
) -> Result<Option<bool>, String> {
    let dropped = cx.drop_and_wait(receivers);
    cx.restore(session)?;
    dropped?;
    match cx.wait_event(receivers, false) {
        Some(ConnectionEvent::Connected { session_present }) => Ok(session_present),
        _ => Err(format!(
            "no Connected event within {:?} of the broker coming back",
            cx.config.timeout
        )),
    }
}

pub(super) fn link_drop_fails_calls_in_flight(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.harness
        .freeze()
        .map_err(|e| format!("the harness could not freeze the broker: {e}"))?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    {
        // A call that waits out its deadline returns well after the slack.
        let deadline = cx.deadline() + cx.config.slack;
        let (t, topic) = (Arc::clone(&transport), topic.clone());
        thread::spawn(move || {
            let result = t.publish(&topic, b"in-flight", QoS::AtLeastOnce, deadline);
            let _ = tx.send((result, Instant::now()));
        });
    }
    let verdict = (|| {
        // The PUBLISH is on its way and the frozen broker will not answer it: drop the link.
        cx.wait_published(&topic)?;
        let dropped_at = Instant::now();
        cx.drop_and_wait(&receivers)?;
        match rx.recv_timeout(cx.config.timeout) {
            Ok((Err(e), at)) if at.saturating_duration_since(dropped_at) > cx.config.slack => {
                Err(format!(
                    "a publish waiting for its PUBACK returned {e:?} only {:?} after the link dropped: fail the calls in flight (ConnectionLost) as soon as the link drops, not at their deadline",
                    at.saturating_duration_since(dropped_at)
                ))
            }
            Ok((Err(TransportError::Timeout), _)) => Err(
                "a publish waiting for its PUBACK returned Timeout when the link dropped: fail the calls in flight with ConnectionLost as soon as the link drops (the link is gone, not slow)".into(),
            ),
            Ok((Err(_), _)) => Ok(()),
            Ok((Ok(()), _)) => Err(
                "a publish returned Ok though the frozen broker never acknowledged it".into(),
            ),
            Err(_) => Err(format!(
                "a publish waiting for its PUBACK had not returned {:?} after the link dropped: fail the calls in flight as soon as the link drops",
                cx.config.timeout
            )),
        }
    })();
    let thawed = cx.harness.thaw();
    cx.restore(false)?;
    thawed.map_err(|e| format!("the harness could not thaw the broker: {e}"))?;
    verdict
}

pub(super) fn nothing_resent_after_timeout(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    let (_peer, heard) = cx.peer(&[&topic])?;
    cx.harness
        .freeze()
        .map_err(|e| format!("the harness could not freeze the broker: {e}"))?;
    let deadline = Instant::now() + cx.config.frozen_deadline;
    let result = transport.publish(&topic, b"timed-out", QoS::AtLeastOnce, deadline);
    let verdict = (|| {
        if let Ok(()) = result {
            return Err(
                "a QoS 1 publish returned Ok while the broker was frozen: it did not wait for the PUBACK".into(),
            );
        }
        cx.drop_and_wait(&receivers)
    })();
    let thawed = cx.harness.thaw();
    cx.restore(false)?;
    thawed.map_err(|e| format!("the harness could not thaw the broker: {e}"))?;
    verdict?;
    if cx.wait_event(&receivers, false).is_none() {
        return Err(format!(
            "no Connected event within {:?} of the broker coming back",
            cx.config.timeout
        ));
    }
    cx.publish("the transport", &transport, &topic, "after-reconnect")?;
    // Whatever the transport resends comes before the marker.
    let mut copies = 0;
    loop {
        match heard.message(cx.config.timeout) {
            Some((_, p)) if p == b"timed-out" => copies += 1,
            Some((_, p)) if p == b"after-reconnect" => break,
            Some((t, p)) => {
                return Err(format!(
                    "unexpected {:?} on {t}",
                    String::from_utf8_lossy(&p)
                ));
            }
            None => {
                return Err(format!(
                    "the peer did not hear the transport's publish after the reconnect within {:?}",
                    cx.config.timeout
                ));
            }
        }
    }
    let (observations, id) = cx.observed()?;
    let sent = observations
        .of(&id)
        .iter()
        .filter(|(_, s)| matches!(s, Seen::Publish { payload, .. } if payload == b"timed-out"))
        .count();
    if sent > 1 || copies > 1 {
        return Err(format!(
            "a publish whose call returned {result:?} was sent again later ({sent} times in all; the peer got it {copies} times): the caller was told it timed out, so never resend it (no retry, no resending after a reconnect, even where MQTT session state would)"
        ));
    }
    Ok(())
}

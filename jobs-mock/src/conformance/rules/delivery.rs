//! The rules about inbound messages: order, duplicates, acknowledgements, size, concurrency,
//! and what the sink may do to the delivery path.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use jobs_core::{MqttTransport, QoS};

use super::{Check, Context, Seen, Transport};
use crate::conformance::probe::Hook;

pub(super) fn messages_in_order(cx: &mut Context<'_>) -> Check {
    const COUNT: usize = 20;
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let (peer, _) = cx.peer(&[])?;
    for n in 0..COUNT {
        cx.publish("the peer", &peer, &topic, &n.to_string())?;
    }
    for n in 0..COUNT {
        cx.expect_message(
            &receivers,
            &topic,
            &n.to_string(),
            "messages must reach the sink in order, each once",
        )?;
    }
    Ok(())
}

pub(super) fn concurrent_publishes(cx: &mut Context<'_>) -> Check {
    const THREADS: usize = 8;
    const EACH: usize = 10;
    let topic = cx.topic("a");
    let (transport, _) = cx.transport()?;
    let (_peer, heard) = cx.peer(&[&topic])?;
    let deadline = cx.deadline();
    let results: Vec<Check> = thread::scope(|scope| {
        let threads: Vec<_> = (0..THREADS)
            .map(|t| {
                let (transport, topic) = (&transport, &topic);
                scope.spawn(move || {
                    for n in 0..EACH {
                        let payload = format!("{t}-{n}");
                        transport
                            .publish(topic, payload.as_bytes(), QoS::AtLeastOnce, deadline)
                            .map_err(|e| {
                                format!(
                                    "publish {n} of thread {t} (of {THREADS} at once) failed: {e:?}"
                                )
                            })?;
                    }
                    Ok(())
                })
            })
            .collect();
        threads
            .into_iter()
            .map(|t| {
                t.join()
                    .unwrap_or_else(|_| Err("a publishing thread panicked".into()))
            })
            .collect()
    });
    results.into_iter().collect::<Result<Vec<()>, String>>()?;
    let mut next = [0usize; THREADS];
    for _ in 0..THREADS * EACH {
        let Some((_, payload)) = heard.message(cx.config.timeout) else {
            return Err(format!(
                "the peer heard {} of {} messages published by {THREADS} threads at once",
                next.iter().sum::<usize>(),
                THREADS * EACH
            ));
        };
        let payload = String::from_utf8_lossy(&payload).into_owned();
        let parsed = payload
            .split_once('-')
            .and_then(|(t, n)| Some((t.parse::<usize>().ok()?, n.parse::<usize>().ok()?)));
        let Some((t, n)) = parsed else {
            return Err(format!("unexpected message {payload:?}"));
        };
        match next.get_mut(t) {
            Some(expected) if *expected == n => *expected += 1,
            _ => {
                return Err(format!(
                    "message {payload:?} arrived out of its thread's order or twice"
                ));
            }
        }
    }
    Ok(())
}

pub(super) fn large_messages(cx: &mut Context<'_>) -> Check {
    /// AWS IoT Core's limit on a PUBLISH payload.
    const SIZE: usize = 128 * 1024;
    let (inbound, outbound) = (cx.topic("in"), cx.topic("out"));
    let payload: Vec<u8> = (0..SIZE).map(|i| b'a' + (i % 26) as u8).collect();
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&inbound])?;
    let (peer, heard) = cx.peer(&[&outbound])?;
    let deadline = cx.deadline();
    peer.publish(&inbound, &payload, QoS::AtLeastOnce, deadline)
        .map_err(|e| format!("the peer's {SIZE}-byte publish failed: {e:?}"))?;
    match receivers.message(cx.config.timeout) {
        Some((_, p)) if p == payload => {}
        Some((_, p)) => {
            return Err(format!(
                "a {SIZE}-byte message arrived as {} bytes",
                p.len()
            ));
        }
        None => {
            return Err(format!(
                "a {SIZE}-byte message did not arrive within {:?}",
                cx.config.timeout
            ));
        }
    }
    transport
        .publish(&outbound, &payload, QoS::AtLeastOnce, deadline)
        .map_err(|e| format!("a {SIZE}-byte publish failed: {e:?}"))?;
    match heard.message(cx.config.timeout) {
        Some((_, p)) if p == payload => Ok(()),
        Some((_, p)) => Err(format!(
            "a {SIZE}-byte publish arrived as {} bytes",
            p.len()
        )),
        None => Err(format!(
            "a {SIZE}-byte publish did not reach the peer within {:?}",
            cx.config.timeout
        )),
    }
}

pub(super) fn woken_caller_can_publish(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let helper_topic = cx.topic("from-helper");
    let (slack, timeout) = (cx.config.slack, cx.config.timeout);
    let (request_tx, request_rx) = crossbeam_channel::bounded::<Transport>(1);
    let (go_tx, go_rx) = crossbeam_channel::bounded::<()>(1);
    let (cancel_tx, cancel_rx) = crossbeam_channel::bounded::<()>(0);
    let (result_tx, result_rx) = crossbeam_channel::bounded::<Check>(1);
    // jobs-core's sink wakes the caller a reply was for, and that caller's next step is often
    // a publish. Here the sink wakes a helper and returns at once; the helper then publishes
    // (QoS 0, short deadline) while no further message arrives. A transport whose delivery
    // path keeps a lock its `publish` needs after the sink returned (a delivery loop holding
    // it while it waits for the next packet) makes that publish miss its deadline. The test
    // ends the helper by dropping `cancel_tx`.
    let helper = thread::spawn(move || {
        let Ok(transport) = request_rx.recv() else {
            return;
        };
        crossbeam_channel::select! {
            recv(go_rx) -> go => if go.is_ok() {
                let deadline = Instant::now() + slack;
                let outcome = transport.publish(&helper_topic, b"x", QoS::AtMostOnce, deadline);
                let late = Instant::now().checked_duration_since(deadline + slack);
                let _ = result_tx.send(match (outcome, late) {
                    (Ok(()), None) => Ok(()),
                    (_, Some(late)) => Err(format!(
                        "a publish by a thread the sink woke returned {late:?} after its deadline: the transport still held a lock publish needs after the sink returned"
                    )),
                    (Err(e), None) => Err(format!(
                        "a publish by a thread the sink woke failed: {e:?}"
                    )),
                });
            },
            recv(cancel_rx) -> _ => {}
        }
    });
    let hook: Hook = Box::new(move || {
        let _ = go_tx.try_send(());
    });
    let result = (|| {
        let (transport, _receivers) = cx.transport_with_hook(Some(hook))?;
        cx.subscribe_granted(&transport, &[&topic])?;
        let _ = request_tx.send(Arc::clone(&transport));
        let (peer, _) = cx.peer(&[])?;
        cx.publish("the peer", &peer, &topic, "wake-the-sink")?;
        match result_rx.recv_timeout(timeout * 2) {
            Ok(outcome) => outcome,
            Err(_) => Err(format!(
                "a publish by a thread the sink woke did not return within {:?} (or no message reached the sink): once the sink has returned, hold no lock that publish needs (a delivery loop must not keep one while it waits for the next packet)",
                timeout * 2
            )),
        }
    })();
    drop(request_tx);
    drop(cancel_tx);
    let _ = helper.join();
    result
}

pub(super) fn no_duplicate_deliveries(cx: &mut Context<'_>) -> Check {
    const COUNT: usize = 5;
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let (peer, _) = cx.peer(&[])?;
    for n in 0..COUNT {
        cx.publish("the peer", &peer, &topic, &n.to_string())?;
    }
    for n in 0..COUNT {
        cx.expect_message(&receivers, &topic, &n.to_string(), "each message once")?;
    }
    // Idle: nothing may arrive (the broker sends nothing more).
    if let Some((t, p)) = receivers.message(cx.config.idle) {
        return Err(format!(
            "{:?} on {t} reached the sink again while the link was idle: deliver each inbound PUBLISH once",
            String::from_utf8_lossy(&p)
        ));
    }
    cx.publish("the peer", &peer, &topic, "after-idle")?;
    cx.expect_message(
        &receivers,
        &topic,
        "after-idle",
        "each message once, also after an idle time",
    )
}

pub(super) fn inbound_acknowledged(cx: &mut Context<'_>) -> Check {
    /// More than any broker's window of unacknowledged QoS 1 messages (mosquitto: 20).
    const COUNT: usize = 100;
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let (peer, _) = cx.peer(&[])?;
    for n in 0..COUNT {
        cx.publish("the peer", &peer, &topic, &n.to_string())?;
    }
    for n in 0..COUNT {
        if cx
            .expect_message(&receivers, &topic, &n.to_string(), "in order")
            .is_err()
        {
            let acks = match cx.harness.observations() {
                Some(observations) => format!(
                    " (it sent {} PUBACKs)",
                    observations
                        .of(&cx.device)
                        .iter()
                        .filter(|(_, s)| matches!(s, Seen::PubAck))
                        .count()
                ),
                None => String::new(),
            };
            return Err(format!(
                "the transport received {n} of {COUNT} QoS 1 messages{acks}: the broker stops delivering once its window of unacknowledged messages is full; send a PUBACK for every inbound QoS 1 PUBLISH"
            ));
        }
    }
    Ok(())
}

pub(super) fn sink_panic_contained(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let panicked = Arc::new(AtomicBool::new(false));
    let hook: Hook = {
        let panicked = Arc::clone(&panicked);
        Box::new(move || {
            if !panicked.swap(true, Ordering::SeqCst) {
                panic!("conformance: a sink that panics (rule sink_panic_contained)");
            }
        })
    };
    let (transport, receivers) = cx.transport_with_hook(Some(hook))?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &topic, "panics")?;
    cx.publish("the peer", &peer, &topic, "after-the-panic")?;
    cx.expect_message(
        &receivers,
        &topic,
        "after-the-panic",
        "the sink panicked on the message before: catch a panic of the sink (catch_unwind), log it, and keep delivering",
    )
}

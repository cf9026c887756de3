//! The rules checked on the broker's side of the wire: QoS, RETAIN, packet IDs, keep-alive.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jobs_core::{ConnectionEvent, QoS, SubscribeOutcome, TransportError};

use super::{Check, Context, Seen};

fn qos_name(qos: QoS) -> &'static str {
    match qos {
        QoS::AtMostOnce => "QoS 0",
        QoS::AtLeastOnce => "QoS 1",
    }
}

fn wire_qos(qos: QoS) -> u8 {
    match qos {
        QoS::AtMostOnce => 0,
        QoS::AtLeastOnce => 1,
    }
}

pub(super) fn qos_as_asked(cx: &mut Context<'_>) -> Check {
    let (transport, _) = cx.transport()?;
    let (observations, id) = cx.observed()?;
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        let name = qos_name(qos);
        let filter = cx.topic(&format!("sub-qos{}", wire_qos(qos)));
        let outcomes = transport
            .subscribe(&[&filter], qos, cx.deadline())
            .map_err(|e| format!("subscribe at {name} failed: {e:?}"))?;
        let requested = observations.of(&id).into_iter().find_map(|(_, s)| match s {
            Seen::Subscribe { filters } => filters.into_iter().find(|(f, _)| *f == filter),
            _ => None,
        });
        match requested {
            None => {
                return Err(format!(
                    "subscribe at {name} returned {outcomes:?}, but the broker received no SUBSCRIBE for the filter"
                ));
            }
            Some((_, sent)) if sent != wire_qos(qos) => {
                return Err(format!(
                    "subscribe at {name} reached the broker as QoS {sent} (reported {outcomes:?}): request the QoS the caller asked for (at QoS 0 a message sent during an outage is lost)"
                ));
            }
            Some(_) => {}
        }
        // mosquitto and the in-memory broker grant what was asked.
        if outcomes != [SubscribeOutcome::Granted(qos)] {
            return Err(format!(
                "subscribe at {name} was granted {name} by the broker but reported as {outcomes:?}: report the QoS of the SUBACK"
            ));
        }
    }
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        let name = qos_name(qos);
        let topic = cx.topic(&format!("pub-qos{}", wire_qos(qos)));
        transport
            .publish(&topic, b"qos", qos, cx.deadline())
            .map_err(|e| format!("a {name} publish failed: {e:?}"))?;
        cx.wait_published(&topic)?;
        let sent = observations.of(&id).into_iter().find_map(|(_, s)| match s {
            Seen::Publish { topic: t, qos, .. } if t == topic => Some(qos),
            _ => None,
        });
        if let Some(sent) = sent
            && sent != wire_qos(qos)
        {
            return Err(format!(
                "a {name} publish reached the broker as QoS {sent}: send it with the QoS the caller asked for (QoS 1 is what makes the broker acknowledge it)"
            ));
        }
    }
    Ok(())
}

pub(super) fn no_retain(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, _) = cx.transport()?;
    for qos in [QoS::AtLeastOnce, QoS::AtMostOnce] {
        transport
            .publish(&topic, b"not-retained", qos, cx.deadline())
            .map_err(|e| format!("a {} publish failed: {e:?}", qos_name(qos)))?;
    }
    cx.wait_published(&topic)?;
    let (observations, id) = cx.observed()?;
    let retained = observations
        .of(&id)
        .into_iter()
        .any(|(_, s)| matches!(s, Seen::Publish { topic: t, retain: true, .. } if t == topic));
    if retained {
        return Err(format!(
            "a publish on {topic} reached the broker with RETAIN set: never set RETAIN (the broker would hand the request to every later subscriber)"
        ));
    }
    // A subscriber arriving later gets nothing retained: the marker comes first.
    let (peer, heard) = cx.peer(&[&topic])?;
    cx.publish("the peer", &peer, &topic, "marker")?;
    cx.expect_message(
        &heard,
        &topic,
        "marker",
        "a later subscriber must get no retained message",
    )
}

pub(super) fn acks_matched_by_packet_id(cx: &mut Context<'_>) -> Check {
    let (held, free) = (cx.topic("held"), cx.topic("free"));
    let (transport, _) = cx.transport()?;
    cx.harness
        .hold_acks(&held)
        .map_err(|e| format!("the harness could not hold acknowledgements: {e}"))?;
    let (held_tx, held_rx) = crossbeam_channel::bounded(1);
    {
        // Long enough to outlast the other publish and the release.
        let deadline = cx.deadline() + cx.config.timeout;
        let (t, topic) = (Arc::clone(&transport), held.clone());
        thread::spawn(move || {
            let _ = held_tx.send(t.publish(&topic, b"held", QoS::AtLeastOnce, deadline));
        });
    }
    let verdict = (|| {
        cx.wait_published(&held)?;
        let (free_tx, free_rx) = crossbeam_channel::bounded(1);
        {
            let (t, topic, deadline) = (Arc::clone(&transport), free.clone(), cx.deadline());
            thread::spawn(move || {
                let _ = free_tx.send(t.publish(&topic, b"free", QoS::AtLeastOnce, deadline));
            });
        }
        let completed_wrong_call = |result: &Result<(), TransportError>| {
            format!(
                "the publish on {held}, whose PUBACK the broker still held, returned {result:?} when the PUBACK of a later publish arrived: complete each call by the packet ID of its PUBACK, not in order"
            )
        };
        crossbeam_channel::select! {
            recv(held_rx) -> result => {
                return Err(completed_wrong_call(&result.unwrap_or(Err(TransportError::ConnectionLost))));
            }
            recv(free_rx) -> result => match result {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(format!(
                    "a publish on {free} failed with {e:?} while an earlier publish waited for its held PUBACK: each call waits for its own acknowledgement"
                )),
                Err(_) => return Err("the publishing thread ended without a result".into()),
            },
            default(cx.config.timeout) => return Err(format!(
                "a publish on {free} did not return within {:?} while an earlier publish waited for its held PUBACK: each call waits for its own acknowledgement",
                cx.config.timeout
            )),
        }
        if let Ok(result) = held_rx.try_recv() {
            return Err(completed_wrong_call(&result));
        }
        Ok(())
    })();
    cx.harness
        .release_acks()
        .map_err(|e| format!("the harness could not release acknowledgements: {e}"))?;
    verdict?;
    match held_rx.recv_timeout(cx.config.timeout) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(format!(
            "the publish on {held} failed with {e:?} once its PUBACK was released"
        )),
        Err(_) => Err(format!(
            "the publish on {held} had not returned {:?} after its PUBACK was released",
            cx.config.timeout
        )),
    }
}

pub(super) fn keep_alive_while_idle(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let (observations, id) = cx.observed()?;
    let keep_alive = observations.of(&id).into_iter().find_map(|(_, s)| match s {
        Seen::Connect { keep_alive } => Some(keep_alive),
        _ => None,
    });
    let Some(keep_alive) = keep_alive else {
        return Err("the harness saw no CONNECT from the transport".into());
    };
    if keep_alive.is_zero() {
        return Err("the transport connected with keep-alive 0 (off): a link that dies silently is then never noticed; use a keep-alive".into());
    }
    if keep_alive > cx.config.max_keep_alive {
        return Err(format!(
            "the transport connected with a keep-alive of {keep_alive:?}; the rule idles for {} periods, so connect transports under test with one of at most {:?} (2 s costs the rule 6 s)",
            cx.config.keep_alive_periods, cx.config.max_keep_alive
        ));
    }
    let started = Instant::now();
    let idle = keep_alive * cx.config.keep_alive_periods;
    let lost = receivers
        .event(idle, |e| matches!(e, ConnectionEvent::ConnectionLost))
        .is_some();
    // The longest silence of the transport since the idle time started.
    let mut last = started;
    let mut silence = Duration::ZERO;
    for (at, _) in observations
        .of(&id)
        .into_iter()
        .filter(|(at, _)| *at > started)
    {
        silence = silence.max(at.saturating_duration_since(last));
        last = at;
    }
    silence = silence.max(Instant::now().saturating_duration_since(last));
    if silence > keep_alive * 3 / 2 {
        return Err(format!(
            "the idle transport sent nothing for {silence:?} with a keep-alive of {keep_alive:?}{}: send PINGREQ whenever nothing was sent for a keep-alive period (the broker closes the connection after 1.5 × keep-alive)",
            if lost {
                " and the broker closed the connection"
            } else {
                ""
            }
        ));
    }
    if lost {
        return Err(format!(
            "the connection dropped while idle for {:?} (keep-alive {keep_alive:?})",
            started.elapsed()
        ));
    }
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &topic, "after-idle")?;
    cx.expect_message(
        &receivers,
        &topic,
        "after-idle",
        "the link must stay up while idle",
    )
}

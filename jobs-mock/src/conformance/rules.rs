//! The checks, one function per [`Rule`]. Each returns `Err(what went wrong)`; the caller puts
//! the rule's name in front.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::Instant;

use jobs_core::{ConnectionEvent, MqttTransport, QoS, SubscribeOutcome, TransportError};

use super::probe::{Hook, Probe, Receivers};
use super::{Capability, Config, Harness, Rule};

type Check = Result<(), String>;
type Transport = Arc<dyn MqttTransport>;

/// What one check works with: the harness, the bounds, and names unique to the check.
pub(crate) struct Context<'a> {
    harness: &'a mut dyn Harness,
    config: &'a Config,
    rule: Rule,
    prefix: String,
    clients: u32,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        harness: &'a mut dyn Harness,
        config: &'a Config,
        rule: Rule,
        prefix: &str,
    ) -> Self {
        Self {
            harness,
            config,
            rule,
            prefix: prefix.to_owned(),
            clients: 0,
        }
    }

    fn topic(&self, name: &str) -> String {
        format!("{}/{}/{name}", self.prefix, self.rule.name())
    }

    fn client_id(&mut self, role: &str) -> String {
        self.clients += 1;
        format!("{}-{role}-{}", self.prefix, self.clients)
    }

    fn deadline(&self) -> Instant {
        Instant::now() + self.config.timeout
    }

    /// A transport under test with a probe installed.
    fn transport(&mut self) -> Result<(Transport, Receivers), String> {
        self.transport_with_hook(None)
    }

    fn transport_with_hook(
        &mut self,
        hook: Option<Hook>,
    ) -> Result<(Transport, Receivers), String> {
        let id = self.client_id("device");
        let transport: Transport = Arc::from(self.harness.transport(&id).map_err(|e| {
            format!(
                "the harness could not connect a transport: {}",
                chain(e.as_ref())
            )
        })?);
        let (probe, receivers) = Probe::new(hook);
        transport
            .set_sink(probe)
            .map_err(|e| format!("set_sink on a fresh transport failed: {e:?}"))?;
        Ok((transport, receivers))
    }

    /// A peer with a probe installed, subscribed to `filters` (if any).
    fn peer(&mut self, filters: &[&str]) -> Result<(Transport, Receivers), String> {
        let id = self.client_id("peer");
        let peer: Transport = Arc::from(self.harness.peer(&id).map_err(|e| {
            format!(
                "the harness could not connect a peer: {}",
                chain(e.as_ref())
            )
        })?);
        let (probe, receivers) = Probe::new(None);
        peer.set_sink(probe)
            .map_err(|e| format!("set_sink on the peer failed: {e:?}"))?;
        if !filters.is_empty() {
            let outcomes = peer
                .subscribe(filters, QoS::AtLeastOnce, self.deadline())
                .map_err(|e| format!("the peer could not subscribe: {e:?}"))?;
            if outcomes
                .iter()
                .any(|o| !matches!(o, SubscribeOutcome::Granted(_)))
            {
                return Err(format!(
                    "the broker refused the peer's filters: {outcomes:?}"
                ));
            }
        }
        Ok((peer, receivers))
    }

    /// `transport.subscribe(filters)`, which must grant every filter.
    fn subscribe_granted(&self, transport: &Transport, filters: &[&str]) -> Check {
        let outcomes = transport
            .subscribe(filters, QoS::AtLeastOnce, self.deadline())
            .map_err(|e| format!("subscribe to {filters:?} failed: {e:?}"))?;
        if outcomes.len() != filters.len()
            || outcomes
                .iter()
                .any(|o| !matches!(o, SubscribeOutcome::Granted(_)))
        {
            return Err(format!(
                "subscribe to {filters:?} returned {outcomes:?}; expected one Granted per filter"
            ));
        }
        Ok(())
    }

    fn publish(&self, who: &str, transport: &Transport, topic: &str, payload: &str) -> Check {
        transport
            .publish(topic, payload.as_bytes(), QoS::AtLeastOnce, self.deadline())
            .map_err(|e| format!("{who}'s QoS 1 publish on {topic} failed: {e:?}"))
    }

    /// The next message must be `payload` on `topic`.
    fn expect_message(
        &self,
        receivers: &Receivers,
        topic: &str,
        payload: &str,
        why: &str,
    ) -> Check {
        match receivers.message(self.config.timeout) {
            Some((t, p)) if t == topic && p == payload.as_bytes() => Ok(()),
            Some((t, p)) => Err(format!(
                "expected {payload:?} on {topic}, got {:?} on {t} ({why})",
                String::from_utf8_lossy(&p)
            )),
            None => Err(format!(
                "no message {payload:?} on {topic} within {:?} ({why})",
                self.config.timeout
            )),
        }
    }

    fn wait_event(&self, receivers: &Receivers, lost: bool) -> Option<ConnectionEvent> {
        receivers.event(self.config.timeout, |e| match e {
            ConnectionEvent::ConnectionLost => lost,
            _ => !lost,
        })
    }

    /// Drops every connection and waits until the transport reports `ConnectionLost`.
    fn drop_and_wait(&mut self, receivers: &Receivers) -> Check {
        self.harness
            .drop_connections()
            .map_err(|e| format!("the harness could not drop the connections: {e}"))?;
        match self.wait_event(receivers, true) {
            Some(_) => Ok(()),
            None => Err(format!(
                "no ConnectionLost reached the sink within {:?} of the connection dropping",
                self.config.timeout
            )),
        }
    }

    /// Restores the connections after a check, whatever it found.
    fn restore(&mut self, session_present: bool) -> Check {
        self.harness
            .restore_connections(session_present)
            .map_err(|e| format!("the harness could not restore the connections: {e}"))
    }
}

pub(crate) fn check(context: &mut Context<'_>) -> Check {
    match context.rule {
        Rule::OneSink => one_sink(context),
        Rule::SubscribeAcknowledged => subscribe_acknowledged(context),
        Rule::SubscribeOutcomePerFilter => subscribe_outcome_per_filter(context),
        Rule::RefusedFilterReported => refused_filter_reported(context),
        Rule::PublishAcknowledged => publish_acknowledged(context),
        Rule::MessagesInOrder => messages_in_order(context),
        Rule::UnsubscribeAcknowledged => unsubscribe_acknowledged(context),
        Rule::SinkCalledWithoutTransportLocks => sink_called_without_transport_locks(context),
        Rule::ExpiredDeadlineSendsNothing => expired_deadline_sends_nothing(context),
        Rule::DeadlineHonoured => deadline_honoured(context),
        Rule::ConnectionLostReported => connection_lost_reported(context),
        Rule::OfflineFailsFast => offline_fails_fast(context),
        Rule::ReconnectWithoutSession => reconnect_without_session(context),
        Rule::ReconnectWithSession => reconnect_with_session(context),
        Rule::DropEndsDelivery => drop_ends_delivery(context),
    }
}

fn one_sink(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, first) = cx.transport()?;
    let (second_probe, second) = Probe::new(None);
    match transport.set_sink(second_probe) {
        Err(TransportError::SinkInstalled) => {}
        Ok(()) => {
            return Err("a second set_sink succeeded; it must fail with SinkInstalled".into());
        }
        Err(e) => {
            return Err(format!(
                "a second set_sink failed with {e:?}, not SinkInstalled"
            ));
        }
    }
    cx.subscribe_granted(&transport, &[&topic])?;
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &topic, "to-the-first-sink")?;
    cx.expect_message(
        &first,
        &topic,
        "to-the-first-sink",
        "the first sink must stay installed",
    )?;
    if second.messages.try_recv().is_ok() {
        return Err("the refused second sink received a message".into());
    }
    Ok(())
}

fn subscribe_acknowledged(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    let (peer, _) = cx.peer(&[])?;
    cx.subscribe_granted(&transport, &[&topic])?;
    cx.publish("the peer", &peer, &topic, "after-suback")?;
    cx.expect_message(
        &receivers,
        &topic,
        "after-suback",
        "published after subscribe returned: did subscribe return before the broker's SUBACK?",
    )
}

fn subscribe_outcome_per_filter(cx: &mut Context<'_>) -> Check {
    let topics = [cx.topic("a"), cx.topic("b"), cx.topic("c")];
    let filters: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (transport, receivers) = cx.transport()?;
    let (peer, _) = cx.peer(&[])?;
    cx.subscribe_granted(&transport, &filters)?;
    for topic in &filters {
        cx.publish("the peer", &peer, topic, "on-each-filter")?;
        cx.expect_message(
            &receivers,
            topic,
            "on-each-filter",
            "every filter must be active",
        )?;
    }
    Ok(())
}

fn refused_filter_reported(cx: &mut Context<'_>) -> Check {
    let Some(refused) = cx.harness.refused_filter() else {
        return Err("the harness declares refuse_filter but gave no filter".into());
    };
    let (a, b) = (cx.topic("a"), cx.topic("b"));
    let (transport, receivers) = cx.transport()?;
    let outcomes = transport
        .subscribe(&[&a, &refused, &b], QoS::AtLeastOnce, cx.deadline())
        .map_err(|e| {
            format!("a SUBSCRIBE with one refused filter failed as a whole ({e:?}); expected Refused for that filter")
        })?;
    match outcomes.as_slice() {
        [
            SubscribeOutcome::Granted(_),
            SubscribeOutcome::Refused,
            SubscribeOutcome::Granted(_),
        ] => {}
        other => {
            return Err(format!(
                "subscribe to [granted, {refused}, granted] returned {other:?}; expected [Granted, Refused, Granted]"
            ));
        }
    }
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &b, "after-refusal")?;
    cx.expect_message(
        &receivers,
        &b,
        "after-refusal",
        "the granted filters must be active",
    )
}

fn publish_acknowledged(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, _) = cx.transport()?;
    let (_peer, heard) = cx.peer(&[&topic])?;
    cx.publish("the transport", &transport, &topic, "qos1")?;
    cx.expect_message(
        &heard,
        &topic,
        "qos1",
        "a QoS 1 publish that returned Ok must have reached the broker",
    )?;
    transport
        .publish(&topic, b"qos0", QoS::AtMostOnce, cx.deadline())
        .map_err(|e| format!("QoS 0 publish failed: {e:?}"))?;
    cx.expect_message(
        &heard,
        &topic,
        "qos0",
        "a QoS 0 publish that returned Ok must have been sent",
    )
}

fn messages_in_order(cx: &mut Context<'_>) -> Check {
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

fn unsubscribe_acknowledged(cx: &mut Context<'_>) -> Check {
    let (a, b) = (cx.topic("a"), cx.topic("b"));
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&a, &b])?;
    transport
        .unsubscribe(&[&a], cx.deadline())
        .map_err(|e| format!("unsubscribe failed: {e:?}"))?;
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &a, "after-unsuback")?;
    cx.publish("the peer", &peer, &b, "marker")?;
    cx.expect_message(
        &receivers,
        &b,
        "marker",
        "a message on a filter unsubscribed before it was published must not arrive",
    )
}

fn sink_called_without_transport_locks(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let helper_topic = cx.topic("from-helper");
    let (slack, timeout) = (cx.config.slack, cx.config.timeout);
    let (request_tx, request_rx) = crossbeam_channel::bounded::<Transport>(1);
    let (result_tx, result_rx) = crossbeam_channel::bounded::<Check>(1);
    let (done_tx, done_rx) = crossbeam_channel::bounded::<Instant>(1);
    // The helper publishes (QoS 0, short deadline) while the sink waits for it: a transport
    // that holds a lock its publish needs while calling the sink makes it miss its deadline.
    let helper_topic_for_helper = helper_topic.clone();
    let helper = thread::spawn(move || {
        if let Ok(transport) = request_rx.recv_timeout(timeout) {
            let deadline = Instant::now() + slack;
            let _ = transport.publish(&helper_topic_for_helper, b"x", QoS::AtMostOnce, deadline);
            let _ = done_tx.send(deadline);
        }
    });
    let fired = AtomicBool::new(false);
    let hook_result = result_tx.clone();
    let hook: Hook = Box::new(move || {
        if fired.swap(true, Ordering::SeqCst) {
            return;
        }
        let outcome = match done_rx.recv_timeout(timeout) {
            Ok(deadline) => match Instant::now().checked_duration_since(deadline + slack) {
                Some(late) => Err(format!(
                    "a publish from another thread, made while the sink ran, returned {late:?} too late: the sink is called with a lock publish needs"
                )),
                None => Ok(()),
            },
            Err(_) => Err(format!(
                "a publish from another thread, made while the sink ran, did not return within {timeout:?}: the sink is called with a lock publish needs"
            )),
        };
        let _ = hook_result.try_send(outcome);
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
                "no message reached the sink within {:?}",
                timeout * 2
            )),
        }
    })();
    drop(request_tx);
    drop(result_tx);
    let _ = helper.join();
    result
}

fn expired_deadline_sends_nothing(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let other = cx.topic("b");
    let (transport, _) = cx.transport()?;
    let (_peer, heard) = cx.peer(&[&topic])?;
    let expired = Instant::now();
    match transport.publish(&topic, b"after-deadline", QoS::AtLeastOnce, expired) {
        Err(TransportError::Timeout) => {}
        other => {
            return Err(format!(
                "publish with an expired deadline returned {other:?}; expected Timeout with nothing sent"
            ));
        }
    }
    cx.publish("the transport", &transport, &topic, "in-time")?;
    cx.expect_message(
        &heard,
        &topic,
        "in-time",
        "a publish whose deadline was over must send nothing",
    )?;
    match transport.subscribe(&[&other], QoS::AtLeastOnce, expired) {
        Err(TransportError::Timeout) => {}
        r => {
            return Err(format!(
                "subscribe with an expired deadline returned {r:?}; expected Timeout"
            ));
        }
    }
    match transport.unsubscribe(&[&other], expired) {
        Err(TransportError::Timeout) => Ok(()),
        r => Err(format!(
            "unsubscribe with an expired deadline returned {r:?}; expected Timeout"
        )),
    }
}

/// One operation against a frozen broker, on a thread of its own.
type Operation = fn(&dyn MqttTransport, &str, Instant) -> Result<(), TransportError>;

fn deadline_honoured(cx: &mut Context<'_>) -> Check {
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

fn connection_lost_reported(cx: &mut Context<'_>) -> Check {
    let (_transport, receivers) = cx.transport()?;
    let result = cx.drop_and_wait(&receivers);
    cx.restore(false)?;
    result
}

/// One operation attempted while disconnected.
type Attempt<'a> = Box<dyn Fn() -> Result<(), TransportError> + 'a>;

fn offline_fails_fast(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.drop_and_wait(&receivers)?;
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

fn reconnect_without_session(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let dropped = cx.drop_and_wait(&receivers);
    cx.restore(false)?;
    dropped?;
    let session_present = match cx.wait_event(&receivers, false) {
        Some(ConnectionEvent::Connected { session_present }) => session_present,
        _ => {
            return Err(format!(
                "no Connected event within {:?} of the broker coming back",
                cx.config.timeout
            ));
        }
    };
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

fn reconnect_with_session(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    let dropped = cx.drop_and_wait(&receivers);
    cx.restore(true)?;
    dropped?;
    let session_present = match cx.wait_event(&receivers, false) {
        Some(ConnectionEvent::Connected { session_present }) => session_present,
        _ => {
            return Err(format!(
                "no Connected event within {:?} of the broker coming back",
                cx.config.timeout
            ));
        }
    };
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

fn drop_ends_delivery(cx: &mut Context<'_>) -> Check {
    let topic = cx.topic("a");
    let (transport, receivers) = cx.transport()?;
    cx.subscribe_granted(&transport, &[&topic])?;
    drop(transport);
    if receivers.dropped.recv_timeout(cx.config.timeout).is_err() {
        return Err(format!(
            "the sink was not dropped within {:?} of dropping the transport's last handle",
            cx.config.timeout
        ));
    }
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &topic, "after-drop")?;
    if receivers.messages.try_recv().is_ok() {
        return Err("the sink received a message after the transport was dropped".into());
    }
    Ok(())
}

/// An error and its sources, `: `-separated.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

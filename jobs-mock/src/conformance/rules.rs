//! The checks, one function per [`Rule`]. Each returns `Err(what went wrong)`; the caller puts
//! the rule's name in front.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use jobs_core::{ConnectionEvent, MqttTransport, QoS, SubscribeOutcome, TransportError};

mod outages;

use outages::{
    connection_lost_reported, deadline_honoured, offline_fails_fast, reconnect_with_session,
    reconnect_without_session,
};

use super::probe::{Hook, Probe, Receivers};
use super::{Config, Harness, Rule};

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
        Rule::ConcurrentPublishes => concurrent_publishes(context),
        Rule::LargeMessages => large_messages(context),
        Rule::UnsubscribeAcknowledged => unsubscribe_acknowledged(context),
        Rule::WokenCallerCanPublish => woken_caller_can_publish(context),
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

fn concurrent_publishes(cx: &mut Context<'_>) -> Check {
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

fn large_messages(cx: &mut Context<'_>) -> Check {
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

fn woken_caller_can_publish(cx: &mut Context<'_>) -> Check {
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
                "a publish by a thread the sink woke did not return within {:?} (or no message reached the sink)",
                timeout * 2
            )),
        }
    })();
    drop(request_tx);
    drop(cancel_tx);
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

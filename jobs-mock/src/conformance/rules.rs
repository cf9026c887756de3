//! The checks, one function per [`Rule`]. Each returns `Err(what went wrong)`; the caller puts
//! the rule's name in front.

use std::sync::Arc;
use std::thread;
use std::time::Instant;

use jobs_core::{ConnectionEvent, MqttTransport, QoS, SubscribeOutcome, TransportError};

mod delivery;
mod outages;
mod wire;

use delivery::{
    concurrent_publishes, inbound_acknowledged, large_messages, messages_in_order,
    no_duplicate_deliveries, sink_panic_contained, woken_caller_can_publish,
};
use outages::{
    connection_lost_reported, deadline_honoured, link_drop_fails_calls_in_flight,
    nothing_resent_after_timeout, offline_fails_fast, reconnect_with_session,
    reconnect_without_session,
};
use wire::{acks_matched_by_packet_id, keep_alive_while_idle, no_retain, qos_as_asked};

use super::observe::{Observations, Seen};
use super::probe::{Hook, Probe, Receivers};
use super::watchdog::{Alarm, Watched};
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
    alarm: Arc<Alarm>,
    /// The client ID of the latest transport under test.
    device: String,
}

impl<'a> Context<'a> {
    pub(crate) fn new(
        harness: &'a mut dyn Harness,
        config: &'a Config,
        rule: Rule,
        prefix: &str,
        alarm: Arc<Alarm>,
    ) -> Self {
        Self {
            harness,
            config,
            rule,
            prefix: prefix.to_owned(),
            clients: 0,
            alarm,
            device: String::new(),
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

    fn watch(&self, transport: Box<dyn MqttTransport>, who: &str) -> Watched {
        Watched::new(transport, who, self.config.grace, Arc::clone(&self.alarm))
    }

    /// What the broker received from the latest transport under test (needs
    /// [`Capability::Observe`]).
    fn observed(&self) -> Result<(Observations, String), String> {
        match self.harness.observations() {
            Some(observations) => Ok((observations, self.device.clone())),
            None => Err("the harness declares observe but gave no observations".into()),
        }
    }

    /// Waits until the broker received a PUBLISH on `topic` from the latest transport.
    fn wait_published(&self, topic: &str) -> Check {
        let (observations, id) = self.observed()?;
        let seen = observations.wait(&id, self.config.timeout, |seen| {
            seen.iter()
                .any(|(_, s)| matches!(s, Seen::Publish { topic: t, .. } if t == topic))
        });
        if seen {
            Ok(())
        } else {
            Err(format!(
                "the broker received no PUBLISH on {topic} within {:?} of the call",
                self.config.timeout
            ))
        }
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
        let transport = self.harness.transport(&id).map_err(|e| {
            format!(
                "the harness could not connect a transport: {}",
                chain(e.as_ref())
            )
        })?;
        self.device = id;
        let transport: Transport = Arc::new(self.watch(transport, "the transport"));
        let (probe, receivers) = Probe::new(hook);
        transport
            .set_sink(probe)
            .map_err(|e| format!("set_sink on a fresh transport failed: {e:?}"))?;
        Ok((transport, receivers))
    }

    /// A peer with a probe installed, subscribed to `filters` (if any).
    fn peer(&mut self, filters: &[&str]) -> Result<(Transport, Receivers), String> {
        let id = self.client_id("peer");
        let peer = self.harness.peer(&id).map_err(|e| {
            format!(
                "the harness could not connect a peer: {}",
                chain(e.as_ref())
            )
        })?;
        let peer: Transport = Arc::new(self.watch(peer, "the peer"));
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
        Rule::QosAsAsked => qos_as_asked(context),
        Rule::PublishAcknowledged => publish_acknowledged(context),
        Rule::NoRetain => no_retain(context),
        Rule::AcksMatchedByPacketId => acks_matched_by_packet_id(context),
        Rule::MessagesInOrder => messages_in_order(context),
        Rule::NoDuplicateDeliveries => no_duplicate_deliveries(context),
        Rule::InboundAcknowledged => inbound_acknowledged(context),
        Rule::ConcurrentPublishes => concurrent_publishes(context),
        Rule::LargeMessages => large_messages(context),
        Rule::UnsubscribeAcknowledged => unsubscribe_acknowledged(context),
        Rule::WokenCallerCanPublish => woken_caller_can_publish(context),
        Rule::SinkPanicContained => sink_panic_contained(context),
        Rule::ExpiredDeadlineSendsNothing => expired_deadline_sends_nothing(context),
        Rule::DeadlineHonoured => deadline_honoured(context),
        Rule::NothingResentAfterTimeout => nothing_resent_after_timeout(context),
        Rule::LinkDropFailsCallsInFlight => link_drop_fails_calls_in_flight(context),
        Rule::ConnectionLostReported => connection_lost_reported(context),
        Rule::OfflineFailsFast => offline_fails_fast(context),
        Rule::ReconnectWithoutSession => reconnect_without_session(context),
        Rule::ReconnectWithSession => reconnect_with_session(context),
        Rule::KeepAliveWhileIdle => keep_alive_while_idle(context),
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
    if cx.harness.supports(Capability::Freeze) {
        subscribe_while_frozen(cx, &transport, &topic)?;
    } else {
        cx.subscribe_granted(&transport, &[&topic])?;
    }
    let (peer, _) = cx.peer(&[])?;
    cx.publish("the peer", &peer, &topic, "after-suback")?;
    cx.expect_message(
        &receivers,
        &topic,
        "after-suback",
        "published after subscribe returned: did subscribe return before the broker's SUBACK?",
    )
}

/// Subscribes to `topic` while the broker is frozen: the call must not return before the
/// broker is thawed (it cannot have the SUBACK before), whenever this thread sees it return.
fn subscribe_while_frozen(cx: &mut Context<'_>, transport: &Transport, topic: &str) -> Check {
    cx.harness
        .freeze()
        .map_err(|e| format!("the harness could not freeze the broker: {e}"))?;
    let (tx, rx) = crossbeam_channel::bounded(1);
    let deadline = cx.deadline() + cx.config.slack;
    let (t, filter) = (Arc::clone(transport), topic.to_owned());
    thread::spawn(move || {
        let result = t.subscribe(&[&filter], QoS::AtLeastOnce, deadline);
        let _ = tx.send((result, Instant::now()));
    });
    // A subscribe that does not wait for the SUBACK returns within this window.
    let early = rx.recv_timeout(cx.config.slack);
    let thawed_at = Instant::now();
    let thawed = cx.harness.thaw();
    let returned = early.or_else(|_| rx.recv_timeout(cx.config.timeout));
    thawed.map_err(|e| format!("the harness could not thaw the broker: {e}"))?;
    match returned {
        Ok((result, at)) if at < thawed_at => Err(format!(
            "subscribe returned {result:?} while the broker was frozen, before any SUBACK could arrive: return only once the broker's SUBACK has arrived"
        )),
        Ok((Ok(outcomes), _)) if outcomes == [SubscribeOutcome::Granted(QoS::AtLeastOnce)] => {
            Ok(())
        }
        Ok((result, _)) => Err(format!(
            "subscribe to {topic} at QoS 1 returned {result:?} once the broker was thawed; expected [Granted(AtLeastOnce)]"
        )),
        Err(_) => Err(format!(
            "subscribe had not returned {:?} after the broker was thawed",
            cx.config.timeout
        )),
    }
}

fn subscribe_outcome_per_filter(cx: &mut Context<'_>) -> Check {
    /// The most filters the client passes in one SUBSCRIBE (AWS IoT Core's limit).
    const FILTERS: usize = 8;
    let topics: Vec<String> = (0..FILTERS).map(|n| cx.topic(&format!("f{n}"))).collect();
    let filters: Vec<&str> = topics.iter().map(String::as_str).collect();
    let (transport, receivers) = cx.transport()?;
    let (peer, _) = cx.peer(&[])?;
    cx.subscribe_granted(&transport, &filters)?;
    if cx.harness.supports(Capability::Observe) {
        let (observations, id) = cx.observed()?;
        let sent: Vec<String> = observations
            .of(&id)
            .into_iter()
            .filter_map(|(_, seen)| match seen {
                Seen::Subscribe { filters } => Some(filters),
                _ => None,
            })
            .flatten()
            .map(|(filter, _)| filter)
            .collect();
        let missing: Vec<&str> = filters
            .iter()
            .copied()
            .filter(|f| !sent.iter().any(|s| s == f))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "subscribe reported all {FILTERS} filters granted, but the broker received only {} of them ({} missing, from {}): send every filter of the call",
                FILTERS - missing.len(),
                missing.len(),
                missing.first().copied().unwrap_or_default()
            ));
        }
    }
    // One message on each filter, then a marker on the first: a filter that is not active
    // shows as the next message arriving in its place.
    for topic in &filters {
        cx.publish("the peer", &peer, topic, "on-each-filter")?;
    }
    let first = filters.first().copied().unwrap_or_default();
    cx.publish("the peer", &peer, first, "marker")?;
    for topic in &filters {
        cx.expect_message(
            &receivers,
            topic,
            "on-each-filter",
            "every filter must be active",
        )?;
    }
    cx.expect_message(&receivers, first, "marker", "each message once")
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

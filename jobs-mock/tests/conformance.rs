//! The conformance suite against `MockTransport` (it must pass every rule) and against
//! deliberately broken transports (each must fail the rule it breaks, by name).

#![allow(clippy::unwrap_used, reason = "tests fail loudly on bad setup")]

use std::sync::Arc;
use std::time::{Duration, Instant};

use jobs_core::{
    ConnectionEvent, MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError,
};
use jobs_mock::MockTransport;
use jobs_mock::conformance::{
    self, Capability, Config, Harness, HarnessError, MockHarness, Outcome, Rule,
};
use parking_lot::Mutex;

/// Short bounds: the broker is in memory, and a broken transport makes checks wait them out.
fn config() -> Config {
    Config::default().timeout(Duration::from_millis(500))
}

#[test]
fn mock_transport_keeps_every_rule() {
    let report = conformance::run(&mut MockHarness::new(), &config());
    report.assert_conforms();
    assert_eq!(report.outcomes().len(), Rule::ALL.len());
}

#[test]
fn mock_transport_is_checked_against_every_rule() {
    let report = conformance::run(&mut MockHarness::new(), &config());
    assert!(report.skipped().is_empty(), "{report}");
    assert!(!report.to_string().contains("SKIPPED"));
}

#[test]
fn rule_names_are_unique_snake_case() {
    let mut names: Vec<&str> = Rule::ALL.iter().map(|r| r.name()).collect();
    assert!(
        names
            .iter()
            .all(|n| n.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
    );
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), Rule::ALL.len());
    // `conformance_tests!` lists the rules by hand: a new rule must be added there too.
    assert_eq!(Rule::ALL.len(), 17);
}

/// How a [`Broken`] transport breaks the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flaw {
    /// None: the mock transport as it is.
    None,
    /// Returns `Granted` at once and never subscribes.
    AcksSubscribeBeforeBroker,
    /// Reports every reconnect with `session_present: None`.
    DropsSessionFlag,
    /// Ignores its callers' deadlines.
    IgnoresDeadline,
    /// Calls the sink holding the lock its `publish` takes: allowed by the contract.
    CallsSinkUnderLock,
    /// Delivers from a loop that holds the lock its `publish` takes while it polls for the
    /// next message (with a poll timeout of [`POLL`]).
    HoldsLockWhilePolling,
    /// Lets a second `set_sink` replace the first.
    SecondSinkTakesOver,
    /// Keeps the sink alive after the transport is dropped.
    LeaksSink,
    /// Never reports `ConnectionLost`.
    SwallowsConnectionLost,
    /// While offline, holds each publish until its deadline (as if queued for later).
    QueuesWhileOffline,
    /// Returns `Ok` from a QoS 1 publish at once and publishes on a thread of its own.
    AcksPublishBeforeBroker,
}

/// How long a `Flaw::HoldsLockWhilePolling` delivery loop waits for the next message.
const POLL: Duration = Duration::from_secs(2);

/// A `MockTransport` with one flaw; its own sink slot sits between the broker and the user.
struct Broken {
    inner: MockTransport,
    flaw: Flaw,
    slot: Arc<Slot>,
}

#[derive(Default)]
struct Slot {
    sink: Mutex<Option<Arc<dyn MessageSink>>>,
}

/// Where `Flaw::LeaksSink` keeps the sinks of dropped transports.
static LEAKED: Mutex<Vec<Arc<dyn MessageSink>>> = Mutex::new(Vec::new());

/// Forwards from the inner transport into the slot, with the flaw.
struct Forward {
    slot: Arc<Slot>,
    flaw: Flaw,
    /// `Flaw::HoldsLockWhilePolling`: the queue its delivery loop polls.
    queue: Option<crossbeam_channel::Sender<(String, Vec<u8>)>>,
}

/// `Flaw::HoldsLockWhilePolling`: takes the lock, polls for a message with it held and
/// delivers under it; ends when the queue's sender (in `Forward`) is dropped.
fn poll_under_lock(slot: &Slot, queue: &crossbeam_channel::Receiver<(String, Vec<u8>)>) {
    loop {
        let sink = slot.sink.lock();
        match queue.recv_timeout(POLL) {
            Ok((topic, payload)) => {
                if let Some(sink) = sink.as_ref() {
                    sink.message(&topic, &payload);
                }
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => return,
        }
    }
}

impl MessageSink for Forward {
    fn message(&self, topic: &str, payload: &[u8]) {
        if let Some(queue) = &self.queue {
            let _ = queue.send((topic.to_owned(), payload.to_vec()));
            return;
        }
        if self.flaw == Flaw::CallsSinkUnderLock {
            let sink = self.slot.sink.lock();
            if let Some(sink) = sink.as_ref() {
                sink.message(topic, payload);
            }
            return;
        }
        let sink = self.slot.sink.lock().clone();
        if let Some(sink) = sink {
            sink.message(topic, payload);
        }
    }

    fn connection(&self, event: ConnectionEvent) {
        let event = match (self.flaw, event) {
            (Flaw::DropsSessionFlag, ConnectionEvent::Connected { .. }) => {
                ConnectionEvent::Connected {
                    session_present: None,
                }
            }
            (Flaw::SwallowsConnectionLost, ConnectionEvent::ConnectionLost) => return,
            (_, event) => event,
        };
        let sink = self.slot.sink.lock().clone();
        if let Some(sink) = sink {
            sink.connection(event);
        }
    }
}

impl Broken {
    fn new(inner: MockTransport, flaw: Flaw) -> Self {
        let slot = Arc::new(Slot::default());
        let queue = (flaw == Flaw::HoldsLockWhilePolling).then(|| {
            let (sender, receiver) = crossbeam_channel::unbounded();
            let slot = Arc::clone(&slot);
            std::thread::spawn(move || poll_under_lock(&slot, &receiver));
            sender
        });
        inner
            .set_sink(Arc::new(Forward {
                slot: Arc::clone(&slot),
                flaw,
                queue,
            }))
            .unwrap();
        Self { inner, flaw, slot }
    }

    fn deadline(&self, deadline: Instant) -> Instant {
        match self.flaw {
            Flaw::IgnoresDeadline => Instant::now() + Duration::from_secs(3600),
            _ => deadline,
        }
    }
}

impl Drop for Broken {
    fn drop(&mut self) {
        let sink = self.slot.sink.lock().take();
        if let (Flaw::LeaksSink, Some(sink)) = (self.flaw, sink) {
            LEAKED.lock().push(sink);
        }
    }
}

impl MqttTransport for Broken {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        let mut slot = self.slot.sink.lock();
        if slot.is_some() && self.flaw != Flaw::SecondSinkTakesOver {
            return Err(TransportError::SinkInstalled);
        }
        *slot = Some(sink);
        Ok(())
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        if self.flaw == Flaw::AcksSubscribeBeforeBroker {
            return Ok(vec![SubscribeOutcome::Granted(qos); filters.len()]);
        }
        self.inner.subscribe(filters, qos, self.deadline(deadline))
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        self.inner.unsubscribe(filters, self.deadline(deadline))
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        if self.flaw == Flaw::AcksPublishBeforeBroker {
            let (inner, topic, payload) = (self.inner.clone(), topic.to_owned(), payload.to_vec());
            std::thread::spawn(move || inner.publish(&topic, &payload, qos, deadline));
            return Ok(());
        }
        if matches!(
            self.flaw,
            Flaw::CallsSinkUnderLock | Flaw::HoldsLockWhilePolling
        ) {
            // Sending needs the lock the delivery path holds (as Paho C's mutex): wait for it.
            drop(self.slot.sink.lock());
        }
        match self
            .inner
            .publish(topic, payload, qos, self.deadline(deadline))
        {
            Err(TransportError::NotConnected) if self.flaw == Flaw::QueuesWhileOffline => {
                // "Queued for the next connection": the caller waits out its deadline.
                let (_never, wait) = crossbeam_channel::bounded::<()>(0);
                let _ = wait.recv_deadline(deadline);
                Err(TransportError::Timeout)
            }
            other => other,
        }
    }
}

/// The mock harness with `Broken` transports under test and healthy peers.
struct BrokenHarness {
    mock: MockHarness,
    flaw: Flaw,
    freeze: bool,
}

impl BrokenHarness {
    fn new(flaw: Flaw) -> Self {
        Self {
            mock: MockHarness::new(),
            flaw,
            freeze: true,
        }
    }

    /// A healthy transport on a harness that cannot freeze its broker.
    fn without_freeze() -> Self {
        Self {
            freeze: false,
            ..Self::new(Flaw::None)
        }
    }
}

impl Harness for BrokenHarness {
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        self.mock.transport(client_id)?;
        // The mock harness recorded the ID; replace its transport with a broken wrapper of a
        // fresh connection under the same ID (the first is kicked, as on a real broker).
        Ok(Box::new(Broken::new(
            self.mock.broker().connect(client_id),
            self.flaw,
        )))
    }

    fn peer(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        self.mock.transport(client_id)
    }

    fn supports(&self, capability: Capability) -> bool {
        (self.freeze || capability != Capability::Freeze) && self.mock.supports(capability)
    }

    fn freeze(&mut self) -> Result<(), HarnessError> {
        self.mock.freeze()
    }

    fn thaw(&mut self) -> Result<(), HarnessError> {
        self.mock.thaw()
    }

    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        self.mock.drop_connections()
    }

    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        self.mock.restore_connections(session_present)
    }

    fn refused_filter(&self) -> Option<String> {
        self.mock.refused_filter()
    }
}

/// Checks `rule` against a transport with `flaw`; it must fail, naming the rule.
fn assert_breaks(flaw: Flaw, rule: Rule) -> String {
    let mut harness = BrokenHarness::new(flaw);
    match conformance::check(&mut harness, &config(), rule) {
        Outcome::Failed(message) => {
            assert!(
                message.starts_with(&format!("{}: ", rule.name())),
                "{message}"
            );
            message
        }
        other => panic!("{flaw:?} passed {rule}: {other:?}"),
    }
}

#[test]
fn a_transport_acknowledging_subscribe_before_the_broker_fails_subscribe_acknowledged() {
    let message = assert_breaks(Flaw::AcksSubscribeBeforeBroker, Rule::SubscribeAcknowledged);
    assert!(message.contains("SUBACK"), "{message}");
}

#[test]
fn a_transport_dropping_the_session_flag_fails_reconnect_with_session() {
    let message = assert_breaks(Flaw::DropsSessionFlag, Rule::ReconnectWithSession);
    assert!(message.contains("session_present: None"), "{message}");
    assert_breaks(Flaw::DropsSessionFlag, Rule::ReconnectWithoutSession);
}

#[test]
fn a_transport_ignoring_deadlines_fails_expired_deadline_sends_nothing_and_deadline_honoured() {
    let message = assert_breaks(Flaw::IgnoresDeadline, Rule::ExpiredDeadlineSendsNothing);
    assert!(message.contains("expected Timeout"), "{message}");
    let message = assert_breaks(Flaw::IgnoresDeadline, Rule::DeadlineHonoured);
    assert!(message.contains("after its deadline"), "{message}");
}

#[test]
fn a_transport_acknowledging_publish_before_the_broker_fails_deadline_honoured() {
    let message = assert_breaks(Flaw::AcksPublishBeforeBroker, Rule::DeadlineHonoured);
    assert!(
        message.contains("returned Ok while the broker was frozen"),
        "{message}"
    );
}

#[test]
fn a_transport_holding_its_lock_while_it_polls_fails_woken_caller_can_publish() {
    let message = assert_breaks(Flaw::HoldsLockWhilePolling, Rule::WokenCallerCanPublish);
    assert!(message.contains("the sink woke"), "{message}");
}

/// Calling the sink under a lock `publish` needs is allowed (Paho C does it): a woken caller's
/// publish waits only while the sink runs.
#[test]
fn a_transport_calling_the_sink_under_its_lock_keeps_every_rule() {
    conformance::run(&mut BrokenHarness::new(Flaw::CallsSinkUnderLock), &config())
        .assert_conforms();
}

#[test]
fn a_transport_letting_a_second_sink_take_over_fails_one_sink() {
    assert_breaks(Flaw::SecondSinkTakesOver, Rule::OneSink);
}

#[test]
fn a_transport_keeping_its_sink_after_drop_fails_drop_ends_delivery() {
    assert_breaks(Flaw::LeaksSink, Rule::DropEndsDelivery);
}

#[test]
fn a_transport_swallowing_connection_lost_fails_connection_lost_reported() {
    let message = assert_breaks(Flaw::SwallowsConnectionLost, Rule::ConnectionLostReported);
    assert!(message.contains("no ConnectionLost"), "{message}");
}

#[test]
fn a_transport_queueing_while_offline_fails_offline_fails_fast() {
    let message = assert_breaks(Flaw::QueuesWhileOffline, Rule::OfflineFailsFast);
    assert!(
        message.contains("expected NotConnected at once"),
        "{message}"
    );
}

#[test]
fn a_broken_transport_fails_only_the_rules_it_breaks() {
    let mut harness = BrokenHarness::new(Flaw::IgnoresDeadline);
    let report = conformance::run(&mut harness, &config());
    let failed: Vec<Rule> = report
        .outcomes()
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Failed(_)))
        .map(|(r, _)| *r)
        .collect();
    assert_eq!(
        failed,
        vec![Rule::ExpiredDeadlineSendsNothing, Rule::DeadlineHonoured]
    );
    let panic = std::panic::catch_unwind(|| report.assert_conforms()).unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.contains("expired_deadline_sends_nothing: "), "{text}");
}

/// The same rules, one test each, through the macro a porter uses.
mod mock_transport_rule_by_rule {
    use super::config;
    use jobs_mock::conformance::MockHarness;

    jobs_mock::conformance_tests!(
        harness: MockHarness::new(),
        config: config(),
        skip: [],
    );
}

#[test]
fn a_rule_skipped_without_being_listed_fails_its_test() {
    let panic = std::panic::catch_unwind(|| {
        conformance::assert_rule(
            &mut BrokenHarness::without_freeze(),
            &config(),
            Rule::DeadlineHonoured,
            &[],
        );
    })
    .unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.starts_with("deadline_honoured: not checked"), "{text}");
}

#[test]
fn a_rule_listed_as_skipped_that_the_harness_checks_fails_its_test() {
    let panic = std::panic::catch_unwind(|| {
        conformance::assert_rule(
            &mut MockHarness::new(),
            &config(),
            Rule::OneSink,
            &[Rule::OneSink],
        );
    })
    .unwrap_err();
    let text = panic.downcast_ref::<String>().unwrap();
    assert!(text.contains("listed under skip"), "{text}");
}

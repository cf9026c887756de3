//! A conformance suite for [`MqttTransport`] implementations: every rule of the transport
//! contract (the docs of [`MqttTransport`] and [`MessageSink`](jobs_core::MessageSink)) as a
//! named check, runnable from a porter's own `#[test]`.
//!
//! A [`Harness`] builds connected transports on one broker (and peers: other clients on the
//! same broker that publish to, and listen for, the transport under test) and, where it can,
//! controls the broker: drop and restore connections, resume sessions, freeze it. [`run`]
//! checks every [`Rule`] and returns a [`Report`]; [`Report::assert_conforms`] panics with
//! the name of each broken rule. A rule whose broker control the harness lacks is
//! [`Outcome::Skipped`] and listed by name, never counted as passed.
//!
//! No check sleeps to synchronise: each waits for an event on a channel, bounded by
//! [`Config::timeout`]; "nothing arrived" is shown with a marker message sent after the one
//! that must not arrive. The only timed waits are the idle periods of
//! [`Rule::KeepAliveWhileIdle`] and [`Rule::NoDuplicateDeliveries`], where nothing happening is
//! what is checked, and the [`Config::slack`] a `subscribe` against a frozen broker gets to show
//! that it does not wait (whether it did is judged by when it returned, not by when the check
//! saw it). Each check uses fresh transports and its own topics.
//!
//! # A known-good peer, and a watchdog
//! The peers a harness connects (to publish to the transport under test and to listen to it)
//! should not be the transport under test: then every failure names that transport and what it
//! did. [`MosquittoHarness`] uses a small MQTT client of its own. Every call into a transport
//! (and its `Drop`) runs under a watchdog: one that has not returned by its deadline plus
//! [`Config::grace`] fails the rule with "did not return", and the run goes on with the next
//! rule (the stuck thread is left behind).
//!
//! # What the suite does not check
//! - Which thread calls the sink, and under which of the transport's locks. The contract allows
//!   a transport to call it from inside `publish` on the caller's thread (as
//!   [`MockBroker`](crate::MockBroker) does) or from a delivery thread of its own, even while
//!   holding a lock its own methods need (Paho C does); what it forbids, and the suite checks,
//!   is keeping such a lock once the sink has returned ([`Rule::WokenCallerCanPublish`]).
//! - That a request queued before its deadline is not written after it: only "an operation
//!   whose deadline is over on entry sends nothing" ([`Rule::ExpiredDeadlineSendsNothing`])
//!   and "a publish whose call returned is never sent again"
//!   ([`Rule::NothingResentAfterTimeout`]) are checked.
//! - Behaviour the contract leaves open: empty filter lists, unsubscribing a filter that was
//!   never subscribed, invalid topics (transports answer `Backend`).
//! - The harness itself: [`Harness::transport`] and the broker controls run unwatched.
//!
//! # Example
//! The in-memory broker's own transport, through [`MockHarness`]:
//! ```
//! use jobs_mock::conformance::{self, Config, MockHarness, Rule};
//!
//! let report = conformance::run(&mut MockHarness::new(), &Config::default());
//! report.assert_conforms(); // panics naming each broken rule; prints the skipped ones
//! assert_eq!(report.outcomes().len(), Rule::ALL.len());
//! ```
//! A port runs the same on its own stack: implement [`Harness`] with a
//! `transport(client_id)` that connects the port to a test broker (see
//! `MosquittoHarness`, with feature `local-broker`, for a real one).
//!
//! [`conformance_tests!`](crate::conformance_tests) makes one `#[test]` per rule instead,
//! named after the rule, with the rules the harness cannot check listed explicitly:
//! ```
//! mod mock_transport {
//!     use jobs_mock::conformance::{Config, MockHarness};
//!     jobs_mock::conformance_tests!(
//!         harness: MockHarness::new(),
//!         config: Config::default(),
//!         // The in-memory broker has no keep-alive and no in-flight window.
//!         skip: [InboundAcknowledged, KeepAliveWhileIdle],
//!     );
//! }
//! ```

mod mock;
#[cfg(feature = "local-broker")]
mod mosquitto;
mod observe;
mod probe;
mod rule;
mod rules;
mod watchdog;
#[cfg(feature = "local-broker")]
mod wire;

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use jobs_core::MqttTransport;

pub use mock::MockHarness;
#[cfg(feature = "local-broker")]
pub use mosquitto::{Endpoint, MosquittoHarness};
pub use observe::{Observations, Seen};
pub use rule::Rule;
#[cfg(feature = "local-broker")]
pub use wire::peer::Peer;

/// What a harness method returns when it fails (for example, the broker could not restart).
pub type HarnessError = Box<dyn StdError + Send + Sync>;

/// A broker control or transport property that some rules need and some harnesses lack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Capability {
    /// [`Harness::drop_connections`] and [`Harness::restore_connections`] without a session.
    DropConnection,
    /// [`Harness::restore_connections`] with the session resumed (`session_present`).
    ResumeSession,
    /// [`Harness::freeze`] and [`Harness::thaw`]: a broker that answers nothing meanwhile.
    Freeze,
    /// [`Harness::refused_filter`]: a filter the broker refuses (SUBACK 0x80).
    RefuseFilter,
    /// The transport knows the CONNACK's session flag: it reports reconnects with
    /// `session_present: Some(_)`, never `None`.
    SessionFlag,
    /// [`Harness::observations`]: what the broker received from each transport under test,
    /// packet by packet (a proxy in front of the broker, or a layer around an in-memory
    /// transport).
    Observe,
    /// [`Harness::hold_acks`] and [`Harness::release_acks`]: a broker (or proxy) that holds
    /// back the acknowledgement of publishes on one topic, so that acknowledgements arrive out
    /// of order.
    HoldAcks,
    /// A broker that closes the connection of a client silent for 1.5 × its keep-alive, with
    /// the CONNECT's keep-alive [observed](Self::Observe).
    KeepAlive,
    /// A broker that stops delivering QoS 1 messages to a client that leaves too many
    /// unacknowledged (mosquitto: 20, `max_inflight_messages`).
    InflightWindow,
}

impl Capability {
    /// The capability's name, as reports print it.
    pub fn name(self) -> &'static str {
        match self {
            Self::DropConnection => "drop_connection",
            Self::ResumeSession => "resume_session",
            Self::Freeze => "freeze",
            Self::RefuseFilter => "refuse_filter",
            Self::SessionFlag => "session_flag",
            Self::Observe => "observe",
            Self::HoldAcks => "hold_acks",
            Self::KeepAlive => "keep_alive",
            Self::InflightWindow => "inflight_window",
        }
    }
}

/// Builds transports on one broker and controls that broker, for [`run`].
///
/// Only [`transport`](Self::transport) and [`supports`](Self::supports) are required; a
/// control method is called only if `supports` declares its [`Capability`], so the defaults
/// (which fail) are never reached by a consistent harness.
pub trait Harness {
    /// Connects a new transport under test as `client_id` (unique per call), connected when it
    /// returns and without a sink.
    ///
    /// # Errors
    /// When it cannot connect; the rule being checked fails with this error.
    fn transport(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError>;

    /// Connects a peer: another client of the same broker, used to publish to the transport
    /// under test and to listen to it. Defaults to [`transport`](Self::transport); a harness
    /// testing a transport it does not trust may return a known-good one instead.
    ///
    /// # Errors
    /// When it cannot connect.
    fn peer(&mut self, client_id: &str) -> Result<Box<dyn MqttTransport>, HarnessError> {
        self.transport(client_id)
    }

    /// Whether this harness (or its transport) has `capability`.
    fn supports(&self, capability: Capability) -> bool;

    /// Drops the connection of every client built so far, as a broker outage would (their
    /// sinks must see `ConnectionLost`). Needs [`Capability::DropConnection`].
    ///
    /// # Errors
    /// When the broker cannot be controlled.
    fn drop_connections(&mut self) -> Result<(), HarnessError> {
        Err(unsupported(Capability::DropConnection))
    }

    /// Lets the clients dropped by [`drop_connections`](Self::drop_connections) reconnect,
    /// resuming their sessions when `session_present` (needs [`Capability::ResumeSession`]) or
    /// with fresh ones (needs [`Capability::DropConnection`]).
    ///
    /// # Errors
    /// When the broker cannot be controlled.
    fn restore_connections(&mut self, session_present: bool) -> Result<(), HarnessError> {
        let _ = session_present;
        Err(unsupported(Capability::DropConnection))
    }

    /// Makes the broker stop answering (every client's operations hang) until
    /// [`thaw`](Self::thaw). Needs [`Capability::Freeze`].
    ///
    /// # Errors
    /// When the broker cannot be controlled.
    fn freeze(&mut self) -> Result<(), HarnessError> {
        Err(unsupported(Capability::Freeze))
    }

    /// Undoes [`freeze`](Self::freeze).
    ///
    /// # Errors
    /// When the broker cannot be controlled.
    fn thaw(&mut self) -> Result<(), HarnessError> {
        Err(unsupported(Capability::Freeze))
    }

    /// A filter the broker refuses (SUBACK 0x80). Needs [`Capability::RefuseFilter`].
    fn refused_filter(&self) -> Option<String> {
        None
    }

    /// What the broker received from each transport under test (not from peers). Needs
    /// [`Capability::Observe`].
    fn observations(&self) -> Option<Observations> {
        None
    }

    /// From now on, the broker's acknowledgement (PUBACK) of every QoS 1 publish on `topic`
    /// is held back until [`release_acks`](Self::release_acks). Needs
    /// [`Capability::HoldAcks`].
    ///
    /// # Errors
    /// When the broker cannot be controlled.
    fn hold_acks(&mut self, topic: &str) -> Result<(), HarnessError> {
        let _ = topic;
        Err(unsupported(Capability::HoldAcks))
    }

    /// Stops holding acknowledgements and lets the held ones through.
    ///
    /// # Errors
    /// When the broker cannot be controlled.
    fn release_acks(&mut self) -> Result<(), HarnessError> {
        Err(unsupported(Capability::HoldAcks))
    }
}

fn unsupported(capability: Capability) -> HarnessError {
    format!("the harness does not support {}", capability.name()).into()
}

/// Bounds of the checks. Defaults suit a broker on the same machine.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// How long a check waits for something that must happen (a message, an event, a
    /// reconnect). Defaults to 10 s.
    pub timeout: Duration,
    /// How late after its deadline an operation may return, and how soon an offline operation
    /// must fail. Defaults to 500 ms.
    pub slack: Duration,
    /// The deadline given to operations against a frozen broker. Defaults to 300 ms.
    pub frozen_deadline: Duration,
    /// The watchdog: how long after its deadline a call into a transport (or its `Drop`, or a
    /// call without a deadline) may take before the rule fails with "did not return".
    /// Defaults to 10 s.
    pub grace: Duration,
    /// How long [`Rule::NoDuplicateDeliveries`] stays idle, watching for a message delivered
    /// again. Defaults to 1 s.
    pub idle: Duration,
    /// How many keep-alive periods [`Rule::KeepAliveWhileIdle`] stays idle. Defaults to 3.
    pub keep_alive_periods: u32,
    /// The longest keep-alive [`Rule::KeepAliveWhileIdle`] accepts: it idles for several
    /// periods, so connect transports under test with a short one (2 s costs the rule 6 s).
    /// Defaults to 5 s.
    pub max_keep_alive: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            slack: Duration::from_millis(500),
            frozen_deadline: Duration::from_millis(300),
            grace: Duration::from_secs(10),
            idle: Duration::from_secs(1),
            keep_alive_periods: 3,
            max_keep_alive: Duration::from_secs(5),
        }
    }
}

impl Config {
    /// Sets [`timeout`](Self::timeout).
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets [`grace`](Self::grace).
    #[must_use]
    pub fn grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// Sets [`idle`](Self::idle).
    #[must_use]
    pub fn idle(mut self, idle: Duration) -> Self {
        self.idle = idle;
        self
    }
}

/// The result of checking one rule.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// The transport kept the rule.
    Passed,
    /// The transport broke the rule; the message says how, starting with the rule's name.
    Failed(String),
    /// Not checked: the harness lacks this capability.
    Skipped(Capability),
}

/// The outcome of every rule [`run`] checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    outcomes: Vec<(Rule, Outcome)>,
}

impl Report {
    /// Each rule checked, with its outcome, in order.
    pub fn outcomes(&self) -> &[(Rule, Outcome)] {
        &self.outcomes
    }

    /// The outcome of `rule`, if it was checked.
    pub fn outcome(&self, rule: Rule) -> Option<&Outcome> {
        self.outcomes
            .iter()
            .find(|(r, _)| *r == rule)
            .map(|(_, o)| o)
    }

    /// The failure messages, one per broken rule.
    pub fn failures(&self) -> Vec<&str> {
        self.outcomes
            .iter()
            .filter_map(|(_, o)| match o {
                Outcome::Failed(message) => Some(message.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The rules not checked for want of a capability.
    pub fn skipped(&self) -> Vec<Rule> {
        self.outcomes
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Skipped(_)))
            .map(|(r, _)| *r)
            .collect()
    }

    /// Prints the report to standard error (skipped rules by name) and panics, naming each
    /// broken rule, if any rule failed.
    ///
    /// # Panics
    /// When a rule failed.
    #[track_caller]
    pub fn assert_conforms(&self) {
        eprintln!("{self}");
        let failures = self.failures();
        assert!(
            failures.is_empty(),
            "the transport breaks {} rule(s) of the MqttTransport contract:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "transport conformance:")?;
        for (rule, outcome) in &self.outcomes {
            match outcome {
                Outcome::Passed => writeln!(f, "  passed   {rule}")?,
                Outcome::Failed(message) => writeln!(f, "  FAILED   {message}")?,
                Outcome::Skipped(capability) => writeln!(
                    f,
                    "  SKIPPED  {rule} (the harness lacks {})",
                    capability.name()
                )?,
            }
        }
        Ok(())
    }
}

/// Checks every [`Rule`] in [`Rule::ALL`] order.
pub fn run(harness: &mut dyn Harness, config: &Config) -> Report {
    run_rules(harness, config, &Rule::ALL)
}

/// Checks the given rules, in order.
pub fn run_rules(harness: &mut dyn Harness, config: &Config, rules: &[Rule]) -> Report {
    let outcomes = rules
        .iter()
        .map(|&rule| (rule, check(harness, config, rule)))
        .collect();
    Report { outcomes }
}

/// Checks one rule and panics unless it passed, or was skipped and is listed in `skipped`.
/// A listed rule that the harness can check panics too: the list must stay true. This is
/// what each test of [`conformance_tests!`](crate::conformance_tests) runs.
///
/// # Panics
/// When the rule failed (the message starts with its name), was skipped without being
/// listed, or was listed but not skipped.
#[track_caller]
pub fn assert_rule(harness: &mut dyn Harness, config: &Config, rule: Rule, skipped: &[Rule]) {
    match (check(harness, config, rule), skipped.contains(&rule)) {
        (Outcome::Failed(message), _) => {
            panic!("the transport breaks a rule of the MqttTransport contract: {message}")
        }
        (Outcome::Skipped(capability), false) => panic!(
            "{rule}: not checked, the harness lacks {}; list the rule under skip if that is expected",
            capability.name()
        ),
        (Outcome::Skipped(capability), true) => {
            eprintln!("SKIPPED {rule} (the harness lacks {})", capability.name());
        }
        (Outcome::Passed, true) => panic!(
            "{rule}: listed under skip, but the harness checked it and it passed; remove it from the list"
        ),
        (Outcome::Passed, false) => {}
    }
}

/// Generates one `#[test]` per [`Rule`], named after it, each building a fresh harness with
/// the `harness` expression and running [`assert_rule`]: a broken rule fails its own test,
/// and a rule the harness cannot check fails unless listed under `skip` (by [`Rule`] variant
/// name). Use it inside a module of a test file (see the [module docs](self)).
#[macro_export]
macro_rules! conformance_tests {
    (harness: $harness:expr, config: $config:expr, skip: [$($skip:ident),* $(,)?] $(,)?) => {
        /// The rules this module's harness is expected not to check.
        const CONFORMANCE_SKIPPED: &[$crate::conformance::Rule] =
            &[$($crate::conformance::Rule::$skip),*];
        $crate::conformance_tests!(@rules ($harness) ($config)
            one_sink OneSink,
            subscribe_acknowledged SubscribeAcknowledged,
            subscribe_outcome_per_filter SubscribeOutcomePerFilter,
            refused_filter_reported RefusedFilterReported,
            qos_as_asked QosAsAsked,
            publish_acknowledged PublishAcknowledged,
            no_retain NoRetain,
            acks_matched_by_packet_id AcksMatchedByPacketId,
            messages_in_order MessagesInOrder,
            no_duplicate_deliveries NoDuplicateDeliveries,
            inbound_acknowledged InboundAcknowledged,
            concurrent_publishes ConcurrentPublishes,
            large_messages LargeMessages,
            unsubscribe_acknowledged UnsubscribeAcknowledged,
            woken_caller_can_publish WokenCallerCanPublish,
            sink_panic_contained SinkPanicContained,
            expired_deadline_sends_nothing ExpiredDeadlineSendsNothing,
            deadline_honoured DeadlineHonoured,
            nothing_resent_after_timeout NothingResentAfterTimeout,
            link_drop_fails_calls_in_flight LinkDropFailsCallsInFlight,
            connection_lost_reported ConnectionLostReported,
            offline_fails_fast OfflineFailsFast,
            reconnect_without_session ReconnectWithoutSession,
            reconnect_with_session ReconnectWithSession,
            keep_alive_while_idle KeepAliveWhileIdle,
            drop_ends_delivery DropEndsDelivery,
        );
    };
    (@rules ($harness:expr) ($config:expr) $($test:ident $rule:ident,)*) => {
        $(
            #[test]
            fn $test() {
                let mut harness = $harness;
                $crate::conformance::assert_rule(
                    &mut harness,
                    &$config,
                    $crate::conformance::Rule::$rule,
                    CONFORMANCE_SKIPPED,
                );
            }
        )*
    };
}

/// Checks one rule.
pub fn check(harness: &mut dyn Harness, config: &Config, rule: Rule) -> Outcome {
    if let Some(missing) = rule.needs().iter().find(|c| !harness.supports(**c)) {
        return Outcome::Skipped(*missing);
    }
    // A prefix for topics and client IDs unique to this check, so that checks never see each
    // other's traffic on a shared broker.
    let prefix = crate::unique_name("conformance");
    let alarm = std::sync::Arc::new(watchdog::Alarm::default());
    let result = {
        let mut context = rules::Context::new(
            harness,
            config,
            rule,
            &prefix,
            std::sync::Arc::clone(&alarm),
        );
        rules::check(&mut context)
    };
    // A call that did not return is reported even when the rule saw nothing wrong.
    match (result, alarm.raised()) {
        (Ok(()), None) => Outcome::Passed,
        (Ok(()), Some(alarm)) => Outcome::Failed(format!("{rule}: {alarm}")),
        (Err(message), None) => Outcome::Failed(format!("{rule}: {message}")),
        (Err(message), Some(alarm)) => Outcome::Failed(format!("{rule}: {message}; and {alarm}")),
    }
}

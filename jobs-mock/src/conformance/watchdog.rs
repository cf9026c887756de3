//! The watchdog: every call into a transport (and its `Drop`) runs on a thread of its own and
//! is waited for only until its deadline plus a grace period. One that does not return by
//! then raises the check's [`Alarm`]: the rule fails with "did not return", and the suite goes
//! on (the stuck thread is left behind; a thread cannot be stopped from outside).

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use jobs_core::{MessageSink, MqttTransport, QoS, SubscribeOutcome, TransportError};
use parking_lot::Mutex;

/// The first "did not return" of a check, if any.
#[derive(Default)]
pub(crate) struct Alarm {
    raised: Mutex<Option<String>>,
}

impl Alarm {
    fn raise(&self, message: String) {
        self.raised.lock().get_or_insert(message);
    }

    /// The first alarm raised.
    pub(crate) fn raised(&self) -> Option<String> {
        self.raised.lock().clone()
    }
}

/// A transport whose calls and drop are bounded by the watchdog.
pub(crate) struct Watched {
    /// `None` only while dropping.
    inner: Option<Arc<dyn MqttTransport>>,
    who: String,
    grace: Duration,
    alarm: Arc<Alarm>,
}

impl std::fmt::Debug for Watched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watched").field("who", &self.who).finish()
    }
}

impl Watched {
    /// Watches `inner`; `who` names it in alarms ("the transport", "the peer").
    pub(crate) fn new(
        inner: Box<dyn MqttTransport>,
        who: &str,
        grace: Duration,
        alarm: Arc<Alarm>,
    ) -> Self {
        Self {
            inner: Some(Arc::from(inner)),
            who: who.to_owned(),
            grace,
            alarm,
        }
    }

    /// Runs `call` on a thread; waits until `deadline` (if any) plus the grace period. A call
    /// that is not back by then raises the alarm and is reported as `Timeout` to the rule.
    fn call<T: Send + 'static>(
        &self,
        name: &str,
        deadline: Option<Instant>,
        call: impl FnOnce(&dyn MqttTransport) -> Result<T, TransportError> + Send + 'static,
    ) -> Result<T, TransportError> {
        let Some(inner) = self.inner.clone() else {
            return Err(TransportError::NotConnected);
        };
        let (tx, rx) = crossbeam_channel::bounded(1);
        let spawned = thread::Builder::new()
            .name("conformance-call".into())
            .spawn(move || {
                let _ = tx.send(call(inner.as_ref()));
            });
        if let Err(error) = spawned {
            return Err(TransportError::backend(error));
        }
        let bound = deadline.map_or(Instant::now(), |d| d.max(Instant::now())) + self.grace;
        match rx.recv_deadline(bound) {
            Ok(result) => result,
            Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                self.alarm
                    .raise(format!("{}'s {name} panicked: never panic", self.who));
                Err(TransportError::backend(format!("{name} panicked")))
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {
                let past = deadline.map_or_else(String::new, |deadline| {
                    format!(
                        " ({:?} after its deadline)",
                        Instant::now().saturating_duration_since(deadline)
                    )
                });
                self.alarm.raise(format!(
                    "{}'s {name} did not return{past}: every call must return by its deadline",
                    self.who
                ));
                Err(TransportError::Timeout)
            }
        }
    }
}

impl MqttTransport for Watched {
    fn set_sink(&self, sink: Arc<dyn MessageSink>) -> Result<(), TransportError> {
        self.call("set_sink", None, move |t| t.set_sink(sink))
    }

    fn subscribe(
        &self,
        filters: &[&str],
        qos: QoS,
        deadline: Instant,
    ) -> Result<Vec<SubscribeOutcome>, TransportError> {
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        self.call("subscribe", Some(deadline), move |t| {
            let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
            t.subscribe(&filters, qos, deadline)
        })
    }

    fn unsubscribe(&self, filters: &[&str], deadline: Instant) -> Result<(), TransportError> {
        let filters: Vec<String> = filters.iter().map(|f| (*f).to_owned()).collect();
        self.call("unsubscribe", Some(deadline), move |t| {
            let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
            t.unsubscribe(&filters, deadline)
        })
    }

    fn publish(
        &self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        deadline: Instant,
    ) -> Result<(), TransportError> {
        let (topic, payload) = (topic.to_owned(), payload.to_vec());
        self.call("publish", Some(deadline), move |t| {
            t.publish(&topic, &payload, qos, deadline)
        })
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let Some(inner) = self.inner.take() else {
            return;
        };
        let (tx, rx) = crossbeam_channel::bounded::<()>(1);
        let spawned = thread::Builder::new()
            .name("conformance-drop".into())
            .spawn(move || {
                drop(inner);
                let _ = tx.send(());
            });
        if spawned.is_ok() && rx.recv_timeout(self.grace).is_err() {
            self.alarm.raise(format!(
                "dropping {} did not return within {:?}: Drop must end delivery and return",
                self.who, self.grace
            ));
        }
    }
}

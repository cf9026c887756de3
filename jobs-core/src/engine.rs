//! The request engine: subscribe the thing's filters when needed, register the call under a
//! fresh client token, publish with no lock held, wait on the call's own condvar until its
//! deadline, and decode the reply. Every step honours the one deadline of the call.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, trace};
use serde::de::DeserializeOwned;

use crate::Operation;
use crate::client::Client;
use crate::error::{DecodeError, Error, InvalidInput, Rejection};
use crate::model::ErrorReply;
use crate::pending::Expected;
use crate::shared::Shared;
use crate::topics::ReplyKind;
use crate::transport::{QoS, SubscribeOutcome, TransportError};

/// The largest MQTT payload AWS IoT Core accepts.
const MAX_PAYLOAD: usize = 128 * 1024;

/// The deadline of a call that may take `timeout`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Deadline {
    pub(crate) at: Instant,
    pub(crate) timeout: Duration,
}

impl Deadline {
    /// From now. A timeout too large to represent waits a year: bounded, and longer than any
    /// real use.
    pub(crate) fn after(timeout: Duration) -> Self {
        let now = Instant::now();
        let at = now
            .checked_add(timeout)
            .unwrap_or(now + Duration::from_secs(365 * 24 * 3600));
        Self { at, timeout }
    }

    pub(crate) fn passed(&self) -> bool {
        Instant::now() >= self.at
    }

    /// The call's timeout error.
    pub(crate) fn timeout(&self, operation: Option<Operation>) -> Error {
        Error::Timeout {
            operation,
            waited: self.timeout,
        }
    }

    /// A transport failure; a transport timeout at or after the deadline is the call's own.
    pub(crate) fn transport(&self, operation: Option<Operation>, source: TransportError) -> Error {
        match source {
            TransportError::Timeout if self.passed() => self.timeout(operation),
            source => Error::Transport { operation, source },
        }
    }
}

/// An accepted reply, decoded, and the request topic it answers (for decode errors of its
/// content).
#[derive(Debug)]
pub(crate) struct Accepted<T> {
    pub(crate) body: T,
    /// The request topic: the reply came on `{topic}/accepted`.
    topic: String,
}

impl<T> Accepted<T> {
    /// A decode error about this reply's content, naming the topic the reply came on.
    pub(crate) fn invalid(&self, reason: DecodeError) -> Error {
        Error::Decode {
            topic: format!("{}/{}", self.topic, ReplyKind::Accepted.as_str()),
            reason,
        }
    }
}

/// Decodes a reply's payload; a failure names the reply topic, which `topic` builds only then.
fn decode<T: DeserializeOwned>(payload: &[u8], topic: impl FnOnce() -> String) -> Result<T, Error> {
    serde_json::from_slice(payload).map_err(|error| Error::Decode {
        topic: topic(),
        reason: DecodeError::json(error),
    })
}

/// Refuses calls on a closed thing.
pub(crate) fn check_open(shared: &Shared) -> Result<(), Error> {
    if shared.closed.load(Ordering::Acquire) {
        return Err(InvalidInput::Closed(shared.thing.clone()).into());
    }
    Ok(())
}

/// Publishes one request of `operation` (about `job`, a job ID or `$next`, for Describe and
/// Update) and waits for its reply until `deadline`.
pub(crate) fn request<T: DeserializeOwned>(
    client: &Client,
    shared: &Shared,
    operation: Operation,
    job: Option<&str>,
    deadline: Deadline,
    encode: impl FnOnce(&str) -> Result<Vec<u8>, serde_json::Error>,
) -> Result<Accepted<T>, Error> {
    check_open(shared)?;
    ensure_subscribed(client, shared, Some(operation), deadline)?;
    let topic = shared.topics.request(operation, job);
    let registration = shared.pending.register(
        client.router.next_token(),
        Expected {
            operation,
            job: job.map(Into::into),
        },
    );
    let payload =
        encode(registration.token()).map_err(|source| Error::Encode { operation, source })?;
    if payload.len() > MAX_PAYLOAD {
        return Err(InvalidInput::PayloadTooLarge {
            size: payload.len(),
            limit: MAX_PAYLOAD,
        }
        .into());
    }
    // Nothing is published once the call's deadline has passed: the caller is told it timed
    // out, and a request it was told about must not be applied behind its back. Nor once the
    // thing was closed (while this call waited for its subscription, say).
    check_open(shared)?;
    if deadline.passed() {
        return Err(deadline.timeout(Some(operation)));
    }
    debug!(
        "{operation} for {}: publishing with token {}",
        shared.thing,
        registration.token()
    );
    trace!(
        "{operation} request on {topic}: {}",
        String::from_utf8_lossy(&payload)
    );
    client
        .transport
        .publish(
            &topic,
            &payload,
            client.transport.request_qos(),
            deadline.at,
        )
        .map_err(|source| deadline.transport(Some(operation), source))?;
    let reply = match registration.wait_until(deadline.at) {
        None => return Err(deadline.timeout(Some(operation))),
        Some(Err(source)) => {
            // Closing the thing fails its calls in flight; say so rather than "not connected".
            check_open(shared)?;
            return Err(Error::Transport {
                operation: Some(operation),
                source,
            });
        }
        Some(Ok(reply)) => reply,
    };
    let reply_topic = || format!("{topic}/{}", reply.kind.as_str());
    match reply.kind {
        ReplyKind::Accepted => {
            let body = decode(&reply.payload, reply_topic)?;
            Ok(Accepted { body, topic })
        }
        ReplyKind::Rejected => {
            let error: ErrorReply = decode(&reply.payload, reply_topic)?;
            debug!(
                "{operation} for {} rejected with {}",
                shared.thing, error.code
            );
            Err(Error::Rejected {
                operation,
                rejection: Box::new(Rejection {
                    code: error.code,
                    message: error.message,
                    execution_state: error.execution_state,
                }),
            })
        }
    }
}

/// Makes sure the thing's filters are subscribed in the current connection epoch. One caller
/// subscribes (with no lock held); concurrent callers wait for its result, until `deadline`.
/// A close of the thing ends every wait at once with [`InvalidInput::Closed`].
pub(crate) fn ensure_subscribed(
    client: &Client,
    shared: &Shared,
    operation: Option<Operation>,
    deadline: Deadline,
) -> Result<(), Error> {
    let epoch = client.router.epoch();
    {
        let mut state = shared.subscription.lock();
        loop {
            check_open(shared)?;
            if state.epoch == Some(epoch) {
                return Ok(());
            }
            if !state.in_progress {
                state.in_progress = true;
                break;
            }
            if shared
                .subscribed
                .wait_until(&mut state, deadline.at)
                .timed_out()
            {
                check_open(shared)?;
                return Err(deadline.timeout(operation));
            }
        }
    }
    // Clears the flag and wakes the waiters however this ends, a panicking transport included.
    let subscribing = Subscribing(shared);
    let result = subscribe_filters(client, shared, deadline.at);
    if result.is_ok() {
        shared.subscription.lock().epoch = Some(epoch);
    }
    drop(subscribing);
    check_open(shared)?;
    result.map_err(|source| deadline.transport(operation, source))
}

/// The "a caller is subscribing" flag of a thing, cleared (and its waiters woken) on drop.
struct Subscribing<'a>(&'a Shared);

impl Drop for Subscribing<'_> {
    fn drop(&mut self) {
        self.0.subscription.lock().in_progress = false;
        self.0.subscribed.notify_all();
    }
}

fn subscribe_filters(
    client: &Client,
    shared: &Shared,
    deadline: Instant,
) -> Result<(), TransportError> {
    let filters = shared.topics.filters();
    let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
    debug!("subscribing {} filters for {}", filters.len(), shared.thing);
    let outcomes = client
        .transport
        .subscribe(&filters, QoS::AtLeastOnce, deadline)?;
    if outcomes.len() != filters.len() {
        return Err(TransportError::backend(format!(
            "SUBACK has {} codes for {} filters",
            outcomes.len(),
            filters.len()
        )));
    }
    match filters
        .iter()
        .zip(&outcomes)
        .find(|(_, o)| **o == SubscribeOutcome::Refused)
    {
        Some((filter, _)) => Err(TransportError::SubscriptionRefused {
            filter: (*filter).to_owned(),
        }),
        None => Ok(()),
    }
}

/// Unsubscribes the thing's filters (for [`Jobs::close`](crate::Jobs::close)).
pub(crate) fn unsubscribe(
    client: &Client,
    shared: &Shared,
    deadline: Deadline,
) -> Result<(), Error> {
    let filters = shared.topics.filters();
    let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
    debug!(
        "unsubscribing {} filters of {}",
        filters.len(),
        shared.thing
    );
    client
        .transport
        .unsubscribe(&filters, deadline.at)
        .map_err(|source| deadline.transport(None, source))
}

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
use crate::transport::TransportError;

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
    // The connection's pacing: a token of the publish rate and an in-flight slot, within the
    // deadline (nothing is published if it passes first).
    let Some(permit) = client.connection.pace.admit(deadline.at) else {
        return Err(deadline.timeout(Some(operation)));
    };
    check_open(shared)?;
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
    drop(permit);
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

/// Makes sure the thing's filters are subscribed in the current connection epoch: shared
/// filters another thing subscribed count, concurrent callers wait for the one subscribing,
/// and the first caller after a reconnect restores every filter of the connection. Waits at
/// most until `deadline`; a close of the thing ends the wait at once with
/// [`InvalidInput::Closed`].
pub(crate) fn ensure_subscribed(
    client: &Client,
    shared: &Shared,
    operation: Option<Operation>,
    deadline: Deadline,
) -> Result<(), Error> {
    ensure_subscribed_in(client, shared, operation, deadline, client.router.epoch())
}

/// [`ensure_subscribed`] for connection epoch `epoch`, read by the caller.
pub(crate) fn ensure_subscribed_in(
    client: &Client,
    shared: &Shared,
    operation: Option<Operation>,
    deadline: Deadline,
    epoch: u64,
) -> Result<(), Error> {
    let ensured = client.connection.table.ensure(
        client.transport.as_ref(),
        &shared.lease,
        epoch,
        deadline.at,
        &shared.closed,
    );
    check_open(shared)?;
    match ensured {
        Ok(_) => Ok(()),
        Err(source) => Err(deadline.transport(operation, source)),
    }
}

//! [`JobsService`]: the pure, synchronous core of the simulator — requests in, messages out.

use std::collections::BTreeMap;

use jobs_core::Timestamp;
use jobs_core::model::{ErrorReply, ExecutionState};
use jobs_core::{JobId, RejectCode, ThingName, validate};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::clock::Clock;
use super::events::{self, Snapshot};
use super::job_record::JobRecord;
use super::presign::UrlSigner;
use super::registry::Registry;
use super::state::{ThingState, seconds};
use super::topic::{Api, Classified, JobRef, classify};

/// A message the simulator wants published: a reply or an event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outgoing {
    /// The topic to publish on.
    pub topic: String,
    /// The JSON payload.
    pub payload: Vec<u8>,
}

impl Outgoing {
    /// Encodes `value` as the payload (see [`encode`]).
    pub(crate) fn json<T: Serialize>(topic: String, value: &T) -> Self {
        let payload = encode(value);
        Self { topic, payload }
    }

    /// Decodes the payload into a wire-model type (convenient in tests).
    ///
    /// # Errors
    /// The parser's error when the payload does not fit `T`.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.payload)
    }
}

/// Switches for behaviours AWS leaves undocumented, so a client can be tested against each
/// plausible answer. The defaults are the simulator's best guesses; see the module docs,
/// section "Uncertain behaviours".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Quirks {
    /// Describe of `$next` with nothing pending is rejected with `ResourceNotFound` instead of
    /// accepted without `execution`. Defaults to `false`.
    pub idle_next_is_not_found: bool,
    /// Describe of an execution in a terminal status returns the execution instead of
    /// rejecting it with `TerminalStateReached` (what AWS does). Defaults to `false`.
    pub terminal_describe_returns_execution: bool,
    /// Update of a QUEUED execution straight to `SUCCEEDED` or `FAILED` is rejected with
    /// `InvalidStateTransition` instead of accepted. Defaults to `false`.
    pub queued_to_done_is_rejected: bool,
}

/// A rejection about to be sent.
#[derive(Debug, Clone)]
pub(crate) struct Reject {
    pub(crate) code: RejectCode,
    pub(crate) message: String,
    pub(crate) state: Option<ExecutionState>,
}

impl Reject {
    pub(crate) fn new(code: RejectCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            state: None,
        }
    }

    pub(crate) fn with_state(mut self, state: ExecutionState) -> Self {
        self.state = Some(state);
        self
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(RejectCode::InvalidRequest, message)
    }
}

/// The simulated AWS IoT Jobs service for any number of things: a pure state machine.
///
/// [`handle`](Self::handle) takes one request a device published and returns the messages the
/// service publishes in answer — the reply on the request topic plus `/accepted` or
/// `/rejected` first, then the events it caused (`notify`, then `notify-next`), as AWS does.
/// The control methods (the AWS IoT control-plane operations of [`call`](Self::call), and the
/// shortcuts such as [`create_job`](Self::create_job)) return the events they cause. Nothing here spawns threads, blocks or does I/O: the [`Simulator`](super::Simulator)
/// runs it over an MQTT transport, and tests may drive it directly.
///
/// Timers are evaluated against the [`Clock`] at the start of every call, so a timer that
/// expired is reported (as `TIMED_OUT` with its events) before the request is answered.
#[derive(Debug)]
pub struct JobsService {
    pub(crate) clock: Clock,
    pub(crate) quirks: Quirks,
    pub(crate) things: BTreeMap<ThingName, ThingState>,
    pub(crate) jobs: BTreeMap<JobId, JobRecord>,
    pub(crate) registry: Registry,
    pub(crate) signer: UrlSigner,
    pub(crate) seq: u64,
    throttle_remaining: usize,
    fail_remaining: usize,
    refused_updates: BTreeMap<JobId, RefusedUpdates>,
}

/// Updates of one job refused on purpose ([`JobsService::refuse_updates`]).
#[derive(Debug)]
struct RefusedUpdates {
    code: RejectCode,
    /// How many more are refused; `None`: all of them.
    remaining: Option<usize>,
}

impl JobsService {
    /// An empty service (no jobs, no things) on `clock`, with default [`Quirks`].
    pub fn new(clock: Clock) -> Self {
        Self {
            clock,
            quirks: Quirks::default(),
            things: BTreeMap::new(),
            jobs: BTreeMap::new(),
            registry: Registry::default(),
            signer: UrlSigner::new(),
            seq: 0,
            throttle_remaining: 0,
            fail_remaining: 0,
            refused_updates: BTreeMap::new(),
        }
    }

    /// The service's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// The signer of the pre-signed URLs that replace the `${aws:iot:s3-presigned-url…}`
    /// placeholders of job documents (see [`presign`](super::presign)).
    pub fn url_signer(&self) -> &UrlSigner {
        &self.signer
    }

    /// Sets the base URL of pre-signed URLs, such as
    /// `http://127.0.0.1:8080/jobs-service/files` (what `jobs-service --http` serves files
    /// under); `None`, the default, leaves the placeholders in the documents devices receive
    /// as they are.
    pub fn set_presigned_url_base(&mut self, base: Option<String>) {
        self.signer.set_base(base);
    }

    /// The current quirks.
    pub fn quirks(&self) -> &Quirks {
        &self.quirks
    }

    /// Replaces the quirks; they apply from the next request on.
    pub fn set_quirks(&mut self, quirks: Quirks) {
        self.quirks = quirks;
    }

    /// Answers the next `n` requests (to any API, of any thing) with `RequestThrottled`,
    /// before looking at their payloads. Adds to any count still outstanding.
    pub fn throttle_next_requests(&mut self, n: usize) {
        self.throttle_remaining = self.throttle_remaining.saturating_add(n);
    }

    /// Answers the next `n` requests with `InternalError` (after any throttled ones), before
    /// looking at their payloads. Adds to any count still outstanding.
    pub fn fail_next_requests(&mut self, n: usize) {
        self.fail_remaining = self.fail_remaining.saturating_add(n);
    }

    /// Refuses the UpdateJobExecution requests about `job` (of any thing) with `code`: the next
    /// `times` of them, or every one with `None` — a refusal that never goes away. Checked
    /// after the throttling and internal-error faults and before the request is looked at;
    /// `VersionMismatch` and `InvalidStateTransition` carry the execution's state, as AWS's
    /// do. Replaces an earlier refusal of the same job.
    pub fn refuse_updates(&mut self, job: &JobId, code: RejectCode, times: Option<usize>) {
        let refusal = RefusedUpdates {
            code,
            remaining: times,
        };
        self.refused_updates.insert(job.clone(), refusal);
    }

    /// Drops the outstanding injected faults.
    pub(crate) fn clear_faults(&mut self) {
        self.throttle_remaining = 0;
        self.fail_remaining = 0;
        self.refused_updates.clear();
    }

    /// The injected refusal of this update, if any (counting it).
    fn refused_update(&mut self, thing: &ThingName, job: &JobId) -> Option<Reject> {
        let refusal = self.refused_updates.get_mut(job)?;
        match &mut refusal.remaining {
            Some(0) => return None,
            Some(remaining) => *remaining -= 1,
            None => {}
        }
        let mut reject = Reject::new(refusal.code.clone(), "update refused (simulated)");
        if matches!(
            refusal.code,
            RejectCode::VersionMismatch | RejectCode::InvalidStateTransition
        ) && let Some(execution) = self
            .things
            .get(thing)
            .and_then(|state| state.get(job, None))
        {
            reject = reject.with_state(execution.state());
        }
        Some(reject)
    }

    /// Handles one message a device published on `topic` and returns what the service
    /// publishes in answer: the events of timers that expired before it, the reply, then the
    /// events the request caused. Never panics, whatever the input.
    ///
    /// Topics outside `$aws/things/{thing}/jobs/…`, and reply and event topics inside it, get
    /// no answer (only events of expired timers, if any). Other topics inside the namespace
    /// that name no API get `InvalidTopic` on the topic plus `/rejected`.
    pub fn handle(&mut self, topic: &str, payload: &[u8]) -> Vec<Outgoing> {
        let now_ms = self.clock.now_millis();
        let now = seconds(now_ms);
        let mut out = self.expire_timers(now_ms);
        let (thing, api) = match classify(topic) {
            Classified::Ignored => {
                log::debug!("simulator ignores a message on {topic}");
                return out;
            }
            Classified::InvalidTopic => {
                let reject = Reject::new(
                    RejectCode::InvalidTopic,
                    format!("topic {topic} maps to no Jobs API"),
                );
                out.push(rejected(topic, best_effort_token(payload), reject, now));
                return out;
            }
            Classified::Request { thing, api } => (thing, api),
        };
        // Parsed once: the token of a rejection and the request itself both come from it.
        let request = serde_json::from_slice::<Value>(payload);
        let token = request.as_ref().ok().and_then(token_of);
        let mut events = Vec::new();
        let result = if self.throttle_remaining > 0 {
            self.throttle_remaining -= 1;
            Err(Reject::new(
                RejectCode::RequestThrottled,
                "request rate exceeded (simulated)",
            ))
        } else if self.fail_remaining > 0 {
            self.fail_remaining -= 1;
            Err(Reject::new(
                RejectCode::InternalError,
                "internal error (simulated)",
            ))
        } else if let Api::Update(JobRef::Id(job)) = &api
            && let Some(reject) = self.refused_update(&thing, job)
        {
            Err(reject)
        } else {
            self.dispatch(&thing, api, &request, now_ms, &mut events)
        };
        match result {
            Ok(body) => out.push(Outgoing {
                topic: format!("{topic}/accepted"),
                payload: body,
            }),
            Err(reject) => out.push(rejected(topic, token, reject, now)),
        }
        out.extend(events);
        self.settle(now_ms, &mut out);
        out
    }

    fn dispatch(
        &mut self,
        thing: &ThingName,
        api: Api,
        payload: &Result<Value, serde_json::Error>,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
    ) -> Result<Vec<u8>, Reject> {
        match api {
            Api::GetPending => {
                let (request, token) = parse(payload)?;
                Ok(self.get_pending(thing, &request, token, now_ms))
            }
            Api::StartNext => {
                let (request, token) = parse(payload)?;
                self.start_next(thing, request, token, now_ms, out)
            }
            Api::Describe(job) => {
                let (request, token) = parse(payload)?;
                self.describe(thing, &job, &request, token, now_ms)
            }
            Api::Update(job) => {
                let (request, token) = parse(payload)?;
                self.update(thing, &job, request, token, now_ms, out)
            }
        }
    }

    /// Moves every execution whose timer expired to `TIMED_OUT` now, queues the executions
    /// whose rollout window came and the retries this causes, and returns the events. Called at
    /// the start of every request and control call; a host running on the system clock also
    /// calls it periodically (the [`Simulator`](super::Simulator) does).
    pub fn fire_timers(&mut self) -> Vec<Outgoing> {
        let now_ms = self.clock.now_millis();
        self.expire_timers(now_ms)
    }

    /// The earliest time something is due, in milliseconds since the epoch: a timer deadline
    /// of an execution, or the next window of a rollout with things waiting (timers keep
    /// sub-second precision: one fires when the clock reaches it, not at the whole second
    /// before).
    pub fn next_timer_deadline(&self) -> Option<i64> {
        self.things
            .values()
            .filter_map(ThingState::next_deadline)
            .chain(self.next_rollout_release())
            .min()
    }

    pub(crate) fn expire_timers(&mut self, now_ms: i64) -> Vec<Outgoing> {
        let due: Vec<ThingName> = self
            .things
            .iter()
            .filter(|(_, state)| state.next_deadline().is_some_and(|d| d <= now_ms))
            .map(|(thing, _)| thing.clone())
            .collect();
        let mut out = Vec::new();
        for thing in due {
            self.mutate(&thing, now_ms, &mut out, |state| {
                state.expire_timers(now_ms)
            });
        }
        self.settle(now_ms, &mut out);
        out
    }

    /// Runs `change` on the state of `thing` (created empty if unknown) and appends the
    /// `notify` / `notify-next` events the change causes (`now_ms` in milliseconds).
    pub(crate) fn mutate<R>(
        &mut self,
        thing: &ThingName,
        now_ms: i64,
        out: &mut Vec<Outgoing>,
        change: impl FnOnce(&mut ThingState) -> R,
    ) -> R {
        let state = self.things.entry(thing.clone()).or_default();
        let before = Snapshot::of(state);
        let result = change(state);
        out.extend(events::changes(thing, &before, state, &self.signer, now_ms));
        result
    }
}

/// Encodes a message. The wire model always encodes; should it ever fail, the result is an
/// `InternalError` rejection body and the failure is logged.
pub(crate) fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_else(|error| {
        log::error!("simulator could not encode a message: {error}");
        br#"{"code":"InternalError","message":"encoding failed"}"#.to_vec()
    })
}

/// Parses a request: `InvalidJson` for anything but JSON, `InvalidRequest` for JSON that is
/// not an object of the request's shape or carries an invalid `clientToken`.
fn parse<T: DeserializeOwned>(
    payload: &Result<Value, serde_json::Error>,
) -> Result<(T, Option<String>), Reject> {
    let value = payload
        .as_ref()
        .map_err(|error| Reject::new(RejectCode::InvalidJson, format!("invalid JSON: {error}")))?;
    if !value.is_object() {
        return Err(Reject::invalid("the request must be a JSON object"));
    }
    let token = match value.get("clientToken") {
        None | Some(Value::Null) => None,
        Some(Value::String(token)) => {
            validate::client_token(token)
                .map_err(|reason| Reject::invalid(format!("invalid clientToken: {reason}")))?;
            Some(token.clone())
        }
        Some(_) => return Err(Reject::invalid("clientToken must be a string")),
    };
    let request = T::deserialize(value)
        .map_err(|error| Reject::invalid(format!("malformed request: {error}")))?;
    Ok((request, token))
}

/// The `clientToken` of a payload, if it is a JSON object with a string token (valid or not:
/// a rejection echoes whatever string was sent).
fn best_effort_token(payload: &[u8]) -> Option<String> {
    token_of(&serde_json::from_slice::<Value>(payload).ok()?)
}

/// The `clientToken` of a parsed payload, as for [`best_effort_token`].
fn token_of(value: &Value) -> Option<String> {
    match value.get("clientToken")? {
        Value::String(token) => Some(token.clone()),
        _ => None,
    }
}

fn rejected(request_topic: &str, token: Option<String>, reject: Reject, now: i64) -> Outgoing {
    let mut body = ErrorReply::new(reject.code);
    body.message = Some(reject.message);
    body.client_token = token;
    body.timestamp = Some(Timestamp::new(now));
    body.execution_state = reject.state;
    Outgoing::json(format!("{request_topic}/rejected"), &body)
}

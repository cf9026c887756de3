//! Shared helpers for the simulator tests: a service on a virtual clock, request shortcuts and
//! typed views of what it answered.
#![allow(
    dead_code,
    unreachable_pub,
    reason = "each test file uses a different subset of the helpers"
)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers: a panic fails the test"
)]

use jobs_core::model::{ErrorReply, JobExecutionsChanged, NextJobExecutionChanged};
use jobs_core::{Document, JobId, ThingName};
use jobs_mock::service::{Clock, JobSpec, JobsService, Outgoing};
use serde::de::DeserializeOwned;

/// The virtual clock's start: 2025-06-15T15:06:40Z.
pub const T0: i64 = 1_750_000_000;

pub fn service() -> JobsService {
    JobsService::new(Clock::virtual_at(T0))
}

pub fn thing(name: &str) -> ThingName {
    ThingName::new(name).unwrap()
}

pub fn job(id: &str) -> JobId {
    JobId::new(id).unwrap()
}

/// The document of job `id`: `{"action":"<id>"}`.
pub fn document(id: &str) -> Document {
    Document::from_serialize(&serde_json::json!({ "action": id })).unwrap()
}

pub fn spec(id: &str, things: &[&str]) -> JobSpec {
    JobSpec::new(job(id), document(id)).things(things.iter().map(|t| thing(t)))
}

/// Creates job `id` for `things` and returns the events.
pub fn create(service: &mut JobsService, id: &str, things: &[&str]) -> Vec<Outgoing> {
    service.create_job(spec(id, things)).unwrap()
}

/// What the service published for one request: the reply, and the events (those of timers
/// that expired before the request, then those the request caused, which come after the reply).
#[derive(Debug)]
pub struct Answer {
    pub request_topic: String,
    pub events: Vec<Outgoing>,
    pub reply: Outgoing,
    /// How many events came before the reply.
    pub events_before_reply: usize,
}

impl Answer {
    pub fn is_accepted(&self) -> bool {
        self.reply.topic == format!("{}/accepted", self.request_topic)
    }

    /// The accepted reply, decoded; panics (failing the test) on a rejection.
    pub fn accepted<T: DeserializeOwned>(&self) -> T {
        assert!(
            self.is_accepted(),
            "expected accepted on {}, got {} {}",
            self.request_topic,
            self.reply.topic,
            String::from_utf8_lossy(&self.reply.payload)
        );
        self.reply.decode().unwrap()
    }

    /// The rejection, decoded; panics (failing the test) on an accepted reply.
    pub fn rejected(&self) -> ErrorReply {
        assert_eq!(
            self.reply.topic,
            format!("{}/rejected", self.request_topic),
            "{}",
            String::from_utf8_lossy(&self.reply.payload)
        );
        self.reply.decode().unwrap()
    }

    pub fn notify(&self, thing: &str) -> Vec<JobExecutionsChanged> {
        notifies(&self.events, thing)
    }

    pub fn notify_next(&self, thing: &str) -> Vec<NextJobExecutionChanged> {
        next_events(&self.events, thing)
    }
}

/// Publishes `payload` on `$aws/things/{thing}/jobs/{operation}` and splits the answer.
pub fn call(service: &mut JobsService, thing: &str, operation: &str, payload: &str) -> Answer {
    let request_topic = format!("$aws/things/{thing}/jobs/{operation}");
    let mut out = service.handle(&request_topic, payload.as_bytes());
    let replies: Vec<usize> = out
        .iter()
        .enumerate()
        .filter(|(_, m)| m.topic.starts_with(&format!("{request_topic}/")))
        .map(|(i, _)| i)
        .collect();
    assert_eq!(replies.len(), 1, "exactly one reply: {out:?}");
    let reply = out.remove(replies[0]);
    Answer {
        request_topic,
        events: out,
        reply,
        events_before_reply: replies[0],
    }
}

/// The `notify` events for `thing` in `out`, decoded.
pub fn notifies(out: &[Outgoing], thing: &str) -> Vec<JobExecutionsChanged> {
    let topic = format!("$aws/things/{thing}/jobs/notify");
    out.iter()
        .filter(|m| m.topic == topic)
        .map(|m| m.decode().unwrap())
        .collect()
}

/// The `notify-next` events for `thing` in `out`, decoded.
pub fn next_events(out: &[Outgoing], thing: &str) -> Vec<NextJobExecutionChanged> {
    let topic = format!("$aws/things/{thing}/jobs/notify-next");
    out.iter()
        .filter(|m| m.topic == topic)
        .map(|m| m.decode().unwrap())
        .collect()
}

/// The job IDs of a list of summaries.
pub fn ids(summaries: &[jobs_core::model::JobExecutionSummary]) -> Vec<String> {
    summaries.iter().map(|s| s.job_id.to_string()).collect()
}

/// Starts the next job of `thing` and returns the accepted reply.
pub fn start_next(service: &mut JobsService, thing: &str) -> jobs_core::model::ExecutionReply {
    call(service, thing, "start-next", "{}").accepted()
}

/// Updates job `id` of `thing` with a raw JSON body.
pub fn update(service: &mut JobsService, thing: &str, id: &str, body: &str) -> Answer {
    call(service, thing, &format!("{id}/update"), body)
}

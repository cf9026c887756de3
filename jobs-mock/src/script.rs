//! [`Script`]: how the [`MockBroker`](crate::MockBroker) answers a request topic.

use std::fmt;
use std::sync::Arc;

use jobs_core::RejectCode;
use jobs_core::topics::ReplyKind;
use serde_json::{Value, json};

use crate::broker::topic_matches;

type Responder = dyn Fn(&str, &[u8]) -> Vec<(String, Vec<u8>)> + Send + Sync;

/// A scripted answer to requests on a topic; see [`MockBroker::script`](crate::MockBroker::script).
///
/// JSON bodies get the request's `clientToken` added (unless [`token`](Self::token) or
/// [`without_token`](Self::without_token) say otherwise), and go to the request topic plus
/// `/accepted` or `/rejected`.
#[derive(Clone)]
#[must_use]
pub struct Script {
    action: Action,
    token: TokenMode,
    copies: usize,
    held: bool,
    times: Option<usize>,
}

#[derive(Clone)]
enum Action {
    Json(ReplyKind, Arc<Value>),
    Raw(ReplyKind, Arc<[u8]>),
    Silent,
    Custom(Arc<Responder>),
}

#[derive(Clone)]
enum TokenMode {
    Echo,
    Omit,
    Fixed(String),
}

impl fmt::Debug for Script {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let action = match &self.action {
            Action::Json(kind, _) => format!("json {kind:?}"),
            Action::Raw(kind, bytes) => format!("raw {kind:?} ({} bytes)", bytes.len()),
            Action::Silent => "silent".into(),
            Action::Custom(_) => "custom".into(),
        };
        f.debug_struct("Script")
            .field("action", &action)
            .field("copies", &self.copies)
            .field("held", &self.held)
            .field("times", &self.times)
            .finish()
    }
}

impl Script {
    fn new(action: Action) -> Self {
        Self {
            action,
            token: TokenMode::Echo,
            copies: 1,
            held: false,
            times: None,
        }
    }

    /// Answers on `/accepted` with `body` (a JSON object) plus the request's token.
    pub fn accept(body: Value) -> Self {
        Self::new(Action::Json(ReplyKind::Accepted, Arc::new(body)))
    }

    /// Answers on `/rejected` with `{"code", "message"}` plus the request's token.
    pub fn reject(code: RejectCode, message: &str) -> Self {
        Self::reject_with(json!({"code": code, "message": message}))
    }

    /// Answers on `/rejected` with `body` (a JSON object) plus the request's token.
    pub fn reject_with(body: Value) -> Self {
        Self::new(Action::Json(ReplyKind::Rejected, Arc::new(body)))
    }

    /// Answers on `/accepted` or `/rejected` with exactly these bytes (corrupt or oversized
    /// payloads); no token is added.
    pub fn raw(kind: ReplyKind, payload: impl Into<Vec<u8>>) -> Self {
        Self::new(Action::Raw(kind, Arc::from(payload.into())))
    }

    /// Never answers.
    pub fn silent() -> Self {
        Self::new(Action::Silent)
    }

    /// Answers with whatever `responder` returns for the request's topic and payload: a list of
    /// `(topic, payload)` messages, published as the broker with QoS 1 (like
    /// [`MockBroker::inject`](crate::MockBroker::inject)).
    ///
    /// The responder runs on the publishing thread, after the request was delivered to its
    /// subscribers, with no broker lock held: it may use the broker (inject, read
    /// [`published`](crate::MockBroker::published), add scripts). Calls for concurrent
    /// requests may run at the same time.
    pub fn custom(
        responder: impl Fn(&str, &[u8]) -> Vec<(String, Vec<u8>)> + Send + Sync + 'static,
    ) -> Self {
        Self::new(Action::Custom(Arc::new(responder)))
    }

    /// Holds the answer until [`MockBroker::release_held`](crate::MockBroker::release_held).
    pub fn held(mut self) -> Self {
        self.held = true;
        self
    }

    /// Sends the answer twice.
    pub fn twice(mut self) -> Self {
        self.copies = 2;
        self
    }

    /// Answers only the next `n` requests; after that the script no longer matches.
    pub fn times(mut self, n: usize) -> Self {
        self.times = Some(n);
        self
    }

    /// Puts `token` in the answer instead of the request's.
    pub fn token(mut self, token: &str) -> Self {
        self.token = TokenMode::Fixed(token.to_owned());
        self
    }

    /// Leaves the token out of the answer.
    pub fn without_token(mut self) -> Self {
        self.token = TokenMode::Omit;
        self
    }
}

/// A reply computed from a script: delivered now, or held.
pub(crate) enum Reply {
    Now(String, Vec<u8>),
    Held(String, Vec<u8>),
}

pub(crate) struct ScriptEntry {
    filter: String,
    script: Script,
    used: usize,
}

impl ScriptEntry {
    pub(crate) fn new(filter: &str, script: Script) -> Self {
        Self {
            filter: filter.to_owned(),
            script,
            used: 0,
        }
    }

    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.script.times.is_none_or(|n| self.used < n) && topic_matches(&self.filter, topic)
    }

    /// Counts one use and returns the script to answer it with (a cheap clone), so that the
    /// broker can compute the answer after releasing its lock.
    pub(crate) fn claim(&mut self) -> Script {
        self.used += 1;
        self.script.clone()
    }
}

impl Script {
    /// Computes the answer to one request. Runs a [`custom`](Self::custom) responder, so the
    /// broker calls it with no lock held.
    pub(crate) fn answer(&self, topic: &str, request: &[u8]) -> Vec<Reply> {
        let reply_topic = |kind: &ReplyKind| match kind {
            ReplyKind::Accepted => format!("{topic}/accepted"),
            ReplyKind::Rejected => format!("{topic}/rejected"),
        };
        let messages: Vec<(String, Vec<u8>)> = match &self.action {
            Action::Silent => Vec::new(),
            Action::Raw(kind, bytes) => vec![(reply_topic(kind), bytes.to_vec())],
            Action::Custom(responder) => responder(topic, request),
            Action::Json(kind, body) => {
                let mut body = Value::clone(body);
                let token = match &self.token {
                    TokenMode::Echo => request_token(request),
                    TokenMode::Omit => None,
                    TokenMode::Fixed(token) => Some(token.clone()),
                };
                if let (Some(token), Some(object)) = (token, body.as_object_mut()) {
                    object.insert("clientToken".into(), Value::String(token));
                }
                vec![(reply_topic(kind), body.to_string().into_bytes())]
            }
        };
        let mut replies = Vec::new();
        for _ in 0..self.copies {
            for (topic, payload) in &messages {
                let (topic, payload) = (topic.clone(), payload.clone());
                replies.push(if self.held {
                    Reply::Held(topic, payload)
                } else {
                    Reply::Now(topic, payload)
                });
            }
        }
        replies
    }
}

/// The `clientToken` of a request, if it is a JSON object with one.
pub fn request_token(request: &[u8]) -> Option<String> {
    let value: Value = serde_json::from_slice(request).ok()?;
    value.get("clientToken")?.as_str().map(str::to_owned)
}

//! [`Jobs`]: the Jobs of one thing — pending list, start-next, describe of `$next`, events.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, trace};
use serde::de::DeserializeOwned;

use crate::client::Client;
use crate::error::{Error, InvalidInput, Operation, Rejection};
use crate::job::Job;
use crate::model::{
    ErrorReply, ExecutionReply, GetPendingRequest, JobExecutionsChanged, NextJobExecutionChanged,
    PendingJobs, RejectCode, StartNextRequest,
};
use crate::names::{JobId, NEXT_JOB, StatusDetails, StepTimeout, ThingName};
use crate::pending::Expected;
use crate::shared::Shared;
use crate::topics::{ReplyKind, RequestKind};
use crate::transport::{QoS, SubscribeOutcome, TransportError};

/// The default time a call waits for its reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest MQTT payload AWS IoT Core accepts.
const MAX_PAYLOAD: usize = 128 * 1024;

/// An event the service pushed to the thing.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// `notify`: the list of pending executions changed.
    JobsChanged(JobExecutionsChanged),
    /// `notify-next`: the head of the pending queue changed (its `execution` is `None` when the
    /// queue became empty).
    NextJobChanged(NextJobExecutionChanged),
}

/// The Jobs of one thing over a shared [`Client`]: the seed's `Jobs(thing)`.
///
/// Construction subscribes once, in one SUBSCRIBE, to the six filters that cover every reply
/// and event of the thing, and waits for the SUBACK before anything is published. Cloning is
/// cheap and shares the state. When the last clone is dropped the thing is unregistered from
/// the client; its filters stay subscribed on the connection and serve a later `Jobs` of the
/// same thing.
///
/// # Threading
/// `Jobs` is `Send + Sync`, and every method may be called from many threads at once: each call
/// waits on its own condition variable for the reply carrying its own client token.
///
/// # Timeouts
/// Every blocking call is bounded: by the default set with [`JobsBuilder::timeout`]
/// ([`DEFAULT_TIMEOUT`] unless set), or by the `_timeout` variant's argument. The time counts
/// from the start of the call, including any re-subscription and the publish.
///
/// # Reconnects
/// When the transport reconnects without resuming the session, [`changed`](Self::changed)
/// becomes `true` (notifications may have been missed) and the next call re-subscribes before
/// publishing. When the connection drops, calls waiting for a reply fail at once with
/// [`TransportError::ConnectionLost`].
#[derive(Debug, Clone)]
pub struct Jobs {
    pub(crate) client: Client,
    pub(crate) shared: Arc<Shared>,
    pub(crate) timeout: Duration,
}

/// Configures and builds a [`Jobs`]; see [`Jobs::builder`].
#[derive(Debug)]
#[must_use]
pub struct JobsBuilder<'a> {
    client: &'a Client,
    thing: String,
    timeout: Duration,
}

impl JobsBuilder<'_> {
    /// The default time each call waits for its reply. Defaults to [`DEFAULT_TIMEOUT`] (10 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates the thing name, subscribes and waits for the SUBACK.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a bad thing name or one this client already serves;
    /// [`Error::Transport`] when subscribing failed or a filter was refused;
    /// [`Error::Timeout`] when the subscription did not complete within the timeout.
    pub fn build(self) -> Result<Jobs, Error> {
        let deadline = deadline_after(self.timeout);
        let thing = ThingName::new(self.thing)?;
        let shared = Arc::new(Shared::new(
            thing.clone(),
            Arc::downgrade(&self.client.router),
        ));
        if self.client.router.register(&shared).is_none() {
            return Err(InvalidInput::DuplicateThing(thing.to_string()).into());
        }
        let jobs = Jobs {
            client: self.client.clone(),
            shared,
            timeout: self.timeout,
        };
        jobs.ensure_subscribed(deadline, self.timeout)?;
        Ok(jobs)
    }
}

impl Jobs {
    /// Creates the Jobs of `thing` with default options; see [`JobsBuilder::build`].
    ///
    /// # Errors
    /// As for [`JobsBuilder::build`].
    pub fn new(client: &Client, thing: &str) -> Result<Self, Error> {
        Self::builder(client, thing).build()
    }

    /// Starts configuring the Jobs of `thing`.
    pub fn builder<'a>(client: &'a Client, thing: &str) -> JobsBuilder<'a> {
        JobsBuilder {
            client,
            thing: thing.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// The thing these jobs belong to.
    pub fn thing_name(&self) -> &ThingName {
        &self.shared.thing
    }

    /// The default per-call timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Returns `true` if the service reported a change since the last call, and clears the flag.
    ///
    /// A change is a `notify` or `notify-next` event. The flag is also `true` on the first call
    /// (so a polling loop lists once at start-up) and after a reconnect that did not resume the
    /// session (notifications may have been missed). Never blocks.
    pub fn changed(&self) -> bool {
        self.shared.changed.swap(false, Ordering::AcqRel)
    }

    /// Lists the pending executions: the IN_PROGRESS ones, then the QUEUED ones (at most 10 in
    /// all, as the service caps the list).
    ///
    /// # Errors
    /// [`Error::Rejected`], [`Error::Timeout`], [`Error::Transport`], [`Error::Decode`].
    pub fn list(&self) -> Result<Vec<Job>, Error> {
        self.list_timeout(self.timeout)
    }

    /// [`list`](Self::list) with its own timeout.
    ///
    /// # Errors
    /// As for [`list`](Self::list).
    pub fn list_timeout(&self, timeout: Duration) -> Result<Vec<Job>, Error> {
        let pending: PendingJobs = self.request(
            Operation::GetPending,
            RequestKind::GetPending,
            None,
            timeout,
            |token| {
                serde_json::to_vec(&GetPendingRequest {
                    client_token: Some(token.into()),
                })
            },
        )?;
        let in_progress = pending.in_progress_jobs.into_iter().map(|s| (s, true));
        let queued = pending.queued_jobs.into_iter().map(|s| (s, false));
        Ok(in_progress
            .chain(queued)
            .filter_map(|(summary, started)| Job::from_summary(self.clone(), summary, started))
            .collect())
    }

    /// Starts the next pending execution (StartNextPendingJobExecution) with default options:
    /// the IN_PROGRESS one if there is one, else the oldest QUEUED one, which becomes
    /// IN_PROGRESS. Returns `None` when nothing is pending.
    ///
    /// # Errors
    /// As for [`list`](Self::list).
    pub fn start_next(&self) -> Result<Option<Job>, Error> {
        self.start_next_with(StartNext::new())
    }

    /// [`start_next`](Self::start_next) with status details, a step timer or its own timeout.
    ///
    /// # Errors
    /// As for [`list`](Self::list), and [`Error::InvalidInput`] for [`StepTimeout::CANCEL`].
    pub fn start_next_with(&self, options: StartNext) -> Result<Option<Job>, Error> {
        if options.step_timeout.is_some_and(StepTimeout::is_cancel) {
            return Err(InvalidInput::StepTimeoutCancelOutsideUpdate.into());
        }
        let request = StartNextRequest {
            status_details: options.status_details,
            step_timeout_in_minutes: options.step_timeout.map(StepTimeout::as_minutes),
            client_token: None,
        };
        let reply: ExecutionReply = self.request(
            Operation::StartNext,
            RequestKind::StartNext,
            None,
            options.timeout.unwrap_or(self.timeout),
            |token| {
                serde_json::to_vec(&StartNextRequest {
                    client_token: Some(token.into()),
                    ..request.clone()
                })
            },
        )?;
        Ok(reply
            .execution
            .and_then(|e| Job::from_execution(self.clone(), e)))
    }

    /// Describes the next pending execution (`$next`), with its document. Returns `None` when
    /// nothing is pending.
    ///
    /// The service's answer when nothing is pending is undocumented: an accepted reply without
    /// `execution` and a `ResourceNotFound` rejection are both read as "nothing pending".
    ///
    /// # Errors
    /// As for [`list`](Self::list).
    pub fn describe_next(&self) -> Result<Option<Job>, Error> {
        self.describe_next_timeout(self.timeout)
    }

    /// [`describe_next`](Self::describe_next) with its own timeout.
    ///
    /// # Errors
    /// As for [`list`](Self::list).
    pub fn describe_next_timeout(&self, timeout: Duration) -> Result<Option<Job>, Error> {
        match self.describe(None, None, true, timeout) {
            Ok(reply) => Ok(reply
                .execution
                .and_then(|e| Job::from_execution(self.clone(), e))),
            Err(Error::Rejected { rejection, .. })
                if rejection.code == RejectCode::ResourceNotFound =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// A handle on the execution of job `id`, without asking the service anything yet: the
    /// seed's `Job(thing, jobid)`. Call [`Job::describe`] to fill it.
    ///
    /// # Errors
    /// [`InvalidInput::JobId`] for an ID outside 1–64 characters of `[a-zA-Z0-9_-]`.
    pub fn job(&self, id: &str) -> Result<Job, InvalidInput> {
        Ok(Job::new(self.clone(), JobId::new(id)?))
    }

    /// Takes the oldest buffered event without blocking.
    pub fn try_next_event(&self) -> Option<Event> {
        self.shared.events.lock().pop_front()
    }

    /// Waits up to `timeout` for the next `notify` or `notify-next` event; `Ok(None)` when none
    /// came. Events are buffered (up to 64, oldest dropped first) from construction on.
    ///
    /// After a reconnect that did not resume the session it restores the subscriptions first,
    /// so a device that only waits for events keeps hearing them.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Timeout`] when restoring the subscriptions failed.
    pub fn next_event(&self, timeout: Duration) -> Result<Option<Event>, Error> {
        let deadline = deadline_after(timeout);
        loop {
            self.ensure_subscribed(deadline, timeout)?;
            let epoch = self.client.router.epoch();
            let mut events = self.shared.events.lock();
            loop {
                if let Some(event) = events.pop_front() {
                    return Ok(Some(event));
                }
                if self.client.router.epoch() != epoch {
                    break;
                }
                if self
                    .shared
                    .wake
                    .wait_until(&mut events, deadline)
                    .timed_out()
                {
                    return Ok(events.pop_front());
                }
            }
        }
    }

    pub(crate) fn describe(
        &self,
        job: Option<&JobId>,
        execution_number: Option<i64>,
        include_job_document: bool,
        timeout: Duration,
    ) -> Result<ExecutionReply, Error> {
        let job = job.map_or(NEXT_JOB, JobId::as_str);
        self.request(
            Operation::Describe,
            RequestKind::Describe,
            Some(job),
            timeout,
            |token| {
                serde_json::to_vec(&crate::model::DescribeRequest {
                    execution_number,
                    include_job_document: Some(include_job_document),
                    client_token: Some(token.into()),
                })
            },
        )
    }

    /// Publishes one request and waits for its reply: register under a fresh token, publish
    /// with no lock held, wait on the call's own condvar, decode.
    pub(crate) fn request<T: DeserializeOwned>(
        &self,
        operation: Operation,
        kind: RequestKind,
        job: Option<&str>,
        timeout: Duration,
        encode: impl FnOnce(&str) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<T, Error> {
        let deadline = deadline_after(timeout);
        self.ensure_subscribed(deadline, timeout)?;
        let topic = self.shared.topics.request(kind, job);
        let token = self.client.router.next_token();
        let registration = self.shared.pending.register(
            token,
            Expected {
                request: kind,
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
        debug!(
            "{operation} for {}: publishing with token {}",
            self.shared.thing,
            registration.token()
        );
        trace!(
            "{operation} request on {topic}: {}",
            String::from_utf8_lossy(&payload)
        );
        // Nothing is published once the call's deadline has passed: the caller is told it timed
        // out, and a request it was told about must not be applied behind its back.
        if Instant::now() >= deadline {
            return Err(Error::Timeout {
                operation,
                waited: timeout,
            });
        }
        self.client
            .transport
            .publish(&topic, &payload, QoS::AtLeastOnce, deadline)
            .map_err(|source| transport_error(operation, source, deadline, timeout))?;
        let reply = match registration.wait_until(deadline) {
            None => {
                return Err(Error::Timeout {
                    operation,
                    waited: timeout,
                });
            }
            Some(Err(source)) => return Err(Error::Transport { operation, source }),
            Some(Ok(reply)) => reply,
        };
        let reply_topic = || {
            let suffix = match reply.kind {
                ReplyKind::Accepted => "/accepted",
                ReplyKind::Rejected => "/rejected",
            };
            format!("{topic}{suffix}")
        };
        match reply.kind {
            ReplyKind::Accepted => decode(&reply.payload, reply_topic),
            ReplyKind::Rejected => {
                let error: ErrorReply = decode(&reply.payload, reply_topic)?;
                debug!(
                    "{operation} for {} rejected with {}",
                    self.shared.thing, error.code
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
    /// subscribes (with no lock held); concurrent callers wait for its result.
    fn ensure_subscribed(&self, deadline: Instant, timeout: Duration) -> Result<(), Error> {
        let operation = Operation::Subscribe;
        let epoch = self.client.router.epoch();
        {
            let mut state = self.shared.subscription.lock();
            loop {
                if state.epoch == Some(epoch) {
                    return Ok(());
                }
                if !state.in_progress {
                    state.in_progress = true;
                    break;
                }
                if self
                    .shared
                    .subscribed
                    .wait_until(&mut state, deadline)
                    .timed_out()
                {
                    return Err(Error::Timeout {
                        operation,
                        waited: timeout,
                    });
                }
            }
        }
        let result = self.subscribe_filters(deadline);
        let mut state = self.shared.subscription.lock();
        state.in_progress = false;
        if result.is_ok() {
            state.epoch = Some(epoch);
        }
        self.shared.subscribed.notify_all();
        result.map_err(|source| transport_error(operation, source, deadline, timeout))
    }

    fn subscribe_filters(&self, deadline: Instant) -> Result<(), TransportError> {
        let filters = self.shared.topics.filters();
        let filters: Vec<&str> = filters.iter().map(String::as_str).collect();
        debug!(
            "subscribing {} filters for {}",
            filters.len(),
            self.shared.thing
        );
        let outcomes = self
            .client
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
}

/// Options of [`Jobs::start_next_with`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct StartNext {
    status_details: Option<StatusDetails>,
    step_timeout: Option<StepTimeout>,
    timeout: Option<Duration>,
}

impl StartNext {
    /// No details, no step timer, the default timeout.
    pub fn new() -> Self {
        Self::default()
    }

    /// Details to set if a QUEUED execution is started. Defaults to none (unchanged).
    pub fn status_details(mut self, details: StatusDetails) -> Self {
        self.status_details = Some(details);
        self
    }

    /// A step timer for the started execution. Defaults to none.
    pub fn step_timeout(mut self, step_timeout: StepTimeout) -> Self {
        self.step_timeout = Some(step_timeout);
        self
    }

    /// This call's timeout. Defaults to the `Jobs` timeout.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

fn deadline_after(timeout: Duration) -> Instant {
    let now = Instant::now();
    // A timeout too large to represent waits a year: bounded, and longer than any real use.
    now.checked_add(timeout)
        .unwrap_or(now + Duration::from_secs(365 * 24 * 3600))
}

/// A transport failure of `operation`; a transport timeout at or after the call's deadline is
/// the call's own timeout.
fn transport_error(
    operation: Operation,
    source: TransportError,
    deadline: Instant,
    timeout: Duration,
) -> Error {
    match source {
        TransportError::Timeout if Instant::now() >= deadline => Error::Timeout {
            operation,
            waited: timeout,
        },
        source => Error::Transport { operation, source },
    }
}

fn decode<T: DeserializeOwned>(payload: &[u8], topic: impl FnOnce() -> String) -> Result<T, Error> {
    serde_json::from_slice(payload).map_err(|source| Error::Decode {
        topic: topic(),
        source,
    })
}

//! [`Jobs`]: the Jobs of one thing — pending list, start-next, describe of `$next`, events.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::client::{Client, Registration};
use crate::engine::{self, Accepted, Deadline};
use crate::error::{Error, InvalidInput, SettingProblem};
use crate::job::Job;
use crate::model::{
    ExecutionReply, GetPendingRequest, JobExecutionsChanged, NextJobExecutionChanged, PendingJobs,
    StartNextRequest,
};
use crate::names::{JobId, NEXT_JOB, StatusDetails, StepTimeout, ThingName};
use crate::shared::{Notice, Shared};
use crate::transport::TransportError;
use crate::{ExecutionNumber, Operation, RejectCode};

/// The default time a call waits for its reply.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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

/// The Jobs of one thing over a shared [`Client`].
///
/// Construction subscribes once, in one SUBSCRIBE, to the six filters that cover every reply
/// and event of the thing, and waits for the SUBACK before anything is published. Cloning is
/// cheap and shares the state. [`close`](Self::close) unsubscribes the filters and ends the
/// thing's registration; dropping the last clone ends the registration at once, without
/// unsubscribing (that would block) — the filters then stay subscribed until the connection
/// ends, and serve a later `Jobs` of the same thing.
///
/// # Threading
/// `Jobs` is `Send + Sync`, and every method may be called from many threads at once: each call
/// waits on its own condition variable for the reply carrying its own client token.
///
/// # Timeouts
/// Every blocking call waits at most the handle's timeout: [`DEFAULT_TIMEOUT`] unless set with
/// [`JobsBuilder::timeout`], and for any call [`with_timeout`](Self::with_timeout) gives a
/// handle with another one (`jobs.with_timeout(d).list()`). The time counts from the start of
/// the call and covers everything it does: re-subscribing, the publish and its PUBACK, and the
/// reply. Nothing is published after the deadline.
///
/// # Reconnects
/// When the transport reconnects without resuming the session, [`changed`](Self::changed)
/// becomes `true` (notifications may have been missed) and the next call re-subscribes before
/// publishing. When the connection drops, calls waiting for a reply fail at once with
/// [`TransportError::ConnectionLost`].
#[derive(Clone)]
pub struct Jobs {
    pub(crate) client: Client,
    registration: Arc<Registration>,
    pub(crate) timeout: Duration,
}

impl fmt::Debug for Jobs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Jobs")
            .field("thing", &self.shared().thing)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
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
    /// The time each call waits for its reply. Defaults to [`DEFAULT_TIMEOUT`] (10 s); zero is
    /// refused by [`build`](Self::build).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Validates the thing name, subscribes and waits for the SUBACK, at most the timeout.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a zero timeout ([`InvalidInput::Setting`]), a bad thing
    /// name ([`InvalidInput::ThingName`]) or one this client already serves
    /// ([`InvalidInput::DuplicateThing`]: clone that `Jobs` instead);
    /// [`Error::Transport`] when subscribing failed or a filter was refused;
    /// [`Error::Timeout`] when the SUBACK did not come within the timeout.
    pub fn build(self) -> Result<Jobs, Error> {
        if self.timeout.is_zero() {
            return Err(InvalidInput::Setting {
                name: "timeout",
                problem: SettingProblem::Zero,
            }
            .into());
        }
        let deadline = Deadline::after(self.timeout);
        let thing = ThingName::new(self.thing)?;
        let registration = Arc::new(Registration::new(self.client, thing)?);
        let jobs = Jobs {
            client: self.client.clone(),
            registration,
            timeout: self.timeout,
        };
        engine::ensure_subscribed(&jobs.client, jobs.shared(), None, deadline)?;
        Ok(jobs)
    }
}

impl Jobs {
    /// Creates the Jobs of `thing` with default options; see [`JobsBuilder::build`].
    ///
    /// # Errors
    /// As for [`JobsBuilder::build`].
    pub fn new(client: &Client, thing: impl AsRef<str>) -> Result<Self, Error> {
        Self::builder(client, thing).build()
    }

    /// Starts configuring the Jobs of `thing` (a `&str` or a [`ThingName`]).
    pub fn builder(client: &Client, thing: impl AsRef<str>) -> JobsBuilder<'_> {
        JobsBuilder {
            client,
            thing: thing.as_ref().to_owned(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    pub(crate) fn shared(&self) -> &Shared {
        &self.registration.shared
    }

    /// The thing these jobs belong to.
    pub fn thing_name(&self) -> &ThingName {
        &self.shared().thing
    }

    /// The time each call of this handle waits.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A handle on the same thing (a clone) whose calls wait at most `timeout`: the one way to
    /// give any call its own timeout, as in `jobs.with_timeout(Duration::from_millis(500)).list()`.
    /// [`Job`]s obtained from it inherit the timeout.
    #[must_use]
    pub fn with_timeout(&self, timeout: Duration) -> Self {
        Self {
            timeout,
            ..self.clone()
        }
    }

    /// Returns `true` if the service reported a change since the last call, and clears the flag.
    ///
    /// A change is a `notify` or `notify-next` event. The flag is also `true` on the first call
    /// (so a polling loop lists once at start-up) and after a reconnect that did not resume the
    /// session (notifications may have been missed). Never blocks.
    pub fn changed(&self) -> bool {
        self.shared().changed.swap(false, Ordering::AcqRel)
    }

    /// Lists the pending executions: the IN_PROGRESS ones, then the QUEUED ones (at most 10 in
    /// all, as the service caps the list).
    ///
    /// # Errors
    /// [`Error::Rejected`], [`Error::Timeout`], [`Error::Transport`]; [`Error::Decode`] when
    /// the reply is malformed (a summary without `jobId`, for example).
    pub fn list(&self) -> Result<Vec<Job>, Error> {
        let reply: Accepted<PendingJobs> = self.request(Operation::GetPending, None, |token| {
            serde_json::to_vec(&GetPendingRequest {
                client_token: Some(token.into()),
            })
        })?;
        let pending = reply.body;
        let in_progress = pending.in_progress_jobs.into_iter().map(|s| (s, true));
        let queued = pending.queued_jobs.into_iter().map(|s| (s, false));
        Ok(in_progress
            .chain(queued)
            .map(|(summary, started)| Job::from_summary(self.clone(), summary, started))
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

    /// [`start_next`](Self::start_next) with status details or a step timer.
    ///
    /// # Errors
    /// As for [`list`](Self::list); [`Error::InvalidInput`] for [`StepTimeout::CANCEL`] or
    /// status details that break the rules (details read from a reply are checked again).
    pub fn start_next_with(&self, options: StartNext) -> Result<Option<Job>, Error> {
        if options.step_timeout.is_some_and(StepTimeout::is_cancel) {
            return Err(InvalidInput::StepTimeoutCancelOutsideUpdate.into());
        }
        if let Some(details) = &options.status_details {
            details.validate()?;
        }
        let request = StartNextRequest {
            status_details: options.status_details,
            step_timeout_in_minutes: options.step_timeout.map(StepTimeout::as_minutes),
            client_token: None,
        };
        let reply: Accepted<ExecutionReply> =
            self.request(Operation::StartNext, None, move |token| {
                serde_json::to_vec(&StartNextRequest {
                    client_token: Some(token.into()),
                    ..request
                })
            })?;
        Ok(reply
            .body
            .execution
            .map(|execution| Job::from_execution(self.clone(), execution)))
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
        match self.describe(None, None, true) {
            Ok(reply) => Ok(reply
                .body
                .execution
                .map(|execution| Job::from_execution(self.clone(), execution))),
            Err(Error::Rejected { rejection, .. })
                if rejection.code == RejectCode::ResourceNotFound =>
            {
                Ok(None)
            }
            Err(error) => Err(error),
        }
    }

    /// A handle on the execution of job `id` (a `&str` or a [`JobId`]), without asking the
    /// service anything yet. Call [`Job::describe`] to fill it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] ([`InvalidInput::JobId`]) for an ID outside 1–64 characters of
    /// `[a-zA-Z0-9_-]`.
    pub fn job(&self, id: impl AsRef<str>) -> Result<Job, Error> {
        Ok(Job::new(self.clone(), JobId::new(id.as_ref())?))
    }

    /// Takes the oldest buffered event without blocking.
    pub fn try_next_event(&self) -> Option<Event> {
        self.shared().events.lock().pop_front()
    }

    /// Waits up to this handle's timeout for the next `notify` or `notify-next` event;
    /// `Ok(None)` when none came (`jobs.with_timeout(d).next_event()` waits `d`). Events are
    /// buffered (up to 64, oldest dropped first) from construction on.
    ///
    /// After a reconnect that did not resume the session it restores the subscriptions first,
    /// so a device that only waits for events keeps hearing them.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Timeout`] when restoring the subscriptions failed;
    /// [`Error::InvalidInput`] ([`InvalidInput::Closed`]) after [`close`](Self::close).
    pub fn next_event(&self) -> Result<Option<Event>, Error> {
        let deadline = Deadline::after(self.timeout);
        let shared = self.shared();
        loop {
            engine::check_open(shared)?;
            // The epoch is read first: a reconnect after this point is seen below, and the
            // subscriptions restored on the next turn.
            let epoch = self.client.router.epoch();
            engine::ensure_subscribed_in(&self.client, shared, None, deadline, epoch)?;
            let mut events = shared.events.lock();
            loop {
                if let Some(event) = events.pop_front() {
                    return Ok(Some(event));
                }
                if self.client.router.epoch() != epoch || shared.closed.load(Ordering::Acquire) {
                    break;
                }
                if shared.wake.wait_until(&mut events, deadline.at).timed_out() {
                    return Ok(events.pop_front());
                }
            }
        }
    }

    /// Releases the thing: unsubscribes its six filters (waiting at most this handle's
    /// timeout for the UNSUBACK), then ends its registration, so a gateway that stops serving a
    /// thing stops paying its subscription quota. Every clone of this `Jobs` is closed at once:
    /// their calls — in flight, waiting for a re-subscription, or later — fail with
    /// [`InvalidInput::Closed`] and publish nothing more, a waiting
    /// [`next_event`](Self::next_event) returns that error, and a job runner on the thing
    /// returns it from `run`. A new `Jobs` of the thing can be built once `close` has
    /// returned: the UNSUBSCRIBE went out before the thing was unregistered, so it can never
    /// remove the new `Jobs`'s subscriptions.
    ///
    /// # Errors
    /// [`Error::Transport`] or [`Error::Timeout`] when the UNSUBSCRIBE failed; the thing is
    /// closed and unregistered all the same (its filters go with the session).
    pub fn close(self) -> Result<(), Error> {
        let deadline = Deadline::after(self.timeout);
        let shared = self.shared();
        if shared.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        {
            let _events = shared.events.lock();
            shared.wake.notify_all();
        }
        self.client.connection.table.wake_all();
        shared.tell_watchers(|| Notice::Wake);
        shared.pending.fail_all(|| TransportError::NotConnected);
        self.registration
            .close(deadline.at)
            .map_err(|source| deadline.transport(None, source))
    }

    pub(crate) fn describe(
        &self,
        job: Option<&JobId>,
        execution_number: Option<ExecutionNumber>,
        include_job_document: bool,
    ) -> Result<Accepted<ExecutionReply>, Error> {
        let job = job.map_or(NEXT_JOB, JobId::as_str);
        self.request(Operation::Describe, Some(job), |token| {
            serde_json::to_vec(&crate::model::DescribeRequest {
                execution_number,
                include_job_document: Some(include_job_document),
                client_token: Some(token.into()),
            })
        })
    }

    /// One request with this handle's timeout; see [`engine::request`].
    pub(crate) fn request<T: DeserializeOwned>(
        &self,
        operation: Operation,
        job: Option<&str>,
        encode: impl FnOnce(&str) -> Result<Vec<u8>, serde_json::Error>,
    ) -> Result<Accepted<T>, Error> {
        engine::request(
            &self.client,
            self.shared(),
            operation,
            job,
            Deadline::after(self.timeout),
            encode,
        )
    }
}

/// Options of [`Jobs::start_next_with`].
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct StartNext {
    status_details: Option<StatusDetails>,
    step_timeout: Option<StepTimeout>,
}

impl StartNext {
    /// No details, no step timer.
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
}

//! [`RunnerBuilder`]: the runner's handlers, hooks and settings, checked at
//! [`build`](RunnerBuilder::build).

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use super::context::{Context, Outcome};
use super::ended::Ended;
use super::pacing::Backoff;
use super::{Config, EndedFn, HandlerError, HandlerFn, Runner, StopHandle};
use crate::error::SettingProblem;
use crate::{Error, InvalidInput, Jobs, StepTimeout, ThingName};

/// Configures a [`Runner`]; see [`Runner::builder`].
#[must_use]
pub struct RunnerBuilder {
    pub(super) things: Vec<Jobs>,
    pub(super) handlers: HashMap<String, Arc<HandlerFn>>,
    pub(super) fallback: Option<Arc<HandlerFn>>,
    pub(super) on_ended: Option<Arc<EndedFn>>,
    pub(super) operation_field: String,
    pub(super) max_concurrent: usize,
    pub(super) step_timeout: Option<StepTimeout>,
    pub(super) backoff: Backoff,
    pub(super) stop_grace: Duration,
    pub(super) resync_interval: Option<Duration>,
    pub(super) handler_threads: Option<usize>,
    pub(super) request_threads: Option<usize>,
}

impl fmt::Debug for RunnerBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut operations: Vec<&String> = self.handlers.keys().collect();
        operations.sort();
        f.debug_struct("RunnerBuilder")
            .field("operations", &operations)
            .field("fallback", &self.fallback.is_some())
            .field("operation_field", &self.operation_field)
            .field("max_concurrent", &self.max_concurrent)
            .finish_non_exhaustive()
    }
}

impl RunnerBuilder {
    pub(super) fn new(jobs: &Jobs) -> Self {
        Self {
            things: vec![jobs.clone()],
            handlers: HashMap::new(),
            fallback: None,
            on_ended: None,
            operation_field: "operation".to_owned(),
            max_concurrent: 1,
            step_timeout: None,
            backoff: Backoff::default(),
            stop_grace: Duration::from_secs(10),
            resync_interval: None,
            handler_threads: None,
            request_threads: None,
        }
    }

    /// Serves another thing too: a gateway's runner serves every thing of its connection with
    /// one loop, a bounded pool of handler threads ([`handler_threads`](Self::handler_threads))
    /// and a few request threads ([`request_threads`](Self::request_threads)), with the same
    /// guarantees per execution as for one thing. A thing given twice is refused by
    /// [`build`](Self::build).
    pub fn thing(mut self, jobs: &Jobs) -> Self {
        self.things.push(jobs.clone());
        self
    }

    /// Serves these things too; see [`thing`](Self::thing).
    pub fn things<'a>(mut self, things: impl IntoIterator<Item = &'a Jobs>) -> Self {
        self.things.extend(things.into_iter().cloned());
        self
    }

    /// How many handlers may run at once for all the runner's things together: the size of
    /// its pool of handler threads. Defaults to `max_concurrent` × the number of things, at
    /// most 16; zero is refused by [`build`](Self::build).
    pub fn handler_threads(mut self, threads: usize) -> Self {
        self.handler_threads = Some(threads);
        self
    }

    /// How many requests the runner may have in flight at once (at most one per thing), each
    /// on a thread of its own. Defaults to 1 for one thing, 8 for several; zero is refused by
    /// [`build`](Self::build).
    pub fn request_threads(mut self, threads: usize) -> Self {
        self.request_threads = Some(threads);
        self
    }

    /// Runs `handler` for documents whose operation field is `operation`. A later handler for
    /// the same operation replaces the earlier one.
    pub fn handler(
        mut self,
        operation: &str,
        handler: impl Fn(&Context) -> Result<Outcome, HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.handlers
            .insert(operation.to_owned(), Arc::new(handler));
        self
    }

    /// Runs `handler` for documents no other handler accepts (no operation field, or an
    /// operation without a handler). Defaults to none: such documents are reported `REJECTED`.
    pub fn fallback(
        mut self,
        handler: impl Fn(&Context) -> Result<Outcome, HandlerError> + Send + Sync + 'static,
    ) -> Self {
        self.fallback = Some(Arc::new(handler));
        self
    }

    /// Calls `ended` exactly once for every execution the runner took on, when it is over for
    /// this runner: with how it ended ([`Ended`]) — the status the service holds when the
    /// service said it. Called on the thread that runs [`Runner::run`], under `catch_unwind`
    /// (a panic is logged and the runner goes on); it must return quickly, as the runner waits
    /// for it. Defaults to none.
    pub fn on_ended(mut self, ended: impl Fn(&Ended) + Send + Sync + 'static) -> Self {
        self.on_ended = Some(Arc::new(ended));
        self
    }

    /// The document field naming the operation. Defaults to `"operation"`.
    pub fn operation_field(mut self, field: &str) -> Self {
        field.clone_into(&mut self.operation_field);
        self
    }

    /// How many handlers may run at once for one thing. Defaults to 1; zero is refused by
    /// [`build`](Self::build).
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }

    /// A step timer started with each execution the runner starts. Defaults to none.
    pub fn step_timeout(mut self, step_timeout: StepTimeout) -> Self {
        self.step_timeout = Some(step_timeout);
        self
    }

    /// How the runner spaces its requests about one execution and its searches for work that
    /// found nothing or failed. Defaults to [`Backoff::default`] (1 s doubling to 1 minute); a
    /// zero initial delay or a maximum below the initial delay is refused by
    /// [`build`](Self::build).
    pub fn backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// How long a stop waits for running handlers and their reports. Defaults to 10 s; zero
    /// stops at once.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.stop_grace = grace;
        self
    }

    /// How often the runner looks for work and checks its running executions for each thing
    /// even without an event. Each look is one GetPending (and a describe per running
    /// execution) per thing, so a gateway's interval bounds its background requests: N things
    /// every interval. Defaults to 5 minutes, and for many things to at least 100 ms per
    /// thing (10 things a second); zero is refused by [`build`](Self::build).
    pub fn resync_interval(mut self, interval: Duration) -> Self {
        self.resync_interval = Some(interval);
        self
    }

    /// The runner.
    ///
    /// # Errors
    /// [`Error::InvalidInput`]: [`InvalidInput::StepTimeoutCancelOutsideUpdate`] for a step
    /// timeout of [`StepTimeout::CANCEL`]; [`InvalidInput::Setting`] for `max_concurrent`,
    /// `resync_interval`, `handler_threads` or `request_threads` of zero, or a backoff whose
    /// initial delay is zero or above its maximum; [`InvalidInput::DuplicateThing`] for a thing
    /// given twice.
    pub fn build(self) -> Result<Runner, Error> {
        if self.step_timeout.is_some_and(StepTimeout::is_cancel) {
            return Err(InvalidInput::StepTimeoutCancelOutsideUpdate.into());
        }
        let refuse = |name, problem| Err(InvalidInput::Setting { name, problem }.into());
        if self.max_concurrent == 0 {
            return refuse("max_concurrent", SettingProblem::Zero);
        }
        if self
            .resync_interval
            .is_some_and(|interval| interval.is_zero())
        {
            return refuse("resync_interval", SettingProblem::Zero);
        }
        if self.backoff.initial().is_zero() {
            return refuse("backoff", SettingProblem::Zero);
        }
        if self.backoff.max() < self.backoff.initial() {
            return refuse("backoff", SettingProblem::MaxBelowInitial);
        }
        if self.handler_threads == Some(0) {
            return refuse("handler_threads", SettingProblem::Zero);
        }
        if self.request_threads == Some(0) {
            return refuse("request_threads", SettingProblem::Zero);
        }
        let mut names: Vec<&ThingName> = self.things.iter().map(Jobs::thing_name).collect();
        names.sort();
        if let Some(twice) = names.windows(2).find(|pair| pair[0] == pair[1]) {
            return Err(InvalidInput::DuplicateThing(twice[0].clone()).into());
        }
        let count = self.things.len();
        let many = count > 1;
        let per_thing_look =
            Duration::from_millis(100).saturating_mul(u32::try_from(count).unwrap_or(u32::MAX));
        let (stop, stop_rx) = StopHandle::new();
        Ok(Runner {
            config: Arc::new(Config {
                handlers: self.handlers,
                fallback: self.fallback,
                on_ended: self.on_ended,
                operation_field: self.operation_field,
            }),
            handler_threads: self
                .handler_threads
                .unwrap_or_else(|| self.max_concurrent.saturating_mul(count).min(16)),
            request_threads: self.request_threads.unwrap_or(if many { 8 } else { 1 }),
            things: self.things,
            max_concurrent: self.max_concurrent,
            step_timeout: self.step_timeout,
            backoff: self.backoff,
            stop_grace: self.stop_grace,
            resync_interval: self
                .resync_interval
                .unwrap_or_else(|| Duration::from_secs(300).max(per_thing_look)),
            stop,
            stop_rx,
        })
    }
}

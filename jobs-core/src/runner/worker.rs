//! The handler's thread: choose the handler by the document's operation, run it under
//! `catch_unwind`, and report its outcome back to the runner through a guard that also fires
//! if anything on the thread panics — so the runner always hears back.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use log::{debug, info, warn};

use super::context::{Cancellation, Context, Outcome};
use super::ended::Key;
use super::{Config, reason};
use crate::model::JobExecution;
use crate::{Job, JobStatus, Jobs};

/// A handler's report back to the runner's loop.
#[derive(Debug)]
pub(crate) struct Done {
    pub(crate) key: Key,
    pub(crate) outcome: Outcome,
    /// What the handler's progress reports learned: the service ended the execution.
    pub(crate) ended_by_service: Option<Option<JobStatus>>,
}

/// Reports [`Done`] exactly once: with the handler's outcome, or, if the thread unwinds first,
/// with `FAILED`.
struct DoneGuard<F: FnOnce(Done) -> bool> {
    key: Key,
    cancellation: Cancellation,
    report: Option<F>,
    outcome: Option<Outcome>,
}

impl<F: FnOnce(Done) -> bool> Drop for DoneGuard<F> {
    fn drop(&mut self) {
        let outcome = self.outcome.take().unwrap_or_else(|| {
            warn!("the handler thread of {} panicked", self.key);
            Outcome::failed().with_details(reason("the handler panicked"))
        });
        let done = Done {
            key: self.key.clone(),
            outcome,
            ended_by_service: self.cancellation.ended_by_progress(),
        };
        // The loop may be gone: the runner stopped and abandoned this thread.
        if !self.report.take().is_some_and(|report| report(done)) {
            debug!("{}: the runner stopped; its outcome is dropped", self.key);
        }
    }
}

/// One execution's handler run.
pub(crate) struct Worker {
    pub(crate) config: Arc<Config>,
    pub(crate) jobs: Jobs,
    pub(crate) execution: JobExecution,
    pub(crate) resumed: bool,
    pub(crate) cancellation: Cancellation,
}

impl Worker {
    /// Runs the handler on this thread and gives `report` the outcome (it returns whether the
    /// runner took it).
    pub(crate) fn run(self, report: impl FnOnce(Done) -> bool) {
        let mut guard = DoneGuard {
            key: Key::of(&self.execution),
            cancellation: self.cancellation.clone(),
            report: Some(report),
            outcome: None,
        };
        guard.outcome = Some(self.outcome());
    }

    fn outcome(self) -> Outcome {
        let Some(document) = self.execution.job_document.clone() else {
            return Outcome::rejected().with_details(reason("the execution has no job document"));
        };
        let key = Key::of(&self.execution);
        debug!("{key} document: {}", document.as_json());
        let operation = document
            .to_value()
            .get(&self.config.operation_field)
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        let handler = operation
            .as_deref()
            .and_then(|operation| self.config.handlers.get(operation))
            .or(self.config.fallback.as_ref())
            .cloned();
        info!(
            "{key} starting (operation {}{})",
            operation.as_deref().unwrap_or("none"),
            if self.resumed { ", resumed" } else { "" }
        );
        let Some(handler) = handler else {
            let why = match &operation {
                Some(operation) => format!("no handler for operation {operation:?}"),
                None => format!(
                    "the document has no {:?} field",
                    self.config.operation_field
                ),
            };
            return Outcome::rejected().with_details(reason(&why));
        };
        let job = Job::from_execution(self.jobs, self.execution);
        let context = Context::new(job, document, operation, self.resumed, self.cancellation);
        match catch_unwind(AssertUnwindSafe(|| handler(&context))) {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(error)) => {
                info!("the handler of {key} failed: {error}");
                Outcome::failed().with_details(reason(&error.to_string()))
            }
            Err(_) => {
                warn!("the handler of {key} panicked");
                Outcome::failed().with_details(reason("the handler panicked"))
            }
        }
    }
}

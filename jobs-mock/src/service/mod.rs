//! A stateful simulator of the AWS IoT Jobs device API, for any number of things.
//!
//! [`JobsService`] is the pure core: it holds every execution per (thing, job) — status,
//! status details, version and execution numbers, timestamps from a [`Clock`], the job
//! document, timer deadlines — answers requests with the replies and events the protocol
//! prescribes, and offers a control plane ([`JobsService::create_job`],
//! [`JobsService::cancel_job`], [`JobsService::remove_thing`], [`JobsService::advance_clock`],
//! fault injection, state inspection). [`Simulator`] runs it over any
//! [`MqttTransport`](jobs_core::MqttTransport): the in-memory [`MockBroker`](crate::MockBroker)
//! in tests, a real broker when hosted live.
//!
//! # Behaviour
//! - **GetPendingJobExecutions** lists `inProgressJobs` then `queuedJobs` (both always
//!   present), IN_PROGRESS first, then queue (creation) order, at most 10 in all.
//! - **StartNextPendingJobExecution** returns the IN_PROGRESS execution unchanged if there is
//!   one (its details and timers untouched), else starts the oldest QUEUED one (status details
//!   and step timer applied, version +1); accepted without `execution` when nothing is
//!   pending. The execution includes `jobDocument`.
//! - **DescribeJobExecution** takes a job ID or `$next` (answered on the `$next` topics);
//!   `includeJobDocument` defaults to `true`; an `executionNumber` that is not the
//!   execution's gives `ResourceNotFound`, as does an unknown execution. With `$next` the
//!   `executionNumber` is ignored.
//! - **UpdateJobExecution** accepts `IN_PROGRESS`, `SUCCEEDED`, `FAILED` and `REJECTED`;
//!   `expectedVersion` as a number or numeric string; `includeJobExecutionState` and
//!   `includeJobDocument` (both default `false`); `statusDetails` replace the stored ones and
//!   are validated with the device-API rules; `stepTimeoutInMinutes` 1–10080 starts a new step
//!   timer (capped at the in-progress deadline), `-1` cancels it. Each accepted update adds 1
//!   to `versionNumber`.
//! - **Versions** start at 1 when queued; start-next's QUEUED→IN_PROGRESS and every accepted
//!   update add 1. Service-made changes (TIMED_OUT, CANCELED, REMOVED) do not: the docs say
//!   versions count device updates.
//! - **Execution numbers** count per thing (1, 2, … in creation order), as in the reference's
//!   worked example. There are no retries, so each job has one execution per thing.
//! - **Timers**: the job's in-progress timer starts when the execution becomes IN_PROGRESS;
//!   a step timer never runs past it. On expiry the execution becomes `TIMED_OUT` (terminal)
//!   with the usual events. Expiry is checked at the start of every request and control call,
//!   when [`JobsService::advance_clock`] moves the virtual clock, and every half second by the
//!   [`Simulator`] on the system clock. `approximateSecondsBeforeTimedOut` is the time left on
//!   the earlier of the two timers, present while a timer runs.
//! - **Events**: `notify` is sent when an execution is queued, reaches a terminal status, or
//!   changes status while not at the head of the pending list; `notify-next` when the head of
//!   the list changes (to another execution, or to none: the empty form `{"timestamp":…}`).
//!   `notify` lists at most 10 executions; with nothing pending it is `{"timestamp":…,"jobs":{}}`.
//! - **Rejections** echo the request's `clientToken` when it is a string, and always carry
//!   `timestamp`; `VersionMismatch` and `InvalidStateTransition` carry `executionState`.
//!   Checks run in this order: topic (`InvalidTopic`); injected faults (`RequestThrottled`,
//!   then `InternalError`); JSON (`InvalidJson`); shape, token and field values
//!   (`InvalidRequest`); existence (`ResourceNotFound`); `expectedVersion`
//!   (`VersionMismatch`); the transition (`InvalidStateTransition`); a `-1` step timeout
//!   without a step timer (`InvalidRequest`).
//! - **Order of messages**: for one request, events come before the reply; so a device whose
//!   update call returned has already received the `notify` its update caused.
//!
//! # Uncertain behaviours
//! Where AWS is silent or contradicts itself (protocol reference §13), the simulator does this;
//! the switches in [`Quirks`] select the other plausible answer where one exists.
//!
//! 1. **Describe `$next` with nothing pending** (§13.4): accepted without `execution`.
//!    [`Quirks::idle_next_is_not_found`] answers `ResourceNotFound` instead.
//! 2. **`$next` with Update** (§13.3): rejected with `InvalidRequest` on
//!    `…/jobs/$next/update/rejected` (the HTTPS job-ID pattern excludes it).
//! 3. **QUEUED→SUCCEEDED / FAILED directly** (§13.7): accepted (no `startedAt` is set).
//!    [`Quirks::queued_to_done_is_rejected`] answers `InvalidStateTransition` instead.
//!    QUEUED→REJECTED is always accepted (it is in the lifecycle diagram).
//! 4. **Statuses a device may not set**: a known one (`QUEUED`, `TIMED_OUT`, `REMOVED`,
//!    `CANCELED` — also the `CANCELED` one AWS sample claims) gives `InvalidStateTransition`
//!    with `executionState`; an unknown string gives `InvalidRequest`; a missing `status`
//!    gives `InvalidRequest`.
//! 5. **`TerminalStateReached`** (§13.5): Describe returns terminal executions as they are.
//!    [`Quirks::terminal_describe_is_rejected`] answers `TerminalStateReached` instead.
//! 6. **`InvalidTopic`** (§13.6): sent on the request topic plus `/rejected`, for any topic
//!    `$aws/things/{thing}/jobs/…` that names no API — an unknown operation, a job level that
//!    is neither a job ID nor `$next`, an invalid thing name. Reply and event topics (ending
//!    in `/accepted` or `/rejected`, `notify`, `notify-next`) are ignored, so the simulator
//!    never answers its own messages.
//! 7. **`notify` on QUEUED→IN_PROGRESS of the head** (§13.8): not sent (AWS's worked example);
//!    the head did not change either, so nothing is sent at all. A non-head execution moving
//!    to IN_PROGRESS (by Update) does send `notify` ("changes to a non-terminal status"), and
//!    `notify-next` too if it becomes the head.
//! 8. **Invalid `clientToken`** (§13.2; empty, over 64 bytes or not printable ASCII):
//!    `InvalidRequest`, echoing the token as sent. A token that is not a string gives
//!    `InvalidRequest` with no token.
//! 9. **Empty payload**: not valid JSON, so `InvalidJson` (`{}` is the empty request).
//! 10. **VersionMismatch vs InvalidStateTransition**: a stale `expectedVersion` on a terminal
//!     execution gives `VersionMismatch` (the lock is checked before the transition).
//! 11. **StartNext with `stepTimeoutInMinutes` when an execution is already IN_PROGRESS**: the
//!     execution is returned unchanged; the step timer is not replaced (only Update does that).
//! 12. **QoS of responses and events** (§13.9): the [`Simulator`] publishes everything with
//!     QoS 1.
//! 13. **Timestamps** (§13.14): seconds.
//! 14. **`statusDetails` limits** (§13.11): no limit on the number of pairs.

pub mod api;
mod clock;
mod control;
mod driver;
mod events;
mod job_record;
mod jobs_service;
mod requests;
mod state;
mod topic;

pub use api::{ApiError, ApiErrorKind, Called, ControlOperation, Operation};
pub use clock::Clock;
pub use control::{ControlError, ExecutionInfo, JobSpec};
pub use driver::{REQUEST_FILTERS, Simulator, SimulatorError};
pub use job_record::{JobState, TargetSelection};
pub use jobs_service::{JobsService, Outgoing, Quirks};

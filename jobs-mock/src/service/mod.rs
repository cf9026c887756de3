//! A stateful emulator of AWS IoT Jobs for any number of things: the device API over MQTT,
//! and the control plane as the AWS IoT API.
//!
//! [`JobsService`] is the pure core: it holds every job (document, targets, target selection,
//! timeout, cancellation) and every execution per (thing, job, execution number) — status,
//! status details, version, timestamps from a [`Clock`], timer deadlines — answers device
//! requests with the replies and events the protocol prescribes, and runs the control plane:
//! the AWS IoT operations of [`api`] ([`JobsService::call`], [`JobsService::call_json`]: the
//! one dispatcher behind `jobs-service`'s HTTP API and MQTT control topic), shortcuts such as
//! [`JobsService::create_job`], fault injection and state inspection. [`Simulator`] runs it
//! over any [`MqttTransport`](jobs_core::MqttTransport): the in-memory
//! [`MockBroker`](crate::MockBroker) in tests, a real broker when hosted live.
//!
//! # Behaviour, with its evidence
//! Each rule says where it comes from: **measured** on the live service (by us or by the
//! authors of the MiniStack emulator, as cited in the protocol reference), **documented** by
//! AWS (developer guide, API reference, botocore's service models), or **our choice** where
//! nothing is known.
//!
//! - **Execution numbers** count per (thing, job): the first execution of every job on a thing
//!   is 1; a re-run of the same job on the same thing gets the last number + 1. Documented
//!   ("identifies one execution of the job on this device") and shown by AWS's Python sample,
//!   which prints `execution_number=1` for two different jobs on one thing. Numbers are never
//!   given out twice, even after DeleteJobExecution (our choice; AWS says they *may* be reused).
//! - **Re-runs**: a job runs again on a thing where its execution ended when the thing is
//!   targeted again — AssociateTargetsWithJob on a CONTINUOUS job (measured: a thing re-joining
//!   a continuous job's group gets `executionNumber` + 1). Describe and Update with an explicit
//!   `executionNumber` reach any execution; without one, the latest.
//! - **Reply first, then events**: for one request the accepted/rejected reply is published
//!   before the `notify` / `notify-next` it caused (measured). Events of timers that expired
//!   before the request come before its reply.
//! - **Describe of a terminal execution** (SUCCEEDED, FAILED, REJECTED, TIMED_OUT, CANCELED,
//!   REMOVED) is rejected with `TerminalStateReached`, message "Job Execution has reached
//!   terminal state. It is neither IN_PROGRESS nor QUEUED", no `executionState` (measured,
//!   quoted from the real service in a troubleshooting guide, and documented as
//!   `TerminalStateException` for DescribeJobExecution in botocore's `iot-jobs-data` model).
//!   [`Quirks::terminal_describe_returns_execution`] returns the execution instead. The
//!   control plane's DescribeJobExecution returns executions in every status (documented).
//! - **Statuses a device may not set** (QUEUED, CANCELED, TIMED_OUT, REMOVED) are rejected
//!   with `InvalidStateTransition` with `executionState`; an unknown status string, or none,
//!   with `InvalidRequest` (measured). A terminal execution cannot be updated:
//!   `InvalidStateTransition` (documented).
//! - **`statusDetails`** are validated with `jobs_core`'s rules, shared with the client
//!   ([`jobs_core::StatusDetails::from_pairs`], [`jobs_core::validate`]): keys 1–128 of
//!   `[a-zA-Z0-9:_-]`, values 1–1024 characters with none of Unicode category Other (`\p{C}`)
//!   (documented patterns); no limit on the number of pairs (none is documented).
//! - **Versions** start at 1 when queued; start-next's QUEUED→IN_PROGRESS and every accepted
//!   device update add 1 (documented: versions count device updates; observed values 1 then
//!   2). Service-made changes (TIMED_OUT, CANCELED, REMOVED) keep the version (measured for
//!   REMOVED; our choice for the others).
//! - **Timers**: the job's in-progress timer starts when the execution becomes IN_PROGRESS;
//!   a step timer never runs past it; on expiry the execution becomes TIMED_OUT with the usual
//!   events (documented). Deadlines keep millisecond precision although wire timestamps are
//!   whole seconds, so a timer fires when its deadline is reached, not up to a second early
//!   (our choice; AWS documents that it may fire up to 60 s *late*, which is not emulated).
//!   Expiry is checked at the start of every request and control call, when the clock is
//!   advanced, and — on a real clock — by the [`Simulator`]'s worker when the earliest deadline
//!   is due. `approximateSecondsBeforeTimedOut` is the time left on the earlier timer, in whole
//!   seconds rounded up.
//! - **Time**: timestamps come from the [`Clock`]: virtual (moved only by
//!   [`JobsService::advance_clock`] or AdvanceClock), or real and optionally N times faster
//!   ([`Clock::scaled`]), whose timestamps then run ahead of the wall clock.
//! - **GetPendingJobExecutions** lists `inProgressJobs` then `queuedJobs` (both always
//!   present), IN_PROGRESS first, then queue (creation) order, at most 10 in all (documented).
//! - **StartNextPendingJobExecution** returns the IN_PROGRESS execution unchanged if there is
//!   one (its details and timers untouched), else starts the oldest QUEUED one (status details
//!   and step timer applied, version +1); accepted without `execution` when nothing is
//!   pending. The execution includes `jobDocument` (documented).
//! - **DescribeJobExecution** takes a job ID or `$next` (answered on the `$next` topics);
//!   `includeJobDocument` defaults to `true` (documented); an `executionNumber` that names no
//!   execution gives `ResourceNotFound`, as does an unknown execution. With `$next` the
//!   `executionNumber` is ignored.
//! - **UpdateJobExecution** accepts `IN_PROGRESS`, `SUCCEEDED`, `FAILED` and `REJECTED`;
//!   `expectedVersion` as a number or numeric string; `includeJobExecutionState` and
//!   `includeJobDocument` (both default `false`); `statusDetails` replace the stored ones;
//!   `stepTimeoutInMinutes` 1–10080 starts a new step timer (capped at the in-progress
//!   deadline), `-1` cancels it (documented).
//! - **Events**: `notify` is sent when an execution is queued, reaches a terminal status, or
//!   changes status while not at the head of the pending list; `notify-next` when the head of
//!   the list changes (to another execution, or to none: the empty form `{"timestamp":…}`).
//!   `notify` lists at most 10 executions; with nothing pending it is `{"timestamp":…,"jobs":{}}`
//!   (documented). Control operations that change executions (CreateJob, CancelJob,
//!   CancelJobExecution, DeleteJobExecution, DeleteJob, AssociateTargetsWithJob) send them
//!   too; Reset sends nothing.
//! - **Rejections** echo the request's `clientToken` when it is a string, and always carry
//!   `timestamp`; `VersionMismatch` and `InvalidStateTransition` carry `executionState`
//!   (documented). Checks run in this order (our choice): topic (`InvalidTopic`); injected
//!   faults (`RequestThrottled`, then `InternalError`); JSON (`InvalidJson`); shape, token and
//!   field values (`InvalidRequest`); existence (`ResourceNotFound`); `expectedVersion`
//!   (`VersionMismatch`); the transition (`InvalidStateTransition`); a `-1` step timeout
//!   without a step timer (`InvalidRequest`).
//! - **The control plane** ([`api`]) follows botocore's model of the `iot` service for
//!   members, shapes, exceptions and HTTP statuses (documented); what each operation does,
//!   including our choices, is on its request type.
//!
//! # Fleets: registry, targets, rollout, retry, abort, pre-signed URLs
//! - **Registry**: things and static thing groups (CreateThing … ListThingGroupsForThing),
//!   AWS's paths, members, shapes and errors (botocore's model). Creating an existing thing
//!   with the same attributes succeeds, with others `ResourceAlreadyExistsException`
//!   (documented for CreateThing; the same rule for groups is our choice). DeleteThing of an
//!   unknown thing succeeds (documented); so does DeleteThingGroup of an unknown group (the
//!   model lists no `ResourceNotFoundException` for it). `defaultClientId` is the thing name
//!   (documented). IDs are deterministic UUID-shaped counters, versions stay 1 (no updates),
//!   and groups are listed by name (our choices).
//! - **Targets** are ARNs, as AWS takes them (documented: "a list of things and thing
//!   groups", ARNs in every AWS example): `arn:aws:iot:us-east-1:123456789012:thing/NAME` or
//!   `…:thinggroup/NAME` of a **registered** thing or group (AWS documents targets as things
//!   and thing groups, which are registry entries; a thing ARN names one). A bare name or any other string is an `InvalidRequestException`; an ARN
//!   of an unknown thing or group, or of another account or region, is a
//!   `ResourceNotFoundException` (both what a third-party emulator, MiniStack, answers; AWS's
//!   exact answer is not recorded: our choice). A group target expands to its members at
//!   creation, by name. The Rust shortcuts ([`JobSpec::thing`], the jobs file) register
//!   their things and target their ARNs, so device tests stay one-liners.
//! - **CONTINUOUS**: a thing that becomes a target of a CONTINUOUS job that is not cancelled
//!   (it joins a target group, or AssociateTargetsWithJob names it or its group) gets a new
//!   execution — `notify`, and `notify-next` if it is the thing's next job, as for a new job
//!   — unless one is pending (documented). A thing that stops being a target (it leaves the
//!   group, the group or the thing is deleted) has its QUEUED execution set to **REMOVED**:
//!   terminal, version kept, `notify` and `notify-next` as for any end (documented: "REMOVED
//!   … thing no longer a target"; version kept measured). An IN_PROGRESS execution **stays**
//!   when its thing leaves, and a thing that rejoins gets a new execution with
//!   `executionNumber` + 1 (both measured on AWS by MiniStack's authors, as the protocol
//!   reference §8.5 records them with their date: third-party measurements, not AWS
//!   documentation). SNAPSHOT jobs
//!   never change their targets' executions after creation (documented).
//! - **Rollout** (`jobExecutionsRolloutConfig`): at most `maximumPerMinute` executions are
//!   queued per one-minute window counted from the job's creation on the service's clock;
//!   things past the budget wait in target order and are queued when their window opens
//!   (windows and their start: our choice; AWS documents only "the maximum number of things
//!   notified per minute"). `exponentialRate` starts at `baseRatePerMinute` and, at the next
//!   window once `numberOfNotifiedThings` more were notified or `numberOfSucceededThings`
//!   more succeeded since the last increase, multiplies the rate by `incrementFactor` (rounded
//!   down, at least + 1), capped by `maximumPerMinute` (documented in outline; counting anew
//!   after each increase and the rounding are our choices). Waiting things count as QUEUED in
//!   DescribeJob and keep a SNAPSHOT job from completing; a thing that leaves the group stops
//!   waiting (our choices). Without a rollout configuration all executions are queued at once
//!   (AWS's default pace of about 1,000 per minute is not emulated).
//! - **Retry** (`jobExecutionsRetryConfig`, 1–2 criteria, `numberOfRetries` 0–10,
//!   documented): an execution that ends FAILED or TIMED_OUT is retried as a new QUEUED
//!   execution of the same job on the thing, `executionNumber` + 1 and `retryAttempt` + 1
//!   (documented: "retries the job execution"; the new number is the protocol reference's
//!   inference §6.4, and what re-runs do, measured). A failure type's own criterion counts
//!   the retries of that type; without one, ALL's counts every retry (our choice). The device
//!   sees the end as usual (reply, `notify`, `notify-next`), then the retry as a new job
//!   (`notify`, `notify-next` if it is next): the retry is queued at once (AWS's delay is
//!   not recorded: our choice). Cancelled jobs are not retried.
//! - **Abort** (`abortConfig`, action CANCEL): once at least `minNumberOfExecutedThings`
//!   things have an execution and at least one thing's latest execution ended with the
//!   criterion's failure type (ALL: FAILED, REJECTED or TIMED_OUT) in at least
//!   `thresholdPercentage` percent of them, the job is cancelled as CancelJob without `force`
//!   does: QUEUED executions CANCELED, IN_PROGRESS ones left to finish, the `comment` saying
//!   why (documented in outline; the counting is our choice).
//! - **Pre-signed URLs** ([`presign`]): `${aws:iot:s3-presigned-url:URL}` and
//!   `${aws:iot:s3-presigned-url-v2:URL}` (URL `https://s3.REGION.amazonaws.com/BUCKET/KEY`,
//!   `https://s3.amazonaws.com/BUCKET/KEY` or `BUCKET/KEY`; all documented spellings) are
//!   checked at CreateJob, which then needs `presignedUrlConfig.roleArn` (`expiresInSec`
//!   60–3600, default 3600; documented). Each time a device receives the document
//!   (start-next, describe, `notify-next`, update with `includeJobDocument`) they are replaced
//!   by fresh URLs signed for `expiresInSec` from now on the service's clock (documented:
//!   "generated when Jobs receives an MQTT request for the job document"). GetJobDocument
//!   returns them intact (documented). Without a base URL
//!   ([`JobsService::set_presigned_url_base`], which `jobs-service --http` sets to its own
//!   address) the placeholders reach devices unchanged (our choice: in-process tests without
//!   HTTP see the document as created).
//!
//! # Uncertain behaviours
//! Where AWS is silent or contradicts itself (protocol reference §13), the emulator does this;
//! the switches in [`Quirks`] select the other plausible answer where one exists.
//!
//! 1. **Describe `$next` with nothing pending** (§13.4): accepted without `execution`.
//!    [`Quirks::idle_next_is_not_found`] answers `ResourceNotFound` instead.
//! 2. **`$next` with Update** (§13.3): rejected with `InvalidRequest` on
//!    `…/jobs/$next/update/rejected` (the HTTPS job-ID pattern excludes it).
//! 3. **QUEUED→SUCCEEDED / FAILED directly** (§13.7): accepted (no `startedAt` is set).
//!    [`Quirks::queued_to_done_is_rejected`] answers `InvalidStateTransition` instead.
//!    QUEUED→REJECTED is always accepted (it is in the lifecycle diagram).
//! 4. **`InvalidTopic`** (§13.6): sent on the request topic plus `/rejected`, for any topic
//!    `$aws/things/{thing}/jobs/…` that names no API — an unknown operation, a job level that
//!    is neither a job ID nor `$next`, an invalid thing name. Reply and event topics (ending
//!    in `/accepted` or `/rejected`, `notify`, `notify-next`) are ignored, so the emulator
//!    never answers its own messages.
//! 5. **`notify` on QUEUED→IN_PROGRESS of the head** (§13.8): not sent (AWS's worked example);
//!    the head did not change either, so nothing is sent at all. A non-head execution moving
//!    to IN_PROGRESS (by Update) does send `notify` ("changes to a non-terminal status"), and
//!    `notify-next` too if it becomes the head.
//! 6. **Invalid `clientToken`** (§13.2; empty, over 64 bytes or not printable ASCII):
//!    `InvalidRequest`, echoing the token as sent. A token that is not a string gives
//!    `InvalidRequest` with no token.
//! 7. **Empty payload**: not valid JSON, so `InvalidJson` (`{}` is the empty request).
//! 8. **VersionMismatch vs InvalidStateTransition**: a stale `expectedVersion` on a terminal
//!    execution gives `VersionMismatch` (the lock is checked before the transition).
//! 9. **StartNext with `stepTimeoutInMinutes` when an execution is already IN_PROGRESS**: the
//!    execution is returned unchanged; the step timer is not replaced (only Update does that).
//! 10. **QoS of responses and events** (§13.9): the [`Simulator`] publishes everything with
//!     QoS 1.
//! 11. **Timestamps** (§13.14): seconds.
//!
//! # Not emulated
//! Thing types, billing groups, thing-group hierarchies and dynamic groups, attribute updates,
//! job documents in S3 (`documentSource`), document parameters, job templates, scheduling
//! configurations, namespaces, tags, AWS's default rollout pace, UpdateJob, request-rate
//! limits, the up-to-60-s lateness of real timers, and request signatures (the HTTP API
//! checks none).

pub mod api;
mod clock;
mod control;
mod driver;
mod events;
mod job_record;
mod jobs_service;
mod mode;
pub mod presign;
mod registry;
mod requests;
mod retry;
mod rollout;
mod state;
mod targets;
mod topic;

pub use api::{ApiError, ApiErrorKind, Called, ControlOperation};
pub use clock::Clock;
pub use control::{ControlError, ExecutionInfo, JobSpec};
pub use driver::{REQUEST_FILTERS, Simulator, SimulatorError};
pub use job_record::{JobState, TargetSelection};
pub use jobs_service::{JobsService, Outgoing, Quirks};
pub use mode::SimulatorMode;
pub use registry::ThingGroupName;

//! The control plane as the AWS IoT API: the job operations of AWS IoT's control plane
//! (CreateJob, DescribeJob, ListJobExecutionsForJob, CancelJobExecution, …) and of its thing
//! registry (CreateThing, CreateThingGroup, AddThingToThingGroup, …) with AWS's member names,
//! shapes and errors, plus two operations of the emulator's own (AdvanceClock, Reset).
//!
//! Each operation is a request type implementing [`ControlOperation`]; its output type
//! serialises to AWS's response body. [`JobsService::call`] runs a typed request,
//! [`JobsService::call_json`] runs one given by name with its input as JSON — the one dispatcher
//! that the `jobs-service` program's HTTP server (AWS's REST-JSON protocol, for the AWS CLI and
//! boto3) and its MQTT control topic translate to.
//!
//! # The JSON input of an operation
//! An object with the operation's request members under their AWS names, wherever HTTP carries
//! them (path, query string or body): for example CancelJobExecution takes
//! `{"jobId": "j1", "thingName": "pump-07", "force": true, "expectedVersion": 2}`. Members this
//! emulator does not implement (`namespaceId`, `tags`, `schedulingConfig`, …) are refused with
//! an `InvalidRequestException` naming them, rather than ignored.
//!
//! # Errors
//! An [`ApiError`]: AWS's exception name ([`ApiErrorKind::code`]), its HTTP status
//! ([`ApiErrorKind::http_status`], from botocore's model of the `iot` service) and a message.
//!
//! # Example
//! ```
//! use jobs_core::{Document, JobId, ThingName};
//! use jobs_mock::service::api::{CreateJob, CreateThing, Operation};
//! use jobs_mock::service::{ApiErrorKind, Clock, JobsService};
//! use serde_json::json;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let mut service = JobsService::new(Clock::virtual_at(1_750_000_000));
//! service.call(CreateThing::new(ThingName::new("pump-07")?)).result?;
//! let pump = "arn:aws:iot:us-east-1:123456789012:thing/pump-07".to_owned();
//! let document = Document::from_json(r#"{"action":"reboot"}"#)?;
//! let created = service.call(CreateJob::new(JobId::new("j1")?, &document, vec![pump.clone()]));
//! assert_eq!(created.result?.job_arn, "arn:aws:iot:us-east-1:123456789012:job/j1");
//! assert_eq!(created.events.len(), 2); // notify and notify-next for pump-07
//!
//! // The same operations by name, with AWS's JSON members, as HTTP and MQTT give them.
//! let listed = service.call_json(Operation::ListJobExecutionsForJob, json!({"jobId": "j1"}));
//! assert_eq!(listed.result?["executionSummaries"][0]["jobExecutionSummary"]["status"], "QUEUED");
//! let again = service.call_json(
//!     Operation::CreateJob,
//!     json!({"jobId": "j1", "targets": [pump], "document": "{}"}),
//! );
//! assert_eq!(again.result.unwrap_err().kind, ApiErrorKind::ResourceAlreadyExists);
//! # Ok(())
//! # }
//! ```

mod configs;
mod create_ops;
mod emulator_ops;
mod execution_ops;
mod group_ops;
mod job_ops;
mod membership_ops;
mod shapes;
mod thing_ops;

use std::error::Error as StdError;
use std::fmt;

use jobs_core::{JobId, ThingName};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::jobs_service::{JobsService, Outgoing};

pub(crate) use configs::DEFAULT_EXPIRES_IN_SEC;
pub use configs::{
    AbortAction, AbortConfig, AbortCriteria, ExponentialRate, FailureType, PresignedUrlConfig,
    RateIncreaseCriteria, RetryConfig, RetryCriteria, RolloutConfig,
};
pub use create_ops::{AssociateTargetsWithJob, CreateJob, JobOutput, TimeoutConfig};
pub use emulator_ops::{AdvanceClock, AdvanceClockOutput, Reset};
pub use execution_ops::{
    CancelJobExecution, DeleteJobExecution, DescribeJobExecution, DescribeJobExecutionOutput,
    ListJobExecutionsForJob, ListJobExecutionsForJobOutput, ListJobExecutionsForThing,
    ListJobExecutionsForThingOutput,
};
pub use group_ops::{
    CreateThingGroup, CreateThingGroupOutput, DeleteThingGroup, DescribeThingGroup,
    DescribeThingGroupOutput, GroupNameAndArn, ListThingGroups, ListThingGroupsOutput,
    ThingGroupMetadata, ThingGroupProperties,
};
pub use job_ops::{
    CancelJob, DeleteJob, DescribeJob, DescribeJobOutput, GetJobDocument, GetJobDocumentOutput,
    ListJobs, ListJobsOutput,
};
pub use membership_ops::{
    AddThingToThingGroup, ListThingGroupsForThing, ListThingsInThingGroup,
    ListThingsInThingGroupOutput, RemoveThingFromThingGroup,
};
pub use shapes::{
    Empty, Job, JobExecution, JobExecutionStatusDetails, JobExecutionSummary,
    JobExecutionSummaryForJob, JobExecutionSummaryForThing, JobProcessDetails, JobSummary,
};
pub use thing_ops::{
    AttributePayload, CreateThing, CreateThingOutput, DeleteThing, DescribeThing,
    DescribeThingOutput, ListThings, ListThingsOutput, ThingAttribute,
};

/// The region in the ARNs the service reports (`arn:aws:iot:us-east-1:…`).
pub const REGION: &str = "us-east-1";

/// The account ID in the ARNs the service reports.
pub const ACCOUNT_ID: &str = "123456789012";

/// The operations of the control plane, by their AWS names (the `operation` of the MQTT
/// control topic, and [`JobsService::call_json`]'s first argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Operation {
    /// Creates a job: `PUT /jobs/{jobId}`.
    CreateJob,
    /// Describes a job: `GET /jobs/{jobId}`.
    DescribeJob,
    /// Returns a job's document: `GET /jobs/{jobId}/job-document`.
    GetJobDocument,
    /// Lists jobs: `GET /jobs`.
    ListJobs,
    /// Cancels a job: `PUT /jobs/{jobId}/cancel`.
    CancelJob,
    /// Deletes a job and its executions: `DELETE /jobs/{jobId}`.
    DeleteJob,
    /// Adds targets to a CONTINUOUS job: `POST /jobs/{jobId}/targets`.
    AssociateTargetsWithJob,
    /// Describes one execution: `GET /things/{thingName}/jobs/{jobId}`.
    DescribeJobExecution,
    /// Lists the executions of a job: `GET /jobs/{jobId}/things`.
    ListJobExecutionsForJob,
    /// Lists the executions on a thing: `GET /things/{thingName}/jobs`.
    ListJobExecutionsForThing,
    /// Cancels one execution: `PUT /things/{thingName}/jobs/{jobId}/cancel`.
    CancelJobExecution,
    /// Deletes one execution:
    /// `DELETE /things/{thingName}/jobs/{jobId}/executionNumber/{executionNumber}`.
    DeleteJobExecution,
    /// Registers a thing: `POST /things/{thingName}`.
    CreateThing,
    /// Describes a thing: `GET /things/{thingName}`.
    DescribeThing,
    /// Lists things: `GET /things`.
    ListThings,
    /// Deletes a thing: `DELETE /things/{thingName}`.
    DeleteThing,
    /// Creates a static thing group: `POST /thing-groups/{thingGroupName}`.
    CreateThingGroup,
    /// Describes a thing group: `GET /thing-groups/{thingGroupName}`.
    DescribeThingGroup,
    /// Lists thing groups: `GET /thing-groups`.
    ListThingGroups,
    /// Deletes a thing group: `DELETE /thing-groups/{thingGroupName}`.
    DeleteThingGroup,
    /// Adds a thing to a group: `PUT /thing-groups/addThingToThingGroup`.
    AddThingToThingGroup,
    /// Removes a thing from a group: `PUT /thing-groups/removeThingFromThingGroup`.
    RemoveThingFromThingGroup,
    /// Lists a group's things: `GET /thing-groups/{thingGroupName}/things`.
    ListThingsInThingGroup,
    /// Lists a thing's groups: `GET /things/{thingName}/thing-groups`.
    ListThingGroupsForThing,
    /// The emulator's own: moves the clock forward, firing the timers that expire.
    AdvanceClock,
    /// The emulator's own: forgets everything, or one thing, without notifications.
    Reset,
}

impl Operation {
    /// Every operation.
    pub const ALL: [Operation; 26] = [
        Self::CreateJob,
        Self::DescribeJob,
        Self::GetJobDocument,
        Self::ListJobs,
        Self::CancelJob,
        Self::DeleteJob,
        Self::AssociateTargetsWithJob,
        Self::DescribeJobExecution,
        Self::ListJobExecutionsForJob,
        Self::ListJobExecutionsForThing,
        Self::CancelJobExecution,
        Self::DeleteJobExecution,
        Self::CreateThing,
        Self::DescribeThing,
        Self::ListThings,
        Self::DeleteThing,
        Self::CreateThingGroup,
        Self::DescribeThingGroup,
        Self::ListThingGroups,
        Self::DeleteThingGroup,
        Self::AddThingToThingGroup,
        Self::RemoveThingFromThingGroup,
        Self::ListThingsInThingGroup,
        Self::ListThingGroupsForThing,
        Self::AdvanceClock,
        Self::Reset,
    ];

    /// The AWS name, such as `CreateJob`.
    pub fn name(self) -> &'static str {
        match self {
            Self::CreateJob => "CreateJob",
            Self::DescribeJob => "DescribeJob",
            Self::GetJobDocument => "GetJobDocument",
            Self::ListJobs => "ListJobs",
            Self::CancelJob => "CancelJob",
            Self::DeleteJob => "DeleteJob",
            Self::AssociateTargetsWithJob => "AssociateTargetsWithJob",
            Self::DescribeJobExecution => "DescribeJobExecution",
            Self::ListJobExecutionsForJob => "ListJobExecutionsForJob",
            Self::ListJobExecutionsForThing => "ListJobExecutionsForThing",
            Self::CancelJobExecution => "CancelJobExecution",
            Self::DeleteJobExecution => "DeleteJobExecution",
            Self::CreateThing => "CreateThing",
            Self::DescribeThing => "DescribeThing",
            Self::ListThings => "ListThings",
            Self::DeleteThing => "DeleteThing",
            Self::CreateThingGroup => "CreateThingGroup",
            Self::DescribeThingGroup => "DescribeThingGroup",
            Self::ListThingGroups => "ListThingGroups",
            Self::DeleteThingGroup => "DeleteThingGroup",
            Self::AddThingToThingGroup => "AddThingToThingGroup",
            Self::RemoveThingFromThingGroup => "RemoveThingFromThingGroup",
            Self::ListThingsInThingGroup => "ListThingsInThingGroup",
            Self::ListThingGroupsForThing => "ListThingGroupsForThing",
            Self::AdvanceClock => "AdvanceClock",
            Self::Reset => "Reset",
        }
    }

    /// The operation of an AWS name, if it is one of these.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|op| op.name() == name)
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The kind of an [`ApiError`]: one of AWS's exceptions for these operations.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ApiErrorKind {
    /// `InvalidRequestException` (HTTP 400): the input is malformed, out of range, or uses
    /// something this emulator does not implement.
    InvalidRequest,
    /// `ResourceNotFoundException` (HTTP 404): no such job or execution.
    ResourceNotFound,
    /// `ResourceAlreadyExistsException` (HTTP 409): CreateJob with a job ID in use; CreateThing
    /// or CreateThingGroup of an existing name with another configuration.
    ResourceAlreadyExists,
    /// `VersionConflictException` (HTTP 409): an `expectedVersion` (CancelJobExecution,
    /// DeleteThing, DeleteThingGroup) is not the current version.
    VersionConflict,
    /// `InvalidStateTransitionException` (HTTP 409): the job or execution is in a status that
    /// does not allow the operation (for example IN_PROGRESS without `force`).
    InvalidStateTransition,
    /// `LimitExceededException` (HTTP 410): more than 100 targets on one job.
    LimitExceeded,
}

impl ApiErrorKind {
    /// AWS's exception name, such as `ResourceNotFoundException`.
    pub fn code(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequestException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ResourceAlreadyExists => "ResourceAlreadyExistsException",
            Self::VersionConflict => "VersionConflictException",
            Self::InvalidStateTransition => "InvalidStateTransitionException",
            Self::LimitExceeded => "LimitExceededException",
        }
    }

    /// The HTTP status AWS answers with, from botocore's model of the `iot` service.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidRequest => 400,
            Self::ResourceNotFound => 404,
            Self::ResourceAlreadyExists | Self::VersionConflict | Self::InvalidStateTransition => {
                409
            }
            Self::LimitExceeded => 410,
        }
    }
}

/// A refused control operation: nothing changed (except that timers which had expired fired).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiError {
    /// Which exception.
    pub kind: ApiErrorKind,
    /// What was wrong, for a person.
    pub message: String,
}

impl ApiError {
    pub(crate) fn new(kind: ApiErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::new(ApiErrorKind::InvalidRequest, message)
    }

    pub(crate) fn no_job(job: &JobId) -> Self {
        Self::new(
            ApiErrorKind::ResourceNotFound,
            format!("Job {job} does not exist."),
        )
    }

    pub(crate) fn no_execution(job: &JobId, thing: &ThingName) -> Self {
        Self::new(
            ApiErrorKind::ResourceNotFound,
            format!("Job Execution of {job} on {thing} does not exist."),
        )
    }

    /// The error as AWS's JSON error body: `{"__type": code, "message": message}`.
    pub fn to_json(&self) -> Value {
        serde_json::json!({"__type": self.kind.code(), "message": self.message})
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.code(), self.message)
    }
}

impl StdError for ApiError {}

mod sealed {
    pub trait Sealed {}
}

/// One control-plane operation: the request (deserialised from AWS's members) and how it runs.
/// Implemented by the request types of this module only.
pub trait ControlOperation: DeserializeOwned + sealed::Sealed {
    /// Which operation this is.
    const OPERATION: Operation;
    /// The output, serialising to AWS's response body.
    type Output: Serialize;

    /// Runs the request on `service` at `now_ms` (milliseconds since the epoch), appending the
    /// events it causes to `events`.
    #[doc(hidden)]
    fn run(
        self,
        service: &mut JobsService,
        now_ms: i64,
        events: &mut Vec<Outgoing>,
    ) -> Result<Self::Output, ApiError>;
}

/// What a control operation returned, and the events to publish (those of timers that expired
/// before it first, then its own; present whether the operation succeeded or not).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Called<T> {
    /// The output, or why the operation was refused.
    pub result: Result<T, ApiError>,
    /// The `notify` / `notify-next` messages to publish.
    pub events: Vec<Outgoing>,
}

impl JobsService {
    /// Runs one control-plane operation. Expired timers fire first.
    pub fn call<O: ControlOperation>(&mut self, request: O) -> Called<O::Output> {
        let now_ms = self.clock.now_millis();
        let mut events = self.expire_timers(now_ms);
        let result = request.run(self, now_ms, &mut events);
        self.settle(now_ms, &mut events);
        Called { result, events }
    }

    /// Runs the operation named `operation` with its input as JSON (see the
    /// [module docs](self)) and returns its output as AWS's JSON response body.
    pub fn call_json(&mut self, operation: Operation, input: Value) -> Called<Value> {
        match operation {
            Operation::CreateJob => self.call_value::<CreateJob>(input),
            Operation::DescribeJob => self.call_value::<DescribeJob>(input),
            Operation::GetJobDocument => self.call_value::<GetJobDocument>(input),
            Operation::ListJobs => self.call_value::<ListJobs>(input),
            Operation::CancelJob => self.call_value::<CancelJob>(input),
            Operation::DeleteJob => self.call_value::<DeleteJob>(input),
            Operation::AssociateTargetsWithJob => self.call_value::<AssociateTargetsWithJob>(input),
            Operation::DescribeJobExecution => self.call_value::<DescribeJobExecution>(input),
            Operation::ListJobExecutionsForJob => self.call_value::<ListJobExecutionsForJob>(input),
            Operation::ListJobExecutionsForThing => {
                self.call_value::<ListJobExecutionsForThing>(input)
            }
            Operation::CancelJobExecution => self.call_value::<CancelJobExecution>(input),
            Operation::DeleteJobExecution => self.call_value::<DeleteJobExecution>(input),
            Operation::CreateThing => self.call_value::<CreateThing>(input),
            Operation::DescribeThing => self.call_value::<DescribeThing>(input),
            Operation::ListThings => self.call_value::<ListThings>(input),
            Operation::DeleteThing => self.call_value::<DeleteThing>(input),
            Operation::CreateThingGroup => self.call_value::<CreateThingGroup>(input),
            Operation::DescribeThingGroup => self.call_value::<DescribeThingGroup>(input),
            Operation::ListThingGroups => self.call_value::<ListThingGroups>(input),
            Operation::DeleteThingGroup => self.call_value::<DeleteThingGroup>(input),
            Operation::AddThingToThingGroup => self.call_value::<AddThingToThingGroup>(input),
            Operation::RemoveThingFromThingGroup => {
                self.call_value::<RemoveThingFromThingGroup>(input)
            }
            Operation::ListThingsInThingGroup => self.call_value::<ListThingsInThingGroup>(input),
            Operation::ListThingGroupsForThing => self.call_value::<ListThingGroupsForThing>(input),
            Operation::AdvanceClock => self.call_value::<AdvanceClock>(input),
            Operation::Reset => self.call_value::<Reset>(input),
        }
    }

    fn call_value<O: ControlOperation>(&mut self, input: Value) -> Called<Value> {
        let input = if input.is_null() {
            Value::Object(serde_json::Map::new())
        } else {
            input
        };
        let request = match serde_json::from_value::<O>(input) {
            Ok(request) => request,
            Err(error) => {
                let now_ms = self.clock.now_millis();
                return Called {
                    result: Err(ApiError::invalid(format!(
                        "{}: invalid input: {error}",
                        O::OPERATION
                    ))),
                    events: self.expire_timers(now_ms),
                };
            }
        };
        let Called { result, events } = self.call(request);
        let result = result.and_then(|output| {
            serde_json::to_value(output).map_err(|error| {
                log::error!("jobs service could not encode an output: {error}");
                ApiError::invalid(format!("the output could not be encoded: {error}"))
            })
        });
        Called { result, events }
    }
}

/// The ARN of a job.
pub(crate) fn job_arn(job: &JobId) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT_ID}:job/{job}")
}

/// The ARN of a thing.
pub(crate) fn thing_arn(thing: &ThingName) -> String {
    format!("arn:aws:iot:{REGION}:{ACCOUNT_ID}:thing/{thing}")
}

/// Largest `maxResults` of the list operations.
const MAX_RESULTS: u32 = 250;

/// One page of `items`: from the position in `next_token` (absent: the start), at most
/// `max_results` (absent: all the rest), and the token of the next page if any remain.
pub(crate) fn page<T>(
    items: Vec<T>,
    max_results: Option<u32>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), ApiError> {
    let start = match next_token {
        None => 0,
        Some(token) => token
            .parse::<usize>()
            .ok()
            .filter(|start| *start <= items.len())
            .ok_or_else(|| ApiError::invalid(format!("invalid nextToken {token:?}")))?,
    };
    let count = match max_results {
        None => items.len(),
        Some(n @ 1..=MAX_RESULTS) => usize::try_from(n).unwrap_or(usize::MAX),
        Some(n) => {
            return Err(ApiError::invalid(format!(
                "maxResults {n} is outside 1 to {MAX_RESULTS}"
            )));
        }
    };
    let end = start.saturating_add(count).min(items.len());
    let next = (end < items.len()).then(|| end.to_string());
    Ok((
        items.into_iter().skip(start).take(end - start).collect(),
        next,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_follow_next_tokens_to_the_end() {
        let (first, token) = page(vec![1, 2, 3], Some(2), None).unwrap();
        assert_eq!((first, token.as_deref()), (vec![1, 2], Some("2")));
        let (rest, token) = page(vec![1, 2, 3], Some(2), Some("2")).unwrap();
        assert_eq!((rest, token), (vec![3], None));
        assert_eq!(page(vec![1, 2, 3], None, None).unwrap().0, vec![1, 2, 3]);
        assert!(page(vec![1], Some(0), None).is_err());
        assert!(page(vec![1], Some(251), None).is_err());
        assert!(page(vec![1], None, Some("x")).is_err());
        assert!(page(vec![1], None, Some("5")).is_err());
    }

    #[test]
    fn operation_names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(Operation::from_name(op.name()), Some(op));
        }
        assert_eq!(Operation::from_name("UpdateThing"), None);
    }
}
